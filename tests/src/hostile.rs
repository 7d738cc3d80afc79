//! A hostile HTTP server on 127.0.0.1 for testing the device core: it answers each request with
//! whatever the test decides, including things no honest server sends: truncated JSON, wrong
//! types, ids going backwards, bodies shorter than their `Content-Length`, huge bodies, a body
//! dripped a few bytes at a time, garbage instead of HTTP.
//!
//! Written on raw tokio sockets rather than a web framework on purpose: a framework would
//! refuse to send most of these answers.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the hostile server saw it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Whether the query has `name=`.
    pub fn has_query(&self, name: &str) -> bool {
        self.target
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv.split('=').next() == Some(name)))
    }
}

/// How to answer one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A well-formed HTTP answer with a JSON (or any) body.
    Json(u16, String),
    /// A correct head, then only the first `sent` bytes of `body` although `Content-Length`
    /// announces all of it; then the connection closes.
    ShortBody {
        /// The whole body, whose length is announced.
        body: String,
        /// How much of it is sent.
        sent: usize,
    },
    /// A 200 whose body is `len` bytes: `prefix`, then `fill` repeated, then `suffix`.
    Huge {
        /// Start of the body.
        prefix: String,
        /// The byte repeated in the middle.
        fill: u8,
        /// End of the body.
        suffix: String,
        /// Total length.
        len: usize,
    },
    /// A 200 with `body`, sent `chunk` bytes at a time, `every` apart; when `stop_after` is
    /// given, the connection closes after that many bytes.
    Drip {
        /// The body.
        body: String,
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        every: Duration,
        /// Close after this many body bytes.
        stop_after: Option<usize>,
    },
    /// A 200 whose body never ends: `fill` bytes written `chunk` at a time, `every` apart (zero:
    /// as fast as the client reads), until the client closes the connection or `limit` bytes
    /// are out. With `announce`, the head carries that `Content-Length` (which may lie);
    /// without, the body runs until the connection closes. Every body byte written is counted
    /// in [`HostileServer::flood_bytes`].
    Flood {
        /// The `Content-Length` to announce, if any.
        announce: Option<u64>,
        /// The byte sent.
        fill: u8,
        /// Bytes per write.
        chunk: usize,
        /// Pause between writes.
        every: Duration,
        /// Stop after this many body bytes in any case.
        limit: u64,
    },
    /// These bytes, as they are (not even HTTP), then close.
    Raw(Vec<u8>),
    /// A redirect (`status` 301, 302, 307, 308) to `location`, with no body.
    Redirect(u16, String),
}

/// Decides the reply to each request.
pub type Responder = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A running hostile server. Its responder can be swapped between requests.
pub struct HostileServer {
    addr: SocketAddr,
    responder: Arc<Mutex<Responder>>,
    log: Arc<Mutex<Vec<Request>>>,
    flooded: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HostileServer {
    /// Listens on a free 127.0.0.1 port and answers with `responder`.
    pub async fn start(responder: Responder) -> std::io::Result<HostileServer> {
        HostileServer::start_on("127.0.0.1:0".parse().expect("address"), responder).await
    }

    /// Listens on `addr` (another loopback address, say) and answers with `responder`.
    pub async fn start_on(
        addr: SocketAddr,
        responder: Responder,
    ) -> std::io::Result<HostileServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let responder = Arc::new(Mutex::new(responder));
        let log = Arc::new(Mutex::new(Vec::new()));
        let flooded = Arc::new(AtomicU64::new(0));
        let (r, l, f) = (responder.clone(), log.clone(), flooded.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(serve(stream, r.clone(), l.clone(), f.clone()));
            }
        });
        Ok(HostileServer {
            addr,
            responder,
            log,
            flooded,
            task,
        })
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Answers the following requests with `responder`.
    pub fn set(&self, responder: Responder) {
        *self.responder.lock().unwrap_or_else(|p| p.into_inner()) = responder;
    }

    /// Body bytes written so far by [`Reply::Flood`] answers (a client cannot have read more).
    pub fn flood_bytes(&self) -> u64 {
        self.flooded.load(Ordering::Acquire)
    }

    /// Every request seen so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

fn head(status: u16, len: usize) -> String {
    head_with(status, Some(len as u64))
}

/// A head with `Content-Length: len`, or without any length (the body ends at close).
fn head_with(status: u16, len: Option<u64>) -> String {
    let length = len.map_or_else(String::new, |len| format!("content-length: {len}\r\n"));
    format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\n{length}connection: close\r\n\r\n",
        reason(status)
    )
}

/// Reads one request (head and a `Content-Length` body).
async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let len = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        target,
        body,
    })
}

async fn serve(
    mut stream: TcpStream,
    responder: Arc<Mutex<Responder>>,
    log: Arc<Mutex<Vec<Request>>>,
    flooded: Arc<AtomicU64>,
) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let respond = responder.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let reply = respond(&request);
    log.lock().unwrap_or_else(|p| p.into_inner()).push(request);
    let _ = write_reply(&mut stream, reply, &flooded).await;
    let _ = stream.shutdown().await;
}

async fn write_reply(
    stream: &mut TcpStream,
    reply: Reply,
    flooded: &AtomicU64,
) -> std::io::Result<()> {
    match reply {
        Reply::Json(status, body) => {
            stream
                .write_all(head(status, body.len()).as_bytes())
                .await?;
            stream.write_all(body.as_bytes()).await
        }
        Reply::ShortBody { body, sent } => {
            stream.write_all(head(200, body.len()).as_bytes()).await?;
            stream
                .write_all(&body.as_bytes()[..sent.min(body.len())])
                .await
        }
        Reply::Huge {
            prefix,
            fill,
            suffix,
            len,
        } => {
            stream.write_all(head(200, len).as_bytes()).await?;
            stream.write_all(prefix.as_bytes()).await?;
            let mut left = len.saturating_sub(prefix.len() + suffix.len());
            let block = vec![fill; 64 * 1024];
            while left > 0 {
                let n = left.min(block.len());
                stream.write_all(&block[..n]).await?;
                left -= n;
            }
            stream.write_all(suffix.as_bytes()).await
        }
        Reply::Drip {
            body,
            chunk,
            every,
            stop_after,
        } => {
            stream.write_all(head(200, body.len()).as_bytes()).await?;
            let bytes = body.as_bytes();
            let end = stop_after.unwrap_or(bytes.len()).min(bytes.len());
            for piece in bytes[..end].chunks(chunk.max(1)) {
                stream.write_all(piece).await?;
                stream.flush().await?;
                // The point of a drip: bytes arrive slowly, as on a bad link.
                tokio::time::sleep(every).await;
            }
            Ok(())
        }
        Reply::Flood {
            announce,
            fill,
            chunk,
            every,
            limit,
        } => {
            stream
                .write_all(head_with(200, announce).as_bytes())
                .await?;
            let block = vec![fill; chunk.max(1)];
            let mut sent = 0u64;
            while sent < limit {
                let n = (limit - sent).min(block.len() as u64) as usize;
                // Fails once the client has closed the connection: the flood ends there.
                stream.write_all(&block[..n]).await?;
                stream.flush().await?;
                sent += n as u64;
                flooded.fetch_add(n as u64, Ordering::AcqRel);
                if !every.is_zero() {
                    // A slow link: the client must not wait for the rest of the body.
                    tokio::time::sleep(every).await;
                }
            }
            Ok(())
        }
        Reply::Raw(bytes) => stream.write_all(&bytes).await,
        Reply::Redirect(status, location) => {
            let head = format!(
                "HTTP/1.1 {status} Redirect\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await
        }
    }
}
