//! `chatsync-soak`: the convergence soak from the command line, with a size knob.
//!
//! ```sh
//! cargo run -p chatsync-tests --bin chatsync-soak -- --size 3 --seed 42
//! ```
//! Size 1 is the run of the test suite (about 20 s of faults); each unit adds as much again.
//! Exits 0 when every store converged with nothing lost and nothing duplicated, 1 otherwise
//! (the report lists the broken promises), 2 when the soak could not be set up.

use std::path::PathBuf;

use chatsync_tests::soak::{self, SoakConfig};
use clap::Parser;

/// Convergence soak: devices, faults, and a check that nothing was lost or duplicated.
#[derive(Debug, Parser)]
struct Args {
    /// How big: 1 is about 20 s of faults; each unit adds as much again.
    #[arg(long, default_value_t = 1)]
    size: u32,
    /// Seed of every random choice (print it to replay a run).
    #[arg(long)]
    seed: Option<u64>,
    /// Devices (one user each).
    #[arg(long)]
    clients: Option<usize>,
    /// Keep the work directory (server database, device stores) for inspection.
    #[arg(long)]
    keep: bool,
    /// Run the servers on this PostgreSQL database (a new schema in it, dropped at the end)
    /// instead of a SQLite file: postgres://user@host:port/db.
    #[arg(long, env = "CHATSYNC_SOAK_PG_URL", hide_env_values = true)]
    postgres: Option<String>,
    /// Server instances on that database, behind the proxy (each kill kills one).
    #[arg(long, default_value_t = 1)]
    instances: usize,
}

fn client_bin() -> PathBuf {
    let me = std::env::current_exe().expect("current exe");
    me.with_file_name(format!(
        "chatsync-soak-client{}",
        std::env::consts::EXE_SUFFIX
    ))
}

fn main() {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut config = SoakConfig::sized(client_bin(), args.size, seed);
    if let Some(clients) = args.clients {
        config.clients = clients.max(1);
    }
    if args.instances > 1 && args.postgres.is_none() {
        eprintln!("chatsync-soak: --instances needs --postgres (SQLite is one server's file)");
        std::process::exit(2);
    }
    let schema = match &args.postgres {
        Some(url) => match chatsync_tests::pg::Schema::create_in(url) {
            Ok(schema) => Some(schema),
            Err(e) => {
                eprintln!("chatsync-soak: PostgreSQL: {e}");
                std::process::exit(2);
            }
        },
        None => None,
    };
    config.postgres = schema.as_ref().map(|s| s.url.clone());
    config.instances = args.instances.max(1);
    if !config.client_bin.exists() {
        eprintln!(
            "chatsync-soak: {} is missing; build it with `cargo build -p chatsync-tests --bins`",
            config.client_bin.display()
        );
        std::process::exit(2);
    }
    println!(
        "soak: seed {seed}, size {}, {} devices, {} rooms, {:?} of faults",
        args.size, config.clients, config.rooms, config.duration
    );
    let dir = tempfile::Builder::new()
        .prefix("chatsync-soak-")
        .tempdir()
        .expect("temp dir");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(soak::run(&config, dir.path()));
    if args.keep {
        println!("work directory kept: {}", dir.keep().display());
    }
    let code = match result {
        Ok(report) => {
            println!("{report}");
            if report.violations.is_empty() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("chatsync-soak: {e}");
            2
        }
    };
    drop(runtime);
    if let Some(schema) = schema {
        if args.keep {
            std::mem::forget(schema);
        }
    }
    std::process::exit(code);
}
