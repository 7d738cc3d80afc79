//! Samples and their summary: every figure the bench prints is a median of several measured
//! runs, shown with its spread (interquartile range and min..max), never a single lucky run.

use std::fmt;

/// Measured values of one figure (milliseconds, bytes, ... the caller knows the unit).
#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<f64>);

/// Median, quartiles and extremes of [`Samples`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The median (the figure printed).
    pub median: f64,
    /// First quartile.
    pub q1: f64,
    /// Third quartile.
    pub q3: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples.
    pub n: usize,
}

impl Samples {
    /// Adds one measured value.
    pub fn push(&mut self, v: f64) {
        self.0.push(v);
    }

    /// The summary; panics on no samples (a figure without a measurement must never print).
    pub fn summary(&self) -> Summary {
        assert!(!self.0.is_empty(), "a figure with no samples");
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        Summary {
            median: quantile(&v, 0.5),
            q1: quantile(&v, 0.25),
            q3: quantile(&v, 0.75),
            min: v[0],
            max: v[v.len() - 1],
            n: v.len(),
        }
    }
}

/// Linear-interpolated quantile of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// A value with a unit, printed with sensible precision.
pub fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (IQR {}-{}, min-max {}-{}, n={})",
            fmt_num(self.median),
            fmt_num(self.q1),
            fmt_num(self.q3),
            fmt_num(self.min),
            fmt_num(self.max),
            self.n
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_quartiles_of_an_odd_count() {
        let s = Samples(vec![5.0, 1.0, 3.0, 2.0, 4.0]).summary();
        assert_eq!(
            (s.median, s.q1, s.q3, s.min, s.max, s.n),
            (3.0, 2.0, 4.0, 1.0, 5.0, 5)
        );
    }

    #[test]
    fn median_of_an_even_count_interpolates() {
        let s = Samples(vec![1.0, 2.0, 3.0, 10.0]).summary();
        assert_eq!(s.median, 2.5);
        assert_eq!(s.max, 10.0);
    }

    #[test]
    #[should_panic(expected = "no samples")]
    fn no_samples_never_summarizes() {
        Samples::default().summary();
    }
}
