//! Builders shared by the tests: a server on loopback that can be killed and restarted on the
//! same address and database, and clients for named users in temp dirs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatsync_core::{
    ChatClient, ChatMessage, ClientConfig, ClientEvent, ClientListener, TokenSource,
};
use chatsync_server::{RunningServer, ServerConfig};

/// A reference server with its database in a temp dir, restartable on the same address.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub running: Option<RunningServer>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let running = chatsync_server::start(ServerConfig::for_tests(dir.path().join("server.db")))
            .await
            .unwrap();
        TestServer {
            addr: running.addr(),
            dir,
            running: Some(running),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Abrupt stop, like SIGKILL of the server process.
    pub async fn kill(&mut self) {
        self.running.take().expect("running").kill().await;
    }

    /// Starts again on the same address and database.
    pub async fn restart(&mut self) {
        let mut config = ServerConfig::for_tests(self.dir.path().join("server.db"));
        config.addr = self.addr;
        self.running = Some(chatsync_server::start(config).await.unwrap());
    }
}

/// A client config for `user` against `url` with its store in `dir`.
pub fn config(url: &str, dir: &Path, user: &str) -> ClientConfig {
    ClientConfig::new(url, dir.join(user), user, TokenSource::DevTokenRoute)
}

/// A user's device: its store dir and an open client.
pub struct Device {
    pub dir: PathBuf,
    pub client: Arc<ChatClient>,
}

/// Logs `user` in and opens the direct room with `friend`; returns the device and room id.
pub async fn device_with_room(
    server: &TestServer,
    root: &Path,
    user: &str,
    friend: &str,
) -> (Device, String) {
    device_with_config(config(&server.url(), root, user), friend).await
}

pub async fn device_with_config(config: ClientConfig, friend: &str) -> (Device, String) {
    let dir = config.data_dir.clone();
    let user = config.user_id.clone();
    let client = ChatClient::new(config).unwrap();
    client.login(capitalized(&user), None).await.unwrap();
    let room_id = client.open_direct_room(friend.to_owned()).await.unwrap().id;
    (Device { dir, client }, room_id)
}

fn capitalized(user: &str) -> String {
    let mut c = user.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Texts of `messages` in the order given.
pub fn texts(messages: &[ChatMessage]) -> Vec<String> {
    messages.iter().map(|m| m.text.clone()).collect()
}

/// Polls `cond` until it holds or `deadline` passes (for work on other threads).
pub async fn wait_for(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// Records every event it gets.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<ClientEvent>>,
}

impl ClientListener for Recorder {
    fn on_event(&self, event: ClientEvent) {
        self.events.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn snapshot(&self) -> Vec<ClientEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// One raw HTTP/1.1 request to the server (the test's own minimal client, independent of the
/// core's). Returns the status and the body.
pub async fn raw_request(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

/// A real token from the server's dev route.
pub async fn dev_token(server: &TestServer, user: &str) -> String {
    let (status, body) = raw_request(
        server,
        "POST",
        "/v1/token",
        None,
        &format!(r#"{{"user_id":"{user}"}}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<chatsync_protocol::TokenResponse>(&body)
        .unwrap()
        .access_token
}

/// Scrolls a fresh timeline of `room` back to the start of its history (the store first, then
/// the server) and returns every message it then shows, newest first (as `messages` lists them).
pub async fn scroll_to_start(client: &ChatClient, room: &str) -> Vec<ChatMessage> {
    let timeline = client.timeline(room.to_owned()).unwrap();
    while timeline.paginate_backwards(100).await.unwrap().has_more {}
    let mut items = timeline.items();
    items.reverse();
    items
}

/// A loopback gateway in front of the server that passes every request through, but answers
/// the next PUTs whose path contains `marker` ([`LossyGateway::lose_next`]) with a 504 after the
/// server carried them out: a gateway timing out on a backend that committed, the answer lost on
/// the way back. Each request is forwarded on a connection of its own (`Connection: close`),
/// read to its end.
pub struct LossyGateway {
    pub addr: std::net::SocketAddr,
    left: Arc<std::sync::atomic::AtomicU32>,
    refuse: Arc<std::sync::atomic::AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl LossyGateway {
    pub async fn start(server: std::net::SocketAddr, marker: &str) -> LossyGateway {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let marker = marker.to_owned();
        let left = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let refuse = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let gateway_left = left.clone();
        let gateway_refuse = refuse.clone();
        let task = tokio::spawn(async move {
            let left = gateway_left;
            let refuse = gateway_refuse;
            while let Ok((client, _)) = listener.accept().await {
                let marker = marker.clone();
                let left = left.clone();
                let refuse = refuse.clone();
                tokio::spawn(async move {
                    let _ = gateway_connection(client, server, &marker, &left, &refuse).await;
                });
            }
        });
        LossyGateway {
            addr,
            left,
            refuse,
            task,
        }
    }

    /// The next `n` matching PUTs are carried out by the server and answered 504.
    pub fn lose_next(&self, n: u32) {
        self.left.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// The next `n` matching PUTs are refused for good (403) without reaching the server.
    pub fn refuse_next(&self, n: u32) {
        self.refuse.store(n, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LossyGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 message (head and a Content-Length body) from `stream`; `None` at EOF.
async fn read_message(
    stream: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
) -> std::io::Result<Option<Vec<u8>>> {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap_or(0));
            if pending.len() >= end + 4 + length {
                return Ok(Some(pending.drain(..end + 4 + length).collect()));
            }
        }
        let mut buf = [0u8; 8192];
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        pending.extend_from_slice(&buf[..n]);
    }
}

async fn gateway_connection(
    mut client: tokio::net::TcpStream,
    server: std::net::SocketAddr,
    marker: &str,
    left: &std::sync::atomic::AtomicU32,
    refuse: &std::sync::atomic::AtomicU32,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    let mut pending = Vec::new();
    while let Some(request) = read_message(&mut client, &mut pending).await? {
        let head = String::from_utf8_lossy(&request).into_owned();
        let first_line = head.lines().next().unwrap_or("").to_owned();
        let take = |n: &std::sync::atomic::AtomicU32| {
            first_line.starts_with("PUT ")
                && first_line.contains(marker)
                && n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
        };
        if take(refuse) {
            let body = r#"{"error":"forbidden","error_description":"refused by the gateway"}"#;
            let reply = format!(
                "HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            client.write_all(reply.as_bytes()).await?;
            continue;
        }
        // One request per upstream connection: the upstream closes after answering.
        let request = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        let mut upstream = tokio::net::TcpStream::connect(server).await?;
        upstream.write_all(request.as_bytes()).await?;
        let mut upstream_pending = Vec::new();
        let answer = read_message(&mut upstream, &mut upstream_pending)
            .await?
            .unwrap_or_default();
        let lose = take(left);
        if lose {
            let body = r#"{"error":"unavailable","error_description":"gateway timeout"}"#;
            let reply = format!(
                "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            client.write_all(reply.as_bytes()).await?;
        } else {
            client.write_all(&answer).await?;
        }
    }
    Ok(())
}
