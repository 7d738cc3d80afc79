//! The built `chatsync-server` binary: one clear line and a non-zero exit for bad flags, a port in
//! use and an unwritable database; SIGTERM answers a parked long-poll and exits 0; no token in logs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_chatsync-server");

/// Runs the binary to completion (bounded) and returns (exit code, stderr).
fn run_to_end(args: &[&str], dir: &std::path::Path) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("CHATSYNC_ADDR")
        .env_remove("CHATSYNC_DB")
        .env_remove("CHATSYNC_AUTH")
        .env_remove("CHATSYNC_TOKEN_SECRET")
        .env_remove("CHATSYNC_TOKEN_TTL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status =
        wait_bounded(&mut child, Duration::from_secs(20)).expect("the binary exits by itself");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status.code().unwrap_or(-1), stderr)
}

fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[track_caller]
fn assert_one_line_error(code: i32, stderr: &str, needle: &str) {
    assert_ne!(code, 0, "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one line, got: {stderr:?}");
    assert!(
        lines[0].starts_with("chatsync-server: error: "),
        "{stderr:?}"
    );
    assert!(lines[0].contains(needle), "{needle:?} in {stderr:?}");
}

#[test]
fn bad_flags_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (&["--addr", "not-an-address"][..], "--addr"),
        (&["--auth", "maybe"][..], "--auth"),
        (&["--bogus"][..], "--bogus"),
        (&["--token-ttl", "soon"][..], "--token-ttl"),
        (&["--token-ttl", "0"][..], "--token-ttl"),
        (&["--token-ttl", "31536001"][..], "--token-ttl"),
        (&["--token-ttl", "18446744073709551615"][..], "--token-ttl"),
        (
            &["--token-ttl", "99999999999999999999999"][..],
            "--token-ttl",
        ),
    ] {
        let (code, stderr) = run_to_end(args, dir.path());
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_one_line_error(code, &stderr, needle);
    }
}

#[test]
fn unsafe_or_incomplete_auth_setups_are_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        // Dev mode hands anyone any account: not on an address others can reach...
        (
            &["--addr", "0.0.0.0:0", "--db", "x.db"][..],
            chatsync_server::DEV_ON_PUBLIC_ADDRESS_FLAG,
        ),
        (
            &["--addr", "[::]:0", "--db", "x.db"][..],
            chatsync_server::DEV_ON_PUBLIC_ADDRESS_FLAG,
        ),
        // ...and it never takes the operator's secret, which secret mode needs.
        (
            &[
                "--addr",
                "127.0.0.1:0",
                "--db",
                "x.db",
                "--token-secret",
                "s",
            ][..],
            "--token-secret is for --auth secret",
        ),
        (
            &["--addr", "127.0.0.1:0", "--db", "x.db", "--auth", "secret"][..],
            "--auth secret needs --token-secret",
        ),
    ] {
        let (code, stderr) = run_to_end(args, dir.path());
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_one_line_error(code, &stderr, needle);
    }
    assert!(
        !dir.path().join("x.db").exists(),
        "a refused start opens nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_on_a_public_address_starts_only_when_the_risk_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "--addr",
            "0.0.0.0:0",
            "--db",
            "chat.db",
            chatsync_server::DEV_ON_PUBLIC_ADDRESS_FLAG,
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("CHATSYNC_AUTH")
        .env_remove("CHATSYNC_TOKEN_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Log::capture(&mut child);
    let _child = Running(child);
    log.wait_for("listening").await;
    let warning = log.wait_for("dev auth on a non-loopback address").await;
    assert!(warning.contains("any account"), "{warning}");
}

#[test]
fn help_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--help")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--addr",
        "--db",
        "--auth",
        "--token-secret",
        "--token-ttl",
        "--header-timeout",
        "--body-timeout",
        "--idle-timeout",
        "--max-connections",
        chatsync_server::DEV_ON_PUBLIC_ADDRESS_FLAG,
        "CHATSYNC_ADDR",
        "CHATSYNC_MAX_CONNECTIONS",
    ] {
        assert!(help.contains(flag), "{flag} in help");
    }
}

#[test]
fn a_port_in_use_is_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = run_to_end(&["--addr", &addr, "--db", "x.db"], dir.path());
    assert_one_line_error(code, &stderr, &format!("cannot listen on {addr}"));
}

#[test]
fn an_unwritable_database_path_is_one_line_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "x").unwrap();
    let (code, stderr) = run_to_end(
        &["--addr", "127.0.0.1:0", "--db", "a-file/chat.db"],
        dir.path(),
    );
    assert_one_line_error(code, &stderr, "cannot open database a-file/chat.db");
    // A directory is not a database either.
    let (code, stderr) = run_to_end(&["--addr", "127.0.0.1:0", "--db", "."], dir.path());
    assert_one_line_error(code, &stderr, "cannot open database");
}

/// A server process, killed when dropped, so a failing test leaves none behind.
pub struct Running(pub Child);

impl Running {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The child's stderr lines, collected by a reader thread.
pub struct Log {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
}

impl Log {
    pub fn capture(child: &mut Child) -> Self {
        let stderr = child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Log { lines, reader }
    }

    /// Waits (bounded) for a line containing `needle`.
    pub async fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(needle))
            {
                return line.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}: {:#?}",
                self.lines.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn finish(self) -> Vec<String> {
        self.reader.join().unwrap();
        std::sync::Arc::try_unwrap(self.lines)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_a_parked_long_poll_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0", "--db", "chat.db"])
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .env_remove("CHATSYNC_AUTH")
        .env_remove("CHATSYNC_TOKEN_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Log::capture(&mut child);
    let listening = log.wait_for("listening").await;
    let addr = listening
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .expect("addr= in the log line")
        .to_owned();
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{url}/v1/token"))
        .json(&json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let sync: Value = http
        .get(format!("{url}/v1/sync"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    let poll = tokio::spawn({
        let (http, url, token) = (http.clone(), url.clone(), token.clone());
        async move {
            http.get(format!("{url}/v1/sync?since={since}&timeout_ms=30000"))
                .bearer_auth(token)
                .send()
                .await
        }
    });
    assert!(log.wait_for("long-poll parked").await.contains("alice"));

    let started = Instant::now();
    // SAFETY: sends a signal to our own child process; no memory is involved.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let answer = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("answered")
        .unwrap()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["rooms"], json!({}));
    let exit =
        tokio::task::spawn_blocking(move || wait_bounded(&mut child, Duration::from_secs(15)))
            .await
            .unwrap();
    assert!(exit.expect("exits after SIGTERM").success());
    assert!(started.elapsed() < Duration::from_secs(15));
    let lines = log.finish();
    assert!(lines.iter().any(|l| l.contains("SIGTERM")), "{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("dev auth")),
        "dev mode is announced"
    );
    let secret = std::fs::read_to_string(dir.path().join("chat.db.dev-token-secret")).unwrap();
    for line in &lines {
        assert!(
            !line.contains(&token),
            "a token leaked into the log: {line}"
        );
        assert!(
            !line.contains(secret.trim()),
            "the secret leaked into the log: {line}"
        );
    }
}
