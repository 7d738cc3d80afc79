//! `chatsync-park`: parks many `/v1/sync` long-polls on a server and wakes them with one send.
//!
//! ```sh
//! cargo run --release -p chatsync-tests --bin chatsync-park -- --polls 5000
//! cargo run --release -p chatsync-tests --bin chatsync-park -- --polls 5000 --addr 127.0.0.1:5000
//! ```
//! Without `--addr` it runs the reference server in-process (and then also reports the
//! process's threads and memory while the long-polls wait). Raises its own open-file limit to
//! the hard limit. Exits 0 when every long-poll was answered with the message.

use std::net::SocketAddr;

use chatsync_tests::park;
use clap::Parser;

/// Park many long-polls, wake them with one send.
#[derive(Debug, Parser)]
struct Args {
    /// Long-polls to park.
    #[arg(long, default_value_t = 5_000)]
    polls: usize,
    /// Users they are spread over (all in one room).
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// A running server (dev auth) on loopback; default: one in-process.
    #[arg(long)]
    addr: Option<SocketAddr>,
}

fn main() {
    let args = Args::parse();
    if let Some(addr) = args.addr {
        if !addr.ip().is_loopback() {
            eprintln!("chatsync-park: only loopback addresses are allowed");
            std::process::exit(2);
        }
    }
    let limit = park::raise_fd_limit();
    let needed = (args.polls as u64) * if args.addr.is_some() { 1 } else { 2 } + 200;
    if limit < needed {
        eprintln!("chatsync-park: open-file limit {limit} < {needed} needed; raise `ulimit -Hn`");
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(async {
        match args.addr {
            Some(addr) => park::run(addr, args.polls, args.users, || None).await,
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let server = chatsync_server::start(chatsync_server::ServerConfig::for_tests(
                    dir.path().join("park.db"),
                ))
                .await
                .map_err(|e| park::ParkError(e.to_string()))?;
                let r = park::run(server.addr(), args.polls, args.users, || {
                    Some(server.parked_long_polls())
                })
                .await;
                server.shutdown().await;
                r
            }
        }
    });
    match result {
        Ok(report) => {
            println!("{report}");
            std::process::exit(if report.answered_with_message == args.polls {
                0
            } else {
                1
            });
        }
        Err(e) => {
            eprintln!("chatsync-park: {e}");
            std::process::exit(1);
        }
    }
}
