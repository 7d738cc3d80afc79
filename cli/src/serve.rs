//! `chatsync serve`: the reference server from the same binary, so a fresh clone needs one
//! command to get a server and a client. It only forwards to chatsync-server: same flags
//! ([`chatsync_server::ServeArgs`]), same code path as the `chatsync-server` binary.

use crate::exit::{CliError, Exit};

/// Runs the server until SIGINT or SIGTERM, logging to stderr (`RUST_LOG` filters, default info).
pub async fn serve(args: chatsync_server::ServeArgs) -> Result<Exit, CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
    chatsync_server::run(args)
        .await
        .map(|()| Exit::Ok)
        .map_err(|e| CliError::internal(format!("server: {e}")))
}
