//! `chatsync`: the device core in a terminal, and the reference server in the same binary.
//!
//! Modules, one concern each:
//! - [`args`]: the command line (clap), with the exit codes in `--help`.
//! - [`device`]: opens a user's store as an app does; resolves `--room` / `--to`.
//! - [`commands`]: the one-shot commands (send, sync, messages, rooms, outbox, retry, discard).
//! - [`chat`]: the interactive chat loop over the core's scheduler and events.
//! - [`doctor`]: checks a store and rebuilds a damaged one (the core's recovery).
//! - [`serve`]: forwards to chatsync-server.
//! - [`progress`]: sync progress on a terminal, silence in a pipe.
//! - [`render`]: how messages, rooms and outbox entries look as text.
//! - [`exit`]: errors as one stderr line plus a documented exit code.
//!
//! Every device command goes through `chatsync_core::ChatClient`; the CLI holds no chat logic.

mod args;
mod chat;
mod commands;
mod device;
mod doctor;
mod exit;
mod progress;
mod render;
mod serve;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::exit::{CliError, Exit};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            report_usage_error(&e);
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(cli) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("chatsync: {e}");
            e.exit.into()
        }
    }
}

/// `--help`, `--version` and a bare `chatsync` print in full; a real usage error is one line on
/// stderr (clap's first line, which names the problem), so scripts and people see one clear line.
fn report_usage_error(e: &clap::Error) {
    use clap::error::ErrorKind;
    if !e.use_stderr() || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return;
    }
    eprintln!("chatsync: {}", usage_error_line(&e.render().to_string()));
}

/// The one line of a rendered clap error: its first non-empty line, without the `error: ` prefix.
fn usage_error_line(rendered: &str) -> String {
    let first = rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (see chatsync --help)")
}

/// A small runtime for the CLI's own waiting (stdin, timers, signals); the core runs its work
/// on its own runtime.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))
}

fn run(cli: Cli) -> Result<Exit, CliError> {
    if let Command::Serve(args) = cli.command {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::internal(format!("cannot start the async runtime: {e}")))?;
        return rt.block_on(serve::serve(args));
    }
    if let Command::Doctor(args) = &cli.command {
        // Before any open: a damaged store does not open, and a healthy one must be closed.
        return doctor::doctor(&cli.global, args);
    }
    // The client owns a tokio runtime: create and drop it outside of ours.
    let client = device::open(&cli.global)?;
    let result = runtime().and_then(|rt| rt.block_on(run_device_command(&client, cli)));
    client.shutdown();
    result
}

async fn run_device_command(
    client: &Arc<chatsync_core::ChatClient>,
    cli: Cli,
) -> Result<Exit, CliError> {
    let global = &cli.global;
    device::ensure_session(client, global).await?;
    match cli.command {
        Command::Serve(_) | Command::Doctor(_) => unreachable!("handled before opening a store"),
        Command::Send(args) => commands::send(client, global, args).await,
        Command::Sync => commands::sync(client, global).await,
        Command::Messages(args) => commands::messages(client, global, args).await,
        Command::Rooms(args) => commands::rooms(client, args),
        Command::Outbox(args) => commands::outbox(client, args),
        Command::Retry(args) => commands::retry(client, global, args).await,
        Command::Discard(args) => commands::discard(client, args).await,
        Command::Chat(args) => chat::chat(client, global, args).await,
        Command::Edit(args) => commands::edit(client, global, args).await,
        Command::Delete(args) => commands::delete(client, global, args).await,
        Command::React(args) => commands::react(client, global, args).await,
        Command::Read(args) => commands::read(client, global, args).await,
        Command::Typing(args) => commands::typing(client, global, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_error_is_one_line() {
        let e = Cli::try_parse_from(["chatsync", "--bogus", "sync"]).unwrap_err();
        let line = usage_error_line(&e.render().to_string());
        assert_eq!(
            line,
            "unexpected argument '--bogus' found (see chatsync --help)"
        );
        assert_eq!(e.exit_code(), 2);
    }
}
