//! Many parked long-polls: N clients (raw TCP, one connection each) park `GET /v1/sync` on the
//! server, then one message is sent and every one of them must be answered with it. Shows that
//! the server holds many waiting clients without a thread each (its thread count is measured
//! while they wait) and how long waking all of them takes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::http::Harness;

/// What a park run measured.
#[derive(Clone, Debug, Default)]
pub struct ParkReport {
    /// Long-polls parked (seen by the server when `parked_seen` is given, else connected).
    pub parked: usize,
    /// How long connecting and parking all of them took.
    pub park_time: Duration,
    /// From the send to the last answer.
    pub wake_time: Duration,
    /// Answers that carried the sent message.
    pub answered_with_message: usize,
    /// Threads of this process while all were parked (the server's when it runs in-process).
    pub threads_while_parked: Option<u64>,
    /// Resident memory of this process while all were parked, in KiB.
    pub rss_kib_while_parked: Option<u64>,
}

impl std::fmt::Display for ParkReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} long-polls parked in {:.2} s; one send answered {} of them in {:.3} s; threads while parked: {}; RSS while parked: {}",
            self.parked,
            self.park_time.as_secs_f64(),
            self.answered_with_message,
            self.wake_time.as_secs_f64(),
            self.threads_while_parked.map_or("?".into(), |t| t.to_string()),
            self.rss_kib_while_parked.map_or("?".into(), |k| format!("{} MiB", k / 1024)),
        )
    }
}

/// Raises this process's open-file limit to its hard limit (what `ulimit -n` would), and
/// returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit on a valid, owned struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// A field of /proc/self/status (`Threads`, `VmRSS`), as a number.
pub fn proc_status(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Errors of a park run.
#[derive(Debug, thiserror::Error)]
#[error("park: {0}")]
pub struct ParkError(pub String);

/// Parks `n` long-polls on the server at `addr` (spread over `users` users sharing one room),
/// waits until `parked_seen()` reports them all (or, when it returns `None`, until all are
/// connected and written), sends one message and checks every long-poll is answered with it.
pub async fn run(
    addr: SocketAddr,
    n: usize,
    users: usize,
    parked_seen: impl Fn() -> Option<usize>,
) -> Result<ParkReport, ParkError> {
    let err = |e: &dyn std::fmt::Display| ParkError(e.to_string());
    let harness = Harness::new(format!("http://{addr}"));
    let users = users.clamp(1, 999);
    let names: Vec<String> = (0..users).map(|i| format!("parker{i}")).collect();
    let mut tokens = Vec::new();
    for name in &names {
        tokens.push(harness.token(name).await.map_err(|e| err(&e))?);
    }
    let room = harness
        .create_room(&tokens[0], "park", &names)
        .await
        .map_err(|e| err(&e))?;
    // Each user's position now, so the long-poll has nothing new and parks.
    let mut since = Vec::new();
    for token in &tokens {
        let answer = request(addr, "/v1/sync?timeout_ms=0", token).await?;
        let body: serde_json::Value = serde_json::from_str(&answer).map_err(|e| err(&e))?;
        since.push(body["next_batch"].as_str().unwrap_or_default().to_owned());
    }

    let started = Instant::now();
    // Bounded concurrency while connecting, so the listen backlog never overflows.
    let connecting = Arc::new(Semaphore::new(256));
    let mut polls = Vec::with_capacity(n);
    for i in 0..n {
        let (token, since) = (tokens[i % users].clone(), since[i % users].clone());
        let permit = connecting
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| err(&e))?;
        let mut stream = TcpStream::connect(addr).await.map_err(|e| err(&e))?;
        let head = format!(
            "GET /v1/sync?since={since}&timeout_ms=30000 HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| err(&e))?;
        drop(permit);
        polls.push(tokio::spawn(async move {
            let mut got = Vec::new();
            stream.read_to_end(&mut got).await.map(|_| got)
        }));
    }
    // Wait (bounded) until the server holds them all.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut parked = n;
    loop {
        match parked_seen() {
            None => break,
            Some(seen) if seen >= n => {
                parked = seen;
                break;
            }
            Some(seen) if Instant::now() > deadline => {
                return Err(ParkError(format!("only {seen} of {n} parked within 60 s")))
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let park_time = started.elapsed();
    let threads = proc_status("Threads:");
    let rss = proc_status("VmRSS:");

    let text = format!("wake up {}", fastrand::u64(..));
    let body = serde_json::json!({"parts": [{"type": "text/plain", "content": text}]}).to_string();
    let woke = Instant::now();
    send(addr, &room.id, &tokens[0], &body).await?;
    let mut answered = 0;
    for poll in polls {
        let got = tokio::time::timeout(Duration::from_secs(60), poll)
            .await
            .map_err(|_| ParkError("a long-poll was not answered within 60 s".into()))?
            .map_err(|e| err(&e))?
            .map_err(|e| err(&e))?;
        let got = String::from_utf8_lossy(&got);
        if got.starts_with("HTTP/1.1 200") && got.contains(&text) {
            answered += 1;
        }
    }
    Ok(ParkReport {
        parked,
        park_time,
        wake_time: woke.elapsed(),
        answered_with_message: answered,
        threads_while_parked: threads,
        rss_kib_while_parked: rss,
    })
}

/// One GET with a bearer token; the body of a 200.
async fn request(addr: SocketAddr, target: &str, token: &str) -> Result<String, ParkError> {
    exchange(
        addr,
        format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\nconnection: close\r\n\r\n"),
    )
    .await
}

async fn send(addr: SocketAddr, room: &str, token: &str, body: &str) -> Result<String, ParkError> {
    exchange(
        addr,
        format!(
            "PUT /v1/rooms/{room}/messages/wake-{} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            fastrand::u64(..),
            body.len()
        ),
    )
    .await
}

async fn exchange(addr: SocketAddr, raw: String) -> Result<String, ParkError> {
    let err = |e: &dyn std::fmt::Display| ParkError(e.to_string());
    let mut s = TcpStream::connect(addr).await.map_err(|e| err(&e))?;
    s.write_all(raw.as_bytes()).await.map_err(|e| err(&e))?;
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.map_err(|e| err(&e))?;
    let got = String::from_utf8_lossy(&got).to_string();
    if !got.starts_with("HTTP/1.1 200") {
        return Err(ParkError(format!(
            "unexpected answer: {}",
            &got[..got.len().min(300)]
        )));
    }
    Ok(got
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}
