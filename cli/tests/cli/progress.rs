//! Progress of a sync: drawn on a terminal (a real pty, through util-linux `script`), silent
//! when stderr is a pipe.

use std::process::Command;

use crate::support::{Device, Server, BIN};

/// `'text'` for a POSIX shell.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[test]
fn a_sync_shows_progress_on_a_terminal_and_nothing_in_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    for text in ["one", "two", "three"] {
        alice.json(&["send", "--to", "bob", text]);
    }

    let piped = Device::new(tmp.path(), "bob", &server.url()).expect(0, &["sync"]);
    assert_eq!(piped.stderr(), "", "nothing on a piped stderr");

    // A second device of bob's, on a terminal.
    let json = tmp.path().join("report.json");
    let command = [
        BIN,
        "--server",
        &server.url(),
        "--user",
        "bob",
        "--data",
        tmp.path().join("bob-tty").to_str().unwrap(),
        "sync",
    ]
    .iter()
    .map(|a| shell_quote(a))
    .collect::<Vec<_>>()
    .join(" ");
    let command = format!("{command} > {}", shell_quote(json.to_str().unwrap()));
    let out = match Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HOME", tmp.path())
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!("util-linux `script` is needed for the pty test (Debian: bsdutils): {e}"),
    };
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    // Drawn at once; the counts that follow depend on how fast the core's events arrive.
    assert!(
        screen.contains("\rsyncing"),
        "no progress drawn: {screen:?}"
    );
    assert!(
        screen.contains("\x1b[2K"),
        "the progress line is cleared at the end: {screen:?}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["online"], true);
}
