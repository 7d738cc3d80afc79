//! `chatsync doctor`: the core's store recovery (`ChatClient::recover`) from a terminal. A
//! healthy store is left alone (exit 0); a damaged one is kept aside untouched and rebuilt with
//! the login and every queued message that can be read, under its original txn id, so nothing
//! that reached the server is sent twice (exit 0, or 9 when something could not be read).

use chatsync_core::{ChatClient, ChatError, RecoveryReport};

use crate::args::{GlobalArgs, JsonFlag};
use crate::device::client_config;
use crate::exit::{CliError, Exit};
use crate::render::print_json;

pub fn doctor(global: &GlobalArgs, args: &JsonFlag) -> Result<Exit, CliError> {
    let config = client_config(global)?;
    let dir = config.data_dir.clone();
    let report = ChatClient::recover(config).map_err(|e| match e {
        ChatError::Busy(_) => CliError {
            exit: Exit::Busy,
            message: format!(
                "the store in {} is in use by another chatsync process; run doctor when it exits",
                dir.display()
            ),
        },
        e => CliError::from(e).context(format!("cannot check the store in {}", dir.display())),
    })?;
    if args.json {
        print_json(&report)
            .map_err(|e| CliError::internal(format!("cannot write the output: {e}")))?;
    } else {
        print_human(&dir.display().to_string(), &report);
    }
    Ok(if report.recovered && !report.unreadable.is_empty() {
        Exit::Salvaged
    } else {
        Exit::Ok
    })
}

fn print_human(dir: &str, report: &RecoveryReport) {
    if !report.recovered {
        println!("the store in {dir} is healthy: nothing to do");
        return;
    }
    println!(
        "the store in {dir} was damaged ({}); rebuilt",
        report.damage.as_deref().unwrap_or("unknown damage")
    );
    println!(
        "  {} queued message(s) kept, under their original txn ids (none is sent twice)",
        report.requeued
    );
    println!(
        "  login {}",
        if report.session_restored {
            "kept"
        } else {
            "not found: log in again"
        }
    );
    if let Some(aside) = &report.damaged_dir {
        println!("  the damaged store is kept, untouched, in {aside}");
    }
    println!("  `chatsync sync` brings back everything the server holds");
    for what in &report.unreadable {
        eprintln!("could not read: {what}");
    }
}
