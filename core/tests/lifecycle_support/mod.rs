//! Test helpers for the lifecycle tests: a counting loopback proxy between a client and the real
//! server (to count and time requests exactly, and to cut the network for real), a server that
//! accepts connections and never answers, and an event recorder.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatsync_core::{ClientEvent, ClientListener, NetworkStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// One request seen by the proxy: when (tokio time, so virtual under a paused clock), method and
/// path (without the query).
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Answered by the proxy itself with an injected error (never reached the server).
    pub faulted: bool,
}

/// An error answer the proxy gives instead of forwarding (a body-less request, e.g. a sync).
#[derive(Clone, Debug)]
pub struct Fault {
    pub path_prefix: String,
    pub status: u16,
    pub retry_after: Option<u64>,
    /// How many matching requests still get it.
    pub remaining: u32,
}

/// A TCP proxy on 127.0.0.1 that forwards to `upstream`, parses the HTTP/1.1 request heads
/// going through (bodies skipped by content-length) and logs them. `cut()` drops every open
/// connection and refuses new ones (they are accepted and closed at once): a real network cut.
pub struct CountingProxy {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<SeenRequest>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
    cut_tx: watch::Sender<bool>,
    stall_tx: watch::Sender<bool>,
}

impl CountingProxy {
    pub async fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let faults: Arc<Mutex<Vec<Fault>>> = Arc::new(Mutex::new(Vec::new()));
        let (cut_tx, cut_rx) = watch::channel(false);
        let (stall_tx, stall_rx) = watch::channel(false);
        let task_log = log.clone();
        let task_faults = faults.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *cut_rx.borrow() {
                    drop(client);
                    continue;
                }
                let log = task_log.clone();
                let faults = task_faults.clone();
                let mut cut = cut_rx.clone();
                let stall = stall_rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = pump(client, server, log, faults, stall) => {}
                        _ = cut.wait_for(|c| *c) => {}
                    }
                });
            }
        });
        CountingProxy {
            addr,
            log,
            faults,
            cut_tx,
            stall_tx,
        }
    }

    /// Stalls (true) or resumes (false) traffic: while stalled, requests are logged but not
    /// forwarded and nothing is answered (a server that accepts and never answers).
    pub fn stall(&self, stall: bool) {
        self.stall_tx.send_replace(stall);
    }

    /// Answers the next `count` requests under `path_prefix` with `status` (and `Retry-After`).
    pub fn fail_next(&self, path_prefix: &str, count: u32, status: u16, retry_after: Option<u64>) {
        self.faults.lock().unwrap().push(Fault {
            path_prefix: path_prefix.to_owned(),
            status,
            retry_after,
            remaining: count,
        });
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Cuts (true) or restores (false) the network between client and server.
    pub fn cut(&self, cut: bool) {
        self.cut_tx.send_replace(cut);
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> Vec<SeenRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.starts_with(prefix))
            .collect()
    }
}

async fn pump(
    client: TcpStream,
    server: TcpStream,
    log: Arc<Mutex<Vec<SeenRequest>>>,
    faults: Arc<Mutex<Vec<Fault>>>,
    mut stall: watch::Receiver<bool>,
) {
    let (mut client_read, client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let client_write = Arc::new(tokio::sync::Mutex::new(client_write));
    let answer_write = client_write.clone();
    let upstream = async move {
        let mut parser = RequestParser::default();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut injected = None;
            for (method, path) in parser.feed(&buf[..n]) {
                let fault = take_fault(&faults, &path);
                log.lock().unwrap().push(SeenRequest {
                    at: Instant::now(),
                    method,
                    path,
                    faulted: fault.is_some(),
                });
                injected = injected.or(fault);
            }
            if let Some(fault) = injected {
                // HTTP/1.1 without pipelining: this read held exactly that request; answer it here.
                let body =
                    r#"{"error":"unavailable","error_description":"injected by the test proxy"}"#;
                let retry = fault
                    .retry_after
                    .map(|s| format!("retry-after: {s}\r\n"))
                    .unwrap_or_default();
                let answer = format!(
                    "HTTP/1.1 {} Injected\r\ncontent-type: application/json\r\n{retry}content-length: {}\r\n\r\n{body}",
                    fault.status,
                    body.len()
                );
                if answer_write
                    .lock()
                    .await
                    .write_all(answer.as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            // Stalled: hold the request until traffic resumes (the client gives up first).
            if stall.wait_for(|s| !*s).await.is_err() {
                return;
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if client_write
                .lock()
                .await
                .write_all(&buf[..n])
                .await
                .is_err()
            {
                return;
            }
        }
    };
    // Either direction closing ends the connection (both sockets are dropped).
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

fn take_fault(faults: &Mutex<Vec<Fault>>, path: &str) -> Option<Fault> {
    let mut faults = faults.lock().unwrap();
    let fault = faults
        .iter_mut()
        .find(|f| f.remaining > 0 && path.starts_with(&f.path_prefix))?;
    fault.remaining -= 1;
    Some(fault.clone())
}

/// Incremental HTTP/1.1 request-head parser: yields (method, path) per complete head.
#[derive(Default)]
struct RequestParser {
    buffer: Vec<u8>,
    body_left: usize,
}

impl RequestParser {
    fn feed(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buffer.extend_from_slice(bytes);
        let mut seen = Vec::new();
        loop {
            if self.body_left > 0 {
                let skip = self.body_left.min(self.buffer.len());
                self.buffer.drain(..skip);
                self.body_left -= skip;
                if self.body_left > 0 {
                    return seen;
                }
            }
            let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                return seen;
            };
            let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
            self.buffer.drain(..end + 4);
            let mut lines = head.split("\r\n");
            let mut first = lines.next().unwrap_or("").split(' ');
            let method = first.next().unwrap_or("").to_owned();
            let target = first.next().unwrap_or("");
            let path = target.split('?').next().unwrap_or("").to_owned();
            for line in lines {
                if let Some((name, value)) = line.split_once(':') {
                    if name.trim().eq_ignore_ascii_case("content-length") {
                        self.body_left = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            seen.push((method, path));
        }
    }
}

/// A server that accepts connections and never answers (holds every socket open).
pub async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    addr
}

/// Records every event a client sends to its listener.
#[derive(Default)]
pub struct Recorder {
    events: Mutex<Vec<ClientEvent>>,
    pub closed: AtomicBool,
}

impl ClientListener for Recorder {
    fn on_event(&self, event: ClientEvent) {
        self.events.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<ClientEvent> {
        self.events.lock().unwrap().clone()
    }

    pub fn statuses(&self) -> Vec<NetworkStatus> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                ClientEvent::NetworkStatusChanged { status } => Some(status),
                _ => None,
            })
            .collect()
    }

    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

/// Polls `condition` every few milliseconds (real time) until it holds or `deadline` passes.
pub fn wait_real(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Async version: polls `condition` on the tokio clock (virtual under a paused clock) until it
/// holds or `deadline` passes.
pub async fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Another user talking to the server over plain HTTP (no store of its own): its sends involve
/// no disk flush on another thread, so under a paused clock they cannot let time jump.
pub struct RawUser {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl RawUser {
    /// Gets a dev token for `user_id` from the server at `base`.
    pub async fn login(base: &str, user_id: &str) -> RawUser {
        let http = reqwest::Client::new();
        let token: chatsync_protocol::TokenResponse = http
            .post(format!("{base}/v1/token"))
            .json(&chatsync_protocol::TokenRequest {
                user_id: user_id.to_owned(),
            })
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        RawUser {
            http,
            base: base.to_owned(),
            token: token.access_token,
        }
    }

    /// Sends `text` into `room_id`; returns the stored message.
    pub async fn send(&self, room_id: &str, text: &str) -> chatsync_protocol::Message {
        let txn = format!("raw-{}", self.http_txn());
        self.http
            .put(format!("{}/v1/rooms/{room_id}/messages/{txn}", self.base))
            .bearer_auth(&self.token)
            .json(&chatsync_protocol::SendMessageRequest {
                parts: vec![chatsync_protocol::Part::text(text)],
            })
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    fn http_txn(&self) -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        NEXT.fetch_add(1, Ordering::SeqCst)
    }
}

impl RawUser {
    /// The newest messages of a room as the server holds them.
    pub async fn history(&self, room_id: &str) -> Vec<chatsync_protocol::Message> {
        let page: chatsync_protocol::HistoryResponse = self
            .http
            .get(format!(
                "{}/v1/rooms/{room_id}/messages?limit=100",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        page.messages
    }
}
