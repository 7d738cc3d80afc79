//! Exit codes and the one stderr line for each failure the CLI documents, and proof that a
//! failed command leaves the store as it was.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{free_port, snapshot, ChatSession, Device, Server, BIN};

fn unreachable_server() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

#[test]
fn bad_flags_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "alice", &unreachable_server());
    let line = dev.expect(2, &["--bogus", "sync"]).one_stderr_line();
    assert!(line.contains("--bogus"), "{line}");
    dev.expect(2, &["send", "hello"]).one_stderr_line(); // neither --room nor --to
    dev.expect(2, &["send", "--room", "r", "--to", "bob", "hello"])
        .one_stderr_line();
    dev.expect(2, &["messages", "--room", "r", "--limit", "zero"])
        .one_stderr_line();
    dev.expect(2, &["frobnicate"]).one_stderr_line();
    assert!(!dev.data.exists(), "a usage error must not create a store");
}

#[test]
fn a_missing_user_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .env_clear()
        .env("HOME", tmp.path())
        .args(["--server", &unreachable_server(), "outbox"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--user"), "{err}");
}

#[test]
fn help_lists_the_exit_codes() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("3  offline") && help.contains("5  storage"),
        "{help}"
    );
}

#[test]
fn an_unreachable_server_is_offline_and_reads_still_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "alice", &unreachable_server());
    let run = dev.expect(3, &["sync"]);
    let report = run.json();
    assert_eq!(report["online"], false, "{report}");
    assert_eq!(report["pending"], 0);
    assert!(
        run.one_stderr_line().starts_with("offline"),
        "{}",
        run.describe()
    );

    // No room with bob yet, and no server to create it: nothing is queued.
    let send = dev.expect(3, &["send", "--to", "bob", "hello?"]);
    assert!(
        send.one_stderr_line().contains("bob"),
        "{}",
        send.describe()
    );
    assert_eq!(dev.json(&["outbox", "--json"]), serde_json::json!([]));
    assert_eq!(dev.json(&["rooms", "--json"]), serde_json::json!([]));
}

#[test]
fn a_data_dir_that_is_a_file_is_a_storage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("alice");
    std::fs::write(&file, b"not a store").unwrap();
    let dev = Device::new(tmp.path(), "alice", &unreachable_server());
    let line = dev.expect(5, &["outbox"]).one_stderr_line();
    assert!(line.contains("not a directory"), "{line}");
    assert_eq!(std::fs::read(&file).unwrap(), b"not a store");
}

/// Overwrites sled's config file(s) under `dir` with garbage; returns how many.
fn corrupt_sled_conf(dir: &Path) -> usize {
    let mut corrupted = 0;
    for (path, _) in snapshot(dir) {
        if path.file_name().is_some_and(|n| n == "conf") {
            std::fs::write(&path, b"\xde\xad\xbe\xef garbage, not a sled config").unwrap();
            corrupted += 1;
        }
    }
    corrupted
}

/// sled's conf holds only settings this build always uses: a garbled one is written anew.
#[test]
fn a_garbled_sled_conf_is_repaired_and_nothing_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "alice", &unreachable_server());
    dev.expect(0, &["send", "--room", "r1", "kept"]);
    assert!(
        corrupt_sled_conf(&dev.data) > 0,
        "no sled conf under {}",
        dev.data.display()
    );
    let outbox = dev.json(&["outbox", "--json"]);
    assert_eq!(outbox[0]["text"], "kept", "{outbox}");
}

/// A log destroyed by the disk: every command says so in one line, with what to do
/// (`chatsync doctor`), and prints nothing on stdout.
#[test]
fn a_destroyed_store_is_a_storage_error_that_says_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "alice", &unreachable_server());
    dev.expect(0, &["outbox"]); // creates the store offline
    let db = dev.data.join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0x5a; len]).unwrap();
    for args in [
        &["outbox"][..],
        &["sync"],
        &["send", "--room", "r1", "hi"],
        &["rooms", "--json"],
    ] {
        let run = dev.run(args);
        assert_eq!(run.code(), 5, "{args:?}: {}", run.describe());
        let line = run.one_stderr_line();
        assert!(line.contains("chatsync doctor"), "{line}");
        assert!(run.stdout().is_empty(), "{}", run.describe());
    }
}

/// The documented case of a store whose log is gone (truncated to nothing): the store refuses
/// to start empty, says so, and says what to do.
#[test]
fn a_store_truncated_to_nothing_refuses_to_start_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(tmp.path(), "alice", &unreachable_server());
    dev.expect(0, &["send", "--room", "r1", "queued"]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(dev.data.join("db"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let line = dev.expect(5, &["outbox"]).one_stderr_line();
    assert!(line.contains("refusing to start empty"), "{line}");
    assert!(line.contains("chatsync doctor"), "{line}");
}

/// Something on the port that is not a chatsync server: every request gets an HTML page.
struct ForeignServer {
    pub url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForeignServer {
    fn start() -> ForeignServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            // Bounded: stops when told, or after 30 s whatever happens.
            let started = std::time::Instant::now();
            while !stopping.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_millis(500)))
                            .unwrap();
                        let mut buf = [0u8; 16 * 1024];
                        let _ = conn.read(&mut buf);
                        let body = "<html><body>It works!</body></html>";
                        let _ = write!(
                            conn,
                            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ForeignServer {
            url,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ForeignServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn a_server_speaking_something_else_is_a_protocol_error() {
    let tmp = tempfile::tempdir().unwrap();
    let foreign = ForeignServer::start();
    let dev = Device::new(tmp.path(), "alice", &foreign.url);
    let run = dev.run(&["sync"]);
    assert_eq!(run.code(), 7, "{}", run.describe());
    assert!(
        run.one_stderr_line().contains("protocol"),
        "{}",
        run.describe()
    );

    // A send to a known room id is still queued (exit 0) and stays queued.
    let queued = dev.run(&["send", "--room", "r1", "kept"]);
    assert_eq!(queued.code(), 0, "{}", queued.describe());
    let outbox = dev.json(&["outbox", "--json"]);
    assert_eq!(outbox[0]["text"], "kept", "{outbox}");
}

#[test]
fn a_store_in_use_by_a_running_chat_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    alice.json(&["send", "--to", "bob", "hi"]);
    let mut chat = ChatSession::start(&alice, "bob");
    chat.wait_for("alice: hi");
    let line = alice.expect(6, &["outbox"]).one_stderr_line();
    assert!(line.contains("in use"), "{line}");
    assert_eq!(chat.close(), 0);
    // Free again once the chat has exited.
    assert_eq!(alice.json(&["outbox", "--json"]), serde_json::json!([]));
}

#[test]
fn a_bad_token_is_unauthorized_and_the_send_stays_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let dev = Device::new(tmp.path(), "alice", &server.url());
    let run = dev.run(&["--token", "not-a-token", "sync"]);
    assert_eq!(run.code(), 4, "{}", run.describe());
    assert!(
        run.one_stderr_line().contains("unauthorized"),
        "{}",
        run.describe()
    );

    // Queued all the same (exit 0): nothing typed is lost while the token is bad.
    let queued = dev.run(&["--token", "not-a-token", "send", "--room", "r1", "kept"]);
    assert_eq!(queued.code(), 0, "{}", queued.describe());
    assert_eq!(queued.json()["state"], "pending");
    assert_eq!(dev.json(&["outbox", "--json"])[0]["text"], "kept");
}

/// A reachable server that answers every request with `status` (and `Retry-After: 7` for the
/// busy ones), like an overloaded or failing deployment.
fn failing_server(status: u16) -> (String, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        while !stopping.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    conn.set_nonblocking(false).unwrap();
                    conn.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                    let mut buf = [0u8; 16 * 1024];
                    let _ = conn.read(&mut buf);
                    let body = r#"{"error":"overloaded","error_description":"too much going on"}"#;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nRetry-After: 7\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (url, stop, thread)
}

/// A server that answers, but with 500, 503 or 429, is not "unreachable": the CLI says what
/// happened (server error, or busy with when to retry), exits 3 and keeps the send queued.
#[test]
fn a_failing_or_busy_server_is_named_as_such_not_as_unreachable() {
    for (status, expected) in [
        (500, "server error (500)"),
        (503, "server busy (503)"),
        (429, "server busy (429)"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let (url, stop, thread) = failing_server(status);
        let dev = Device::new(tmp.path(), "alice", &url);
        let run = dev.run(&["sync"]);
        assert_eq!(run.code(), 3, "{status}: {}", run.describe());
        let line = run.one_stderr_line();
        assert!(line.contains(expected), "{status}: {line}");
        assert!(line.contains("too much going on"), "{status}: {line}");
        assert!(!line.contains("unreachable"), "{status}: {line}");
        if status != 500 {
            assert!(line.contains("retry after 7 s"), "{status}: {line}");
        }
        let queued = dev.run(&["send", "--room", "r1", "kept"]);
        assert_eq!(queued.code(), 0, "{status}: {}", queued.describe());
        assert!(
            queued.stderr().contains(expected),
            "{status}: {}",
            queued.describe()
        );
        assert_eq!(dev.json(&["outbox", "--json"])[0]["text"], "kept");
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
}
