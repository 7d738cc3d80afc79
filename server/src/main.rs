//! `chatsync-server`: parses the flags, sets up logging, runs the server until SIGINT/SIGTERM.
//! Any failure to start is one line on stderr and a non-zero exit.

use std::process::ExitCode;

use clap::Parser;

/// The chatsync reference server (sync protocol v1).
#[derive(Debug, Parser)]
#[command(name = "chatsync-server", version, about)]
struct Cli {
    #[command(flatten)]
    serve: chatsync_server::ServeArgs,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            let line = line.strip_prefix("error: ").unwrap_or(line);
            eprintln!("chatsync-server: error: {line} (see --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chatsync-server: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(chatsync_server::run(cli.serve)) {
        Ok(()) => ExitCode::SUCCESS,
        // A configuration that cannot or must not run is a usage error, like a bad flag.
        Err(e @ chatsync_server::ServerError::Config(_)) => {
            eprintln!("chatsync-server: error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("chatsync-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}
