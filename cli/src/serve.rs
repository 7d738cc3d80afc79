//! `chatsync serve`: the reference server from the same binary, so a fresh clone needs one
//! command to get a server and a client. It only forwards to chatsync-server: same flags, same
//! code path as the `chatsync-server` binary.

use crate::exit::{CliError, Exit};

/// The server's flags (placeholder until chatsync-server exposes `ServeArgs`).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long)]
    pub addr: Option<String>,
    /// Database file.
    #[arg(long)]
    pub db: Option<std::path::PathBuf>,
}

/// Runs the server until it is stopped.
pub async fn serve(args: ServeArgs) -> Result<Exit, CliError> {
    let _ = args;
    Err(CliError::internal("chatsync serve is not available yet"))
}
