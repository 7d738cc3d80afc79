//! Test harness: the built `chatsync` binary, the real reference server (`chatsync serve`, a
//! child process we can SIGKILL and restart on the same port and database), device stores in
//! temp dirs, and bounded waits on real conditions.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_chatsync");

/// Upper bound of every wait in these tests (real conditions, polled).
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The reference server as a child process: `chatsync serve` on a fixed loopback port.
pub struct Server {
    pub addr: SocketAddr,
    db: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// Starts a server on a fresh port with its database in `dir`.
    pub fn start(dir: &Path) -> Server {
        // Another test may take the free port before our server binds it: try a few ports.
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut server = Server {
                addr: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
                db: dir.join("server.db"),
                log: dir.join("server.log"),
                child: None,
            };
            match server.try_start() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("the server did not start: {last_error}");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts it (again) on the same port and database; returns once it accepts connections.
    pub fn restart(&mut self) {
        if let Err(e) = self.try_start() {
            panic!("the server did not restart on {}: {e}", self.addr);
        }
    }

    fn try_start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--addr", &self.addr.to_string(), "--db"])
            .arg(&self.db)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn chatsync serve");
        self.child = Some(child);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("server exited with {status}: {log}"));
            }
            if TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "server did not listen on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs it: a real outage, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One user's device: a data dir and the server URL it talks to.
pub struct Device {
    pub user: String,
    pub data: PathBuf,
    pub server: String,
}

impl Device {
    pub fn new(root: &Path, user: &str, server: &str) -> Device {
        Device {
            user: user.to_owned(),
            data: root.join(user),
            server: server.to_owned(),
        }
    }

    /// A `chatsync` command for this device with a clean environment (no CHATSYNC_* from the
    /// caller, HOME inside the temp dir so nothing touches the real data dir).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.data.parent().unwrap())
            .args(["--server", &self.server, "--user", &self.user, "--data"])
            .arg(&self.data)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs a command to completion.
    pub fn run(&self, args: &[&str]) -> Run {
        Run(self.command(args).output().expect("run chatsync"))
    }

    /// Runs a command that must exit with `code`; returns its output.
    pub fn expect(&self, code: i32, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code(),
            code,
            "chatsync {args:?} as {}: {}",
            self.user,
            run.describe()
        );
        run
    }

    /// Runs a command that must succeed and print JSON; returns the JSON.
    pub fn json(&self, args: &[&str]) -> Value {
        self.expect(0, args).json()
    }
}

/// A finished command.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().expect("exited by a signal")
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }
    pub fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.0.status.code(),
            self.stdout(),
            self.stderr()
        )
    }
    /// Asserts stderr is exactly one non-empty line and returns it.
    pub fn one_stderr_line(&self) -> String {
        let err = self.stderr();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one line on stderr: {}",
            self.describe()
        );
        assert!(!lines[0].trim().is_empty());
        lines[0].to_owned()
    }
}

/// An interactive `chatsync chat` with piped stdin and stdout.
pub struct ChatSession {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// Every stdout line seen so far, for failure messages.
    pub seen: Vec<String>,
}

impl ChatSession {
    pub fn start(device: &Device, with: &str) -> ChatSession {
        let mut child = device
            .command(&["chat", "--with", with])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn chatsync chat");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        ChatSession {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Types a line.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin closed");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a stdout line containing `needle`; returns it.
    pub fn wait_for(&mut self, needle: &str) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = DEADLINE.checked_sub(start.elapsed()).unwrap_or_default();
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line containing {needle:?} within {DEADLINE:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Lines seen so far (after waiting for nothing more).
    pub fn count(&self, needle: &str) -> usize {
        self.seen.iter().filter(|l| l.contains(needle)).count()
    }

    /// Closes stdin (Ctrl-D) and waits for the exit code.
    pub fn close(mut self) -> i32 {
        drop(self.stdin.take());
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().expect("exited by a signal");
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!(
                    "chat did not exit after end of input; saw:\n{}",
                    self.seen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChatSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every file under `dir` with its bytes, to prove a failed command changed nothing.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}
