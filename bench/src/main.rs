//! `chatsync-bench`: chatsync's costs against what apps use today, in one run (issue 8).
//!
//! ```text
//! chatsync-bench run [--quick] [--only SCENARIO] [--cdylib PATH] [--kotlin-runner PATH]
//! ```
//! prints every scenario's figures with their baselines (redux-persist's whole-state JSON and
//! SQLite, on the same data), as medians with their spread. scripts/bench.sh builds everything
//! in release and runs it; BENCHMARKS.md records the results. `--quick` shrinks every size so
//! CI can smoke-run it in seconds. Any failure or wrong data read back panics: the exit status
//! is non-zero and no figure is printed for the scenario.
//!
//! Modules, one concern each:
//! - [`data`]: the deterministic messages and their checks;
//! - [`baselines`]: redux-persist's approach and SQLite;
//! - [`stats`], [`report`]: medians, spread, printing;
//! - [`process`]: re-executed children (fresh processes), peak RSS, CPU time;
//! - [`proxy`]: the counting loopback proxy; [`server`]: the seeded reference server;
//! - one module per scenario: [`persist`] (1 and 6), [`cold`] (2), [`first_sync`] (3 and 5),
//!   [`wake`] (4), [`size`] (7), [`ffi`] (8), [`chat_mix`] (9: protocol v2's edits, reactions
//!   and Timeline diffs).
//! - `--only` runs one group: `persist` (1, 6), `cold` (2), `sync` (3, 4, 5), `size` (7),
//!   `ffi` (8), `chat` (9).
//! - [`server_load`]: `chatsync-bench server`, the reference server's own throughput and wake-up
//!   latency against real server binaries (scripts/bench-server.sh; BENCHMARKS.md, server section).

mod baselines;
mod chat_mix;
mod cold;
mod data;
mod ffi;
mod first_sync;
mod persist;
mod process;
mod proxy;
mod report;
mod server;
mod server_load;
mod size;
mod stats;
mod wake;

use std::path::PathBuf;
use std::time::Instant;

use report::Report;

/// Sizes of one run: the issue's in the full run, small ones with `--quick`.
pub struct Sizes {
    /// Scenario 1: messages already in the room.
    pub persist_ns: Vec<u64>,
    /// Scenario 1: messages persisted (and timed) per contender and N.
    pub persist_samples: usize,
    /// Scenario 1: the same for N >= 100k (a whole-state JSON write is slow there).
    pub persist_samples_large: usize,
    /// Scenario 2: messages and rooms in the store, fresh processes per contender.
    pub cold_total: u64,
    /// Scenario 2: rooms.
    pub cold_rooms: usize,
    /// Scenario 2: runs per contender.
    pub cold_runs: usize,
    /// Scenario 3: messages and rooms on the server, runs.
    pub sync_total: u64,
    /// Scenario 3: rooms.
    pub sync_rooms: usize,
    /// Scenario 3: runs (each a fresh process and store).
    pub sync_runs: usize,
    /// Scenario 3: new messages for the incremental sync.
    pub sync_incremental: u64,
    /// Scenario 4: wakes per shape.
    pub wakes: usize,
    /// Scenario 8: untimed calls first (JIT, caches), then timed batches.
    pub ffi_warmup: usize,
    /// Scenario 8: timed batches.
    pub ffi_batches: usize,
    /// Scenario 9: changes per synced batch (a multiple of 5: 20% change older messages).
    pub mix_changes: u64,
    /// Scenario 9: batches per contender (mix, new only), interleaved.
    pub mix_runs: usize,
    /// Scenario 9: messages per room on the server; the timeline's room is held whole, and
    /// its large window is this many messages.
    pub timeline_held: u64,
    /// Scenario 9: edits synced per window size and way of seeing them.
    pub timeline_samples: usize,
}

impl Sizes {
    fn full() -> Sizes {
        Sizes {
            persist_ns: vec![1_000, 10_000, 100_000],
            persist_samples: 30,
            persist_samples_large: 10,
            cold_total: 1_000_000,
            cold_rooms: 100,
            cold_runs: 5,
            sync_total: 100_000,
            sync_rooms: 20,
            sync_runs: 3,
            sync_incremental: 100,
            wakes: 10,
            ffi_warmup: 5_000,
            ffi_batches: 50,
            mix_changes: 400,
            mix_runs: 15,
            timeline_held: 1_000,
            timeline_samples: 30,
        }
    }

    fn quick() -> Sizes {
        Sizes {
            persist_ns: vec![1_000],
            persist_samples: 5,
            persist_samples_large: 3,
            cold_total: 10_000,
            cold_rooms: 10,
            cold_runs: 2,
            sync_total: 2_000,
            sync_rooms: 4,
            sync_runs: 1,
            sync_incremental: 20,
            wakes: 3,
            ffi_warmup: 100,
            ffi_batches: 5,
            mix_changes: 50,
            mix_runs: 2,
            timeline_held: 200,
            timeline_samples: 3,
        }
    }
}

fn main() {
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("server") => server_load::run(&args[1..]),
        Some("child") => {
            let result = match args.get(1).map(String::as_str) {
                Some("cold-start") => cold::child(started, &args[2..]),
                Some("first-sync") => first_sync::child(&args[2..]),
                Some("idle-wake") => wake::child(&args[2..]),
                other => panic!("unknown child {other:?}"),
            };
            process::say(&result.to_string());
        }
        _ => {
            eprintln!("usage: chatsync-bench run [--quick] [--only persist|cold|sync|size|ffi|chat] [--cdylib PATH] [--kotlin-runner PATH]");
            eprintln!("       chatsync-bench server --server-bin PATH [--baseline-bin PATH] [--duration SECS] [--quick]");
            std::process::exit(2);
        }
    }
}

fn run(args: &[String]) {
    let mut quick = false;
    let mut only: Option<String> = None;
    let mut cdylib: Option<PathBuf> = None;
    let mut kotlin_runner: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => quick = true,
            "--only" => {
                let name = it.next().expect("--only SCENARIO");
                if !["persist", "cold", "sync", "size", "ffi", "chat"].contains(&name.as_str()) {
                    eprintln!("unknown scenario {name}: persist, cold, sync, size, ffi or chat");
                    std::process::exit(2);
                }
                only = Some(name.clone());
            }
            "--cdylib" => cdylib = Some(it.next().expect("--cdylib PATH").into()),
            "--kotlin-runner" => {
                kotlin_runner = Some(it.next().expect("--kotlin-runner PATH").into())
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let sizes = if quick { Sizes::quick() } else { Sizes::full() };
    let started = Instant::now();
    println!(
        "chatsync-bench{}: {} build, {} CPUs, {}",
        if quick {
            " --quick (small sizes: a smoke run, not the figures)"
        } else {
            ""
        },
        if cfg!(debug_assertions) {
            "DEBUG"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
    );
    let mut report = Report::default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let wanted = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if wanted("persist") {
        persist::run(&sizes, &mut report);
    }
    if wanted("cold") {
        cold::run(&sizes, &mut report);
    }
    if wanted("sync") {
        let dir = tempfile::tempdir().expect("temp dir");
        let seed = Instant::now();
        let mut server = runtime.block_on(server::start_seeded(
            &dir.path().join("server.db"),
            sizes.sync_total,
            sizes.sync_rooms,
        ));
        eprintln!(
            "[bench] server seeded with {} messages in {:.1} s",
            sizes.sync_total,
            seed.elapsed().as_secs_f64()
        );
        let synced_store = first_sync::run(&sizes, &mut server, &runtime, &mut report);
        wake::run(&sizes, &server, synced_store.path(), &runtime, &mut report);
        runtime.block_on(server.server.shutdown());
    }
    if wanted("size") {
        match &cdylib {
            Some(path) => size::run(path, &mut report),
            None => {
                report.section("7. size: release cdylib of chatsync-ffi");
                report.not_measured(
                    "libchatsync.so",
                    "no --cdylib given (scripts/bench.sh builds and passes it)",
                );
            }
        }
    }
    if wanted("ffi") {
        ffi::run(&sizes, kotlin_runner.as_deref(), &mut report);
    }
    if wanted("chat") {
        let started = Instant::now();
        chat_mix::run(&sizes, &runtime, &mut report);
        eprintln!(
            "[bench] scenario 9 in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "\n{} figures in {:.0} s; {}",
        report.rows,
        started.elapsed().as_secs_f64(),
        load_average()
    );
}

/// The machine's 1, 5 and 15 minute load averages (other work sharing the CPUs).
pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "load unknown".into(),
        |l| {
            format!(
                "load average {}",
                l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
            )
        },
    )
}
