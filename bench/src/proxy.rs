//! A loopback TCP proxy that counts what crosses it: connections, bytes each way, and HTTP/1.1
//! requests (request lines seen at the start of the client's stream or right after a complete
//! previous request). The idle-wake scenario points the client at it to measure requests and
//! bytes on the wire without trusting the client's own account.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counters of one proxy.
#[derive(Debug, Default)]
pub struct Counters {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Bytes from the client to the server.
    pub bytes_up: AtomicU64,
    /// Bytes from the server to the client.
    pub bytes_down: AtomicU64,
    /// HTTP requests (request lines) from the client.
    pub requests: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// TCP connections accepted.
    pub connections: u64,
    /// Bytes from the client to the server.
    pub bytes_up: u64,
    /// Bytes from the server to the client.
    pub bytes_down: u64,
    /// HTTP requests.
    pub requests: u64,
}

impl Counts {
    /// Both together.
    pub fn plus(self, other: Counts) -> Counts {
        Counts {
            connections: self.connections + other.connections,
            bytes_up: self.bytes_up + other.bytes_up,
            bytes_down: self.bytes_down + other.bytes_down,
            requests: self.requests + other.requests,
        }
    }

    /// What happened between `earlier` and `self`.
    pub fn since(self, earlier: Counts) -> Counts {
        Counts {
            connections: self.connections - earlier.connections,
            bytes_up: self.bytes_up - earlier.bytes_up,
            bytes_down: self.bytes_down - earlier.bytes_down,
            requests: self.requests - earlier.requests,
        }
    }
}

impl Counters {
    /// The current values.
    pub fn snapshot(&self) -> Counts {
        Counts {
            connections: self.connections.load(Ordering::SeqCst),
            bytes_up: self.bytes_up.load(Ordering::SeqCst),
            bytes_down: self.bytes_down.load(Ordering::SeqCst),
            requests: self.requests.load(Ordering::SeqCst),
        }
    }
}

/// Starts a proxy on 127.0.0.1 (a free port) forwarding to `upstream`. Returns its address and
/// counters; it runs until the runtime stops.
pub async fn start(upstream: SocketAddr) -> std::io::Result<(SocketAddr, Arc<Counters>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let counters = Arc::new(Counters::default());
    let shared = counters.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            shared.connections.fetch_add(1, Ordering::SeqCst);
            let counters = shared.clone();
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(upstream).await {
                    relay(client, server, counters).await;
                }
            });
        }
    });
    Ok((addr, counters))
}

async fn relay(client: TcpStream, server: TcpStream, counters: Arc<Counters>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up_counters = counters.clone();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut requests = RequestCounter::default();
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            up_counters.bytes_up.fetch_add(n as u64, Ordering::SeqCst);
            up_counters
                .requests
                .fetch_add(requests.feed(&buf[..n]), Ordering::SeqCst);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            counters.bytes_down.fetch_add(n as u64, Ordering::SeqCst);
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}

/// Counts HTTP/1.1 requests in a client's byte stream: parses each request's head for its
/// `content-length` and skips the body, so a body never counts as a request.
#[derive(Default)]
struct RequestCounter {
    /// Bytes of the current head seen so far.
    head: Vec<u8>,
    /// Body bytes still to skip.
    body_left: u64,
}

impl RequestCounter {
    /// Feeds bytes; returns how many requests started in them.
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut started = 0;
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let skip = (self.body_left as usize).min(bytes.len());
                self.body_left -= skip as u64;
                bytes = &bytes[skip..];
                continue;
            }
            if self.head.is_empty() {
                started += 1;
            }
            // Read up to the end of the head.
            let take = match find_head_end(&self.head, bytes) {
                Some(end) => end,
                None => {
                    self.head.extend_from_slice(bytes);
                    return started;
                }
            };
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            self.body_left = content_length(&self.head);
            self.head.clear();
        }
        started
    }
}

/// How many bytes of `more` complete a head that began with `head` (through "\r\n\r\n").
fn find_head_end(head: &[u8], more: &[u8]) -> Option<usize> {
    let tail_len = head.len().min(3);
    let mut window = head[head.len() - tail_len..].to_vec();
    for (i, &b) in more.iter().enumerate() {
        window.push(b);
        if window.ends_with(b"\r\n\r\n") {
            return Some(i + 1);
        }
    }
    None
}

fn content_length(head: &[u8]) -> u64 {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_across_reads_and_bodies_are_skipped() {
        let stream = b"GET /v1/sync HTTP/1.1\r\nhost: x\r\n\r\nPUT /a HTTP/1.1\r\ncontent-length: 22\r\n\r\nGET / HTTP/1.1\r\n\r\n!!!!!!GET /x HTTP/1.1\r\n\r\n";
        for chunk in [1usize, 2, 5, 7, stream.len()] {
            let mut counter = RequestCounter::default();
            let total: u64 = stream.chunks(chunk).map(|c| counter.feed(c)).sum();
            assert_eq!(total, 3, "chunks of {chunk}");
        }
    }

    #[tokio::test]
    async fn the_proxy_forwards_and_counts_bytes() {
        let echo = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let upstream = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            assert!(n > 0);
        });
        let (addr, counters) = start(upstream).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut answer = Vec::new();
        c.read_to_end(&mut answer).await.unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 200 OK"));
        let counts = counters.snapshot();
        assert_eq!(counts.connections, 1);
        assert_eq!(counts.requests, 1);
        assert_eq!(counts.bytes_up, 18);
        assert_eq!(counts.bytes_down, answer.len() as u64);
    }
}
