//! How figures are printed: one section per scenario, one row per contender, each a median
//! with its spread and, for baselines, the ratio to chatsync's median. Rows are printed as soon
//! as they are measured, so a failing scenario still leaves the earlier figures on screen.

use std::time::Instant;

use crate::stats::{fmt_num, Samples};

/// Milliseconds elapsed since `t`.
pub fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1_000.0
}

/// The printed report.
#[derive(Default)]
pub struct Report {
    /// Rows printed so far (a run that printed none is a failure).
    pub rows: usize,
}

impl Report {
    /// Starts a scenario.
    pub fn section(&mut self, title: &str) {
        println!("\n{title}");
    }

    /// A measured figure: median and spread, and its ratio to chatsync's median when given.
    pub fn row(
        &mut self,
        label: &str,
        samples: &Samples,
        unit: &str,
        chatsync_median: Option<f64>,
    ) {
        let s = samples.summary();
        println!(
            "  {label:<52} {} {unit}{}",
            s,
            ratio(s.median, chatsync_median)
        );
        self.rows += 1;
    }

    /// A figure measured once (a size on disk): deterministic, so no spread.
    pub fn single(&mut self, label: &str, value: f64, unit: &str, chatsync_value: Option<f64>) {
        println!(
            "  {label:<52} {} {unit}{}",
            fmt_num(value),
            ratio(value, chatsync_value)
        );
        self.rows += 1;
    }

    /// A line of context (what was measured, how).
    pub fn note(&mut self, text: &str) {
        println!("  ({text})");
    }

    /// A figure this run did not measure, and why. Never a number.
    pub fn not_measured(&mut self, label: &str, why: &str) {
        println!("  {label:<52} not measured: {why}");
    }
}

fn ratio(value: f64, chatsync: Option<f64>) -> String {
    match chatsync {
        Some(base) if base > 0.0 => format!("  = {}x chatsync", fmt_num(value / base)),
        _ => String::new(),
    }
}
