//! Fresh-process measurements: the bench re-executes itself with a `child ...` sub-command, so
//! a cold start, a first sync or a background wake runs in a process that holds nothing else
//! (the server stays in the parent). A child reports its own peak RSS (`VmHWM`) and CPU time
//! as one JSON line on stdout; lines before it are a small handshake with the parent.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Peak resident set size of this process so far, in KiB (`VmHWM` of /proc/self/status).
pub fn peak_rss_kib() -> u64 {
    status_field("VmHWM:")
}

fn status_field(name: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
}

/// User + system CPU time of this whole process (every thread) so far.
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct we hand it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Bytes of every file under `path` (a file or a directory), as `ls -l` counts them.
pub fn disk_bytes(path: &Path) -> u64 {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|entry| disk_bytes(&entry.expect("dir entry").path()))
        .sum()
}

/// A running child of the bench, talking line by line.
pub struct ChildProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    what: String,
}

impl ChildProcess {
    /// Starts `chatsync-bench child ARGS...` (this same binary).
    pub fn spawn(args: &[String]) -> ChildProcess {
        let exe = std::env::current_exe().expect("path of the bench binary");
        let mut child = Command::new(exe)
            .arg("child")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a child bench process");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        ChildProcess {
            child,
            stdin,
            stdout,
            what: args.join(" "),
        }
    }

    /// Reads the next line; fails loudly when the child ended or says something else.
    pub fn expect_line(&mut self, expected: &str) {
        let line = self.read_line();
        assert_eq!(
            line, expected,
            "child `{}` said {line:?}, expected {expected:?}",
            self.what
        );
    }

    fn read_line(&mut self) -> String {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("read from child");
        if n == 0 {
            let status = self.child.wait().expect("wait for child");
            panic!("child `{}` ended early ({status})", self.what);
        }
        line.trim_end().to_owned()
    }

    /// Writes one line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("child stdin");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .expect("write to child");
    }

    /// Reads the child's JSON result line and waits for a successful exit.
    pub fn finish(mut self) -> serde_json::Value {
        let line = self.read_line();
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for child");
        assert!(
            status.success(),
            "child `{}` failed ({status}); last line {line:?}",
            self.what
        );
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("child `{}` printed {line:?}, not JSON: {e}", self.what))
    }
}

/// Runs a child to completion and returns its JSON result.
pub fn run_child(args: &[String]) -> serde_json::Value {
    ChildProcess::spawn(args).finish()
}

/// In a child: prints a handshake line at once.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .expect("write to parent");
}

/// In a child: waits for the parent's next line.
pub fn wait_for_parent(expected: &str) {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .expect("read from parent");
    assert_eq!(line.trim_end(), expected, "parent said {line:?}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_grows_with_a_touched_allocation() {
        let before = peak_rss_kib();
        let block = vec![1u8; 64 << 20];
        assert!(block.iter().step_by(4096).all(|&b| b == 1));
        assert!(
            peak_rss_kib() >= before + (60 << 10),
            "{} -> {}",
            before,
            peak_rss_kib()
        );
    }

    #[test]
    fn cpu_time_advances_while_working() {
        let before = cpu_time();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        while cpu_time() - before < Duration::from_millis(30) {
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time counted in 20 s of work"
            );
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
    }

    #[test]
    fn disk_bytes_sums_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/b"), [0u8; 23]).unwrap();
        assert_eq!(disk_bytes(dir.path()), 123);
    }
}
