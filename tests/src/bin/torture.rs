//! `chatsync-torture`: the crash torture from the command line, with a size knob and a seed.
//!
//! ```sh
//! cargo build -p chatsync-tests --bins
//! ./target/debug/chatsync-torture --size 34 --seed 12
//! ```
//! Size 1 is the run of the test suite (300 SIGKILLs, 8 full-disk and 4 read-only cycles);
//! each unit adds as much again (`--kills N` sets the kills directly). Exits 0 when every
//! store opened after every kill with nothing lost, duplicated or out of order, 1 otherwise (the
//! report lists what broke), 2 when the torture could not be set up.

use std::path::PathBuf;

use chatsync_tests::torture::{self, TortureConfig};
use clap::Parser;

/// Crash torture: device processes SIGKILLed at random, opening included, on a flaky network
/// and a full or read-only disk; every store checked after every kill.
#[derive(Debug, Parser)]
struct Args {
    /// How big: 1 is 300 kills, 8 full-disk and 4 read-only cycles; each unit adds as much.
    #[arg(long, default_value_t = 1)]
    size: u32,
    /// SIGKILLs to land (overrides the size's).
    #[arg(long)]
    kills: Option<u32>,
    /// Device processes at once.
    #[arg(long)]
    slots: Option<usize>,
    /// Seed of every random choice (print it to replay a run's choices).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep the work directory (server database, device stores) for inspection.
    #[arg(long)]
    keep: bool,
}

fn client_bin() -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    me.with_file_name(format!(
        "chatsync-torture-client{}",
        std::env::consts::EXE_SUFFIX
    ))
}

fn main() {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut config = TortureConfig::sized(client_bin(), args.size, seed);
    if let Some(kills) = args.kills {
        config.kills = kills;
    }
    if let Some(slots) = args.slots {
        config.slots = slots.max(1);
    }
    if !config.client_bin.exists() {
        eprintln!(
            "chatsync-torture: {} is missing; build it with `cargo build -p chatsync-tests --bins`",
            config.client_bin.display()
        );
        std::process::exit(2);
    }
    println!(
        "torture: seed {seed}, size {}, {} kills over {} devices, {} full-disk and {} read-only cycles",
        args.size, config.kills, config.slots, config.disk_full_cycles, config.read_only_cycles
    );
    let dir = tempfile::Builder::new()
        .prefix("chatsync-torture-")
        .tempdir()
        .expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(torture::run(&config, dir.path()));
    if args.keep {
        println!("work directory kept: {}", dir.keep().display());
    }
    match result {
        Ok(report) => {
            println!("{report}");
            std::process::exit(if report.passed() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("chatsync-torture: {e}");
            std::process::exit(2);
        }
    }
}
