//! The front door of every connection: a thin layer between the socket and hyper that reads each
//! request head itself before hyper sees a byte of it.
//!
//! Why: hyper answers a malformed request line, an oversized target or too many header fields
//! with an empty-bodied 400/414/431, and closes a connection whose head does not arrive in time
//! without an answer; the protocol promises its JSON error body on every non-2xx where HTTP
//! allows one. So the front door
//! - holds the bytes of a head until the whole head is there, checks it with the parser hyper
//!   uses (`httparse`) and the same rules (method, target, header fields, `Content-Length`,
//!   `Transfer-Encoding`), and either hands it to hyper or keeps it and answers itself with the
//!   protocol's JSON error ([`Rejection`]) once hyper has finished what it was doing;
//! - runs the **header timeout** (a started head must be complete within it: 408 with the JSON
//!   body) and the **idle timeout** (a connection with no request in progress is closed without
//!   a word, as HTTP allows for a connection that asked nothing);
//! - follows each body's framing (`Content-Length`, or chunked) without decoding it, only to know
//!   where the next head starts; the body's own deadline is the router's (`app.rs`).
//!
//! Its timers only run while no request of the connection is in progress ([`ConnShared`]), so a
//! long-poll parked for 30 s is never cut by them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use axum::http::{Method, StatusCode, Uri};
use bytes::{Buf, BytesMut};
use chatsync_protocol::{
    error_code, ErrorBody, MAX_REQUEST_HEADERS, MAX_REQUEST_HEAD_BYTES, MAX_REQUEST_TARGET_BYTES,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::clock::Clock;

/// Longest chunk-size line extension and longest trailer section the framing follows; beyond,
/// the body is malformed (hyper's own decoder has similar bounds).
const MAX_CHUNK_EXTENSION_BYTES: usize = 4096;
const MAX_TRAILER_BYTES: usize = 16 * 1024;
/// After a rejection is written, how long and how much the door keeps reading (and dropping)
/// what the client still sends, so closing with unread bytes does not reset the connection
/// before the client has read the answer.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;

/// The connection guards: timeouts and their clock.
#[derive(Debug, Clone)]
pub(crate) struct Guards {
    /// The clock the timeouts run on.
    pub clock: Clock,
    /// From the first byte of a request head to its end.
    pub header_timeout: Duration,
    /// How long a connection with no request in progress stays open.
    pub idle_timeout: Duration,
}

/// What a connection's front door, its request handling and the connection cap share.
#[derive(Debug)]
pub(crate) struct ConnShared {
    /// Heads handed to hyper whose answers have not finished.
    in_flight: AtomicUsize,
    /// When the connection last became idle: accepted, or its last answer finished.
    idle_since: Mutex<Instant>,
    /// The front door's reader, woken when the connection becomes idle or is evicted.
    reader: Mutex<Option<Waker>>,
    /// Set by the front door while it waits for a request with nothing of one received: the
    /// connection can be closed without losing anything. A connection just accepted is not known
    /// to be so until its first read.
    waiting: AtomicBool,
    /// Set by the connection cap: close at the next idle moment.
    evict: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new(now: Instant) -> Arc<ConnShared> {
        Arc::new(ConnShared {
            in_flight: AtomicUsize::new(0),
            idle_since: Mutex::new(now),
            reader: Mutex::new(None),
            waiting: AtomicBool::new(false),
            evict: AtomicBool::new(false),
        })
    }

    /// No request of this connection is in progress.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    /// Idle, nothing of a next request has arrived, and not asked to close yet: closing it loses
    /// nothing.
    pub(crate) fn is_evictable(&self) -> bool {
        self.is_idle()
            && self.waiting.load(Ordering::Acquire)
            && !self.evict.load(Ordering::Acquire)
    }

    /// Asks the connection to close at its next idle moment (at once when idle now). False when
    /// it was asked already.
    pub(crate) fn evict(&self) -> bool {
        let first = !self.evict.swap(true, Ordering::AcqRel);
        self.wake_reader();
        first
    }

    /// One answer finished (or was abandoned).
    pub(crate) fn finished(&self, now: Instant) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = now;
            self.wake_reader();
        }
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn idle_since(&self) -> Instant {
        *self.idle_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_reader(&self, waker: &Waker) {
        let mut reader = self.reader.lock().unwrap_or_else(|e| e.into_inner());
        match reader.as_mut() {
            Some(w) if w.will_wake(waker) => {}
            _ => *reader = Some(waker.clone()),
        }
    }

    fn wake_reader(&self) {
        if let Some(w) = self.reader.lock().unwrap_or_else(|e| e.into_inner()).take() {
            w.wake();
        }
    }
}

/// An answer the front door gives itself, in the protocol's error shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
}

impl Rejection {
    fn bad_request(description: impl Into<String>) -> Self {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            code: error_code::BAD_REQUEST,
            description: description.into(),
        }
    }

    fn too_large(description: impl Into<String>) -> Self {
        Rejection {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            code: error_code::HEADERS_TOO_LARGE,
            description: description.into(),
        }
    }

    fn uri_too_long() -> Self {
        Rejection {
            status: StatusCode::URI_TOO_LONG,
            code: error_code::URI_TOO_LONG,
            description: format!(
                "the request target is longer than {MAX_REQUEST_TARGET_BYTES} bytes"
            ),
        }
    }

    fn header_timeout(timeout: Duration) -> Self {
        Rejection {
            status: StatusCode::REQUEST_TIMEOUT,
            code: error_code::REQUEST_TIMEOUT,
            description: format!(
                "the request head did not arrive within {} ms",
                timeout.as_millis()
            ),
        }
    }

    /// 503 for a connection over the cap, answered before reading anything.
    pub(crate) fn over_capacity() -> Self {
        Rejection {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: error_code::UNAVAILABLE,
            description: "the server is at its connection limit; try again shortly".into(),
        }
    }

    /// The complete HTTP/1.1 answer, closing the connection.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let body = serde_json::to_vec(&ErrorBody {
            error: self.code.to_owned(),
            error_description: self.description.clone(),
        })
        .expect("an error body serializes");
        let retry = if self.status == StatusCode::SERVICE_UNAVAILABLE {
            "retry-after: 1\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n",
            self.status.as_str(),
            self.status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes();
        out.extend_from_slice(&body);
        out
    }
}

/// What a look at the buffered bytes found.
#[derive(Debug, PartialEq)]
pub(crate) enum HeadCheck {
    /// Not a whole head yet, and nothing wrong so far.
    Partial,
    /// A good head of `len` bytes; its body follows with this framing (`None`: no body).
    Complete { len: usize, body: Option<Framing> },
    /// Refused: answer this and close.
    Reject(Rejection),
}

/// Checks the head at the start of `buf` (after any empty lines, which HTTP lets a server skip)
/// the way hyper will parse it.
pub(crate) fn check_head(buf: &[u8]) -> HeadCheck {
    let mut headers = [httparse::EMPTY_HEADER; MAX_REQUEST_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return HeadCheck::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return HeadCheck::Reject(Rejection::too_large(format!(
                "a request has at most {MAX_REQUEST_HEADERS} header fields"
            )))
        }
        Err(httparse::Error::Token) if request.method.is_none() => {
            return HeadCheck::Reject(Rejection::bad_request(
                "malformed request line: invalid method",
            ))
        }
        Err(httparse::Error::Token) => {
            return HeadCheck::Reject(Rejection::bad_request(
                "malformed request line: invalid request target",
            ))
        }
        Err(httparse::Error::Version) => {
            return HeadCheck::Reject(Rejection::bad_request(
                "malformed request line: this server speaks HTTP/1.1 and HTTP/1.0",
            ))
        }
        Err(e) => {
            return HeadCheck::Reject(Rejection::bad_request(format!(
                "malformed request head: {e}"
            )))
        }
    };
    if len > MAX_REQUEST_HEAD_BYTES {
        return HeadCheck::Reject(head_too_large());
    }
    let target = request.path.unwrap_or_default();
    if target.len() > MAX_REQUEST_TARGET_BYTES {
        return HeadCheck::Reject(Rejection::uri_too_long());
    }
    if Method::from_bytes(request.method.unwrap_or_default().as_bytes()).is_err() {
        return HeadCheck::Reject(Rejection::bad_request(
            "malformed request line: invalid method",
        ));
    }
    if Uri::try_from(target).is_err() {
        return HeadCheck::Reject(Rejection::bad_request(
            "malformed request line: invalid request target",
        ));
    }
    let http_10 = request.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked: Option<bool> = None;
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            if http_10 {
                return HeadCheck::Reject(Rejection::bad_request(
                    "HTTP/1.0 requests cannot use Transfer-Encoding",
                ));
            }
            // As hyper: the last coding of the last Transfer-Encoding field decides.
            let last = header
                .value
                .rsplit(|b| *b == b',')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            let value = header.value.trim_ascii();
            let parsed = (!value.is_empty() && value.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(value).ok()?.parse::<u64>().ok())
                .flatten()
                // hyper's largest length; u64::MAX - 1 means "chunked" inside it.
                .filter(|n| *n <= u64::MAX - 2);
            let Some(n) = parsed else {
                return HeadCheck::Reject(Rejection::bad_request("malformed Content-Length"));
            };
            if length.is_some_and(|prev| prev != n) {
                return HeadCheck::Reject(Rejection::bad_request(
                    "several Content-Length fields with different values",
                ));
            }
            length = Some(n);
        }
    }
    let body = match (chunked, length) {
        (Some(_), Some(_)) => {
            // hyper would drop the length and read chunked; two framings is how requests are
            // smuggled past proxies, so refuse it.
            return HeadCheck::Reject(Rejection::bad_request(
                "a request cannot have both Transfer-Encoding and Content-Length",
            ));
        }
        (Some(false), None) => {
            return HeadCheck::Reject(Rejection::bad_request(
                "the only Transfer-Encoding this server reads is chunked (last)",
            ))
        }
        (Some(true), None) => Some(Framing::Chunked(Chunked::default())),
        (None, Some(n)) if n > 0 => Some(Framing::Length(n)),
        (None, _) => None,
    };
    HeadCheck::Complete { len, body }
}

fn head_too_large() -> Rejection {
    Rejection::too_large(format!(
        "the request head is larger than {MAX_REQUEST_HEAD_BYTES} bytes"
    ))
}

/// Whether a head that may end in `buf[from..]` has ended: an empty line after a line.
fn head_may_end(buf: &[u8], from: usize) -> bool {
    let from = from.saturating_sub(3);
    buf[from..]
        .windows(2)
        .enumerate()
        .any(|(i, w)| w == b"\n\n" || (w == b"\n\r" && buf.get(from + i + 2) == Some(&b'\n')))
}

/// What is known about a head still arriving, updated with each read's new bytes only, so a head
/// dripped byte by byte costs linear time.
#[derive(Debug, Default)]
struct HeadProgress {
    /// How far into the buffer the head has been looked at.
    scanned: usize,
    /// Where the request line starts (after any empty lines).
    line_start: Option<usize>,
    /// Whether the request line has ended.
    line_ended: bool,
}

impl HeadProgress {
    /// Looks at `buf[self.scanned..]`, the bytes new since the last look.
    fn look(&mut self, buf: &[u8]) -> HeadCheck {
        let from = self.scanned;
        self.scanned = buf.len();
        for (i, b) in buf[from..].iter().enumerate() {
            match (*b, self.line_start) {
                (b'\r' | b'\n', None) => {}
                (_, None) => self.line_start = Some(from + i),
                (b'\n', Some(start)) if !self.line_ended => {
                    self.line_ended = true;
                    if from + i - start > MAX_REQUEST_LINE_BYTES {
                        return HeadCheck::Reject(Rejection::uri_too_long());
                    }
                }
                _ => {}
            }
        }
        if head_may_end(buf, from) {
            let verdict = check_head(buf);
            if verdict != HeadCheck::Partial {
                return verdict;
            }
        }
        match self.line_start {
            Some(start) if !self.line_ended && buf.len() - start > MAX_REQUEST_LINE_BYTES => {
                HeadCheck::Reject(Rejection::uri_too_long())
            }
            _ if buf.len() > MAX_REQUEST_HEAD_BYTES => HeadCheck::Reject(head_too_large()),
            _ => HeadCheck::Partial,
        }
    }

    fn started(&self) -> bool {
        self.line_start.is_some()
    }
}

/// Longest request line: the target's limit with room for the method, spaces and version.
const MAX_REQUEST_LINE_BYTES: usize = MAX_REQUEST_TARGET_BYTES + 64;

/// How a body is delimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Framing {
    /// This many bytes remain.
    Length(u64),
    /// Chunked transfer coding, followed byte by byte.
    Chunked(Chunked),
}

/// Where the chunked framing is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ChunkState {
    Size { digits: u8, value: u64 },
    Extension { size: u64, len: usize },
    SizeLf { size: u64 },
    Data(u64),
    DataCr,
    DataLf,
    TrailerStart { total: usize },
    Trailer { total: usize },
    TrailerLf { total: usize },
    EndLf,
}

impl Default for ChunkState {
    fn default() -> Self {
        ChunkState::Size {
            digits: 0,
            value: 0,
        }
    }
}

/// Why a body's framing is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body: {0}")]
pub(crate) struct FramingError(&'static str);

impl Framing {
    /// Of `bytes`, which follow what was taken before, how many belong to the body, and whether
    /// the body ends with them.
    pub(crate) fn take(&mut self, bytes: &[u8]) -> Result<(usize, bool), FramingError> {
        match self {
            Framing::Length(left) => {
                let n = (*left).min(bytes.len() as u64);
                *left -= n;
                Ok((n as usize, *left == 0))
            }
            Framing::Chunked(chunked) => chunked.take(bytes),
        }
    }
}

impl Chunked {
    fn take(&mut self, bytes: &[u8]) -> Result<(usize, bool), FramingError> {
        use ChunkState::*;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match std::mem::take(&mut self.state) {
                Data(left) => {
                    let n = left.min((bytes.len() - i) as u64);
                    i += n as usize;
                    self.state = if n == left { DataCr } else { Data(left - n) };
                    continue;
                }
                Size { digits, value } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits == 16 {
                            return Err(FramingError("chunk size too large"));
                        }
                        let d = (b as char).to_digit(16).expect("a hex digit") as u64;
                        Size {
                            digits: digits + 1,
                            value: value * 16 + d,
                        }
                    }
                    b';' | b' ' | b'\t' if digits > 0 => Extension {
                        size: value,
                        len: 0,
                    },
                    b'\r' if digits > 0 => SizeLf { size: value },
                    _ => return Err(FramingError("invalid chunk size line")),
                },
                Extension { size, len } => match b {
                    b'\r' => SizeLf { size },
                    b'\n' => return Err(FramingError("chunk extension contains a newline")),
                    _ if len >= MAX_CHUNK_EXTENSION_BYTES => {
                        return Err(FramingError("chunk extension too long"))
                    }
                    _ => Extension { size, len: len + 1 },
                },
                SizeLf { size } => match (b, size) {
                    (b'\n', 0) => TrailerStart { total: 0 },
                    (b'\n', size) => Data(size),
                    _ => return Err(FramingError("invalid chunk size line")),
                },
                DataCr if b == b'\r' => DataLf,
                DataLf if b == b'\n' => ChunkState::default(),
                DataCr | DataLf => return Err(FramingError("chunk data not followed by CRLF")),
                TrailerStart { .. } if b == b'\r' => EndLf,
                TrailerStart { total } | Trailer { total } => {
                    if total >= MAX_TRAILER_BYTES {
                        return Err(FramingError("trailer section too large"));
                    }
                    if b == b'\r' {
                        TrailerLf { total: total + 1 }
                    } else {
                        Trailer { total: total + 1 }
                    }
                }
                TrailerLf { total } if b == b'\n' => TrailerStart { total: total + 1 },
                TrailerLf { .. } => return Err(FramingError("invalid trailer line")),
                EndLf if b == b'\n' => return Ok((i + 1, true)),
                EndLf => return Err(FramingError("invalid last chunk")),
            };
            i += 1;
        }
        Ok((i, false))
    }
}

/// Where the inbound byte stream is.
#[derive(Debug)]
enum State {
    /// Between requests, or reading a head.
    Head,
    /// Inside a body.
    Body(Framing),
    /// Done reading: hyper gets end-of-stream once no request is in progress.
    Closing,
}

/// Which guard the armed timer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guard {
    Idle,
    Header,
}

/// The socket as hyper sees it. See the module documentation.
pub(crate) struct FrontDoor {
    io: TcpStream,
    /// Bytes read from the socket and not yet handed to hyper.
    buf: BytesMut,
    /// How many bytes at the front of `buf` hyper may have.
    release: usize,
    /// The head arriving at the front of `buf` (after `release`).
    head: HeadProgress,
    state: State,
    guards: Arc<Guards>,
    shared: Arc<ConnShared>,
    timer: Option<(Guard, Instant, Pin<Box<Sleep>>)>,
    /// When the first byte of the current head arrived.
    head_started: Option<Instant>,
    /// The answer the door gives itself, and how much of it is written.
    rejection: Option<Rejection>,
    socket_eof: bool,
    /// Closed for idleness (timeout or eviction): nothing unread, no need to linger.
    closed_idle: bool,
}

impl FrontDoor {
    pub(crate) fn new(io: TcpStream, guards: Arc<Guards>, shared: Arc<ConnShared>) -> Self {
        FrontDoor {
            io,
            buf: BytesMut::new(),
            release: 0,
            head: HeadProgress::default(),
            state: State::Head,
            guards,
            shared,
            timer: None,
            head_started: None,
            rejection: None,
            socket_eof: false,
            closed_idle: false,
        }
    }

    /// After hyper is done with the connection: the door's own answer if it has one, then the
    /// close. What the client still sends is read and dropped for a moment (bounded by [`LINGER`]
    /// and [`LINGER_BYTES`]): closing a socket with unread input resets the connection, which can
    /// destroy the answer before the client reads it (a 408 to a body still dripping in).
    pub(crate) async fn close(mut self) {
        if let Some(rejection) = self.rejection.take() {
            tracing::debug!(
                status = rejection.status.as_u16(),
                reason = %rejection.description,
                "answered by the front door"
            );
            if self.io.write_all(&rejection.to_bytes()).await.is_err() {
                return;
            }
        }
        if self.io.shutdown().await.is_err() || self.socket_eof || self.closed_idle {
            return;
        }
        let linger = self
            .guards
            .clock
            .sleep_until(self.guards.clock.now() + LINGER);
        tokio::pin!(linger);
        let mut drained = 0;
        let mut scratch = [0u8; 4096];
        while drained < LINGER_BYTES {
            tokio::select! {
                read = self.io.read(&mut scratch) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => drained += n,
                },
                _ = &mut linger => return,
            }
        }
    }

    fn reject(&mut self, rejection: Rejection) {
        self.rejection = Some(rejection);
        self.state = State::Closing;
        self.buf.clear();
        self.release = 0;
    }

    /// Reads what the socket has into `buf`.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        let spare = self.buf.spare_capacity_mut();
        let mut read = ReadBuf::uninit(spare);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        Poll::Ready(Ok(n))
    }

    /// Polls the idle or header guard, whichever applies now. Ready when it fired.
    fn poll_guard(&mut self, cx: &mut Context<'_>) -> Poll<Guard> {
        // (An armed timer is kept meanwhile, to be reset rather than allocated again; if it fires
        // during a request the wake-up finds it not idle and does nothing.)
        if !self.shared.is_idle() {
            return Poll::Pending;
        }
        let (guard, deadline) = match self.head_started {
            Some(started) => (Guard::Header, started + self.guards.header_timeout),
            None => (
                Guard::Idle,
                self.shared.idle_since() + self.guards.idle_timeout,
            ),
        };
        match &mut self.timer {
            Some((g, d, _)) if *g == guard && *d == deadline => {}
            Some((g, d, sleep)) => {
                sleep.as_mut().reset(deadline);
                (*g, *d) = (guard, deadline);
            }
            None => {
                let sleep = Box::pin(self.guards.clock.sleep_until(deadline));
                self.timer = Some((guard, deadline, sleep));
            }
        }
        let (_, _, sleep) = self.timer.as_mut().expect("armed above");
        ready!(sleep.as_mut().poll(cx));
        Poll::Ready(guard)
    }
}

impl AsyncRead for FrontDoor {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shared.set_reader(cx.waker());
        loop {
            if this.release > 0 {
                let n = this.release.min(out.remaining());
                out.put_slice(&this.buf[..n]);
                this.buf.advance(n);
                this.release -= n;
                return Poll::Ready(Ok(()));
            }
            match &mut this.state {
                State::Closing => {
                    // End of stream for hyper, but not while an answer is in progress: that
                    // would cut it (a pipelined bad head after a parked long-poll).
                    if this.shared.is_idle() || this.socket_eof {
                        return Poll::Ready(Ok(()));
                    }
                    // Meanwhile notice a client that leaves; drop what it sends.
                    this.buf.clear();
                    match ready!(this.poll_fill(cx))? {
                        0 => this.socket_eof = true,
                        _ => this.buf.clear(),
                    }
                }
                State::Body(framing) => {
                    if !this.buf.is_empty() {
                        let (n, done) = framing
                            .take(&this.buf)
                            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                        this.release = n;
                        if done {
                            // The next head starts after the body (the offsets count from there
                            // once the body is handed over).
                            this.state = State::Head;
                            this.head = HeadProgress::default();
                        }
                        continue;
                    }
                    // End of stream mid-body: hyper reports the body incomplete.
                    if ready!(this.poll_fill(cx))? == 0 {
                        this.socket_eof = true;
                        return Poll::Ready(Ok(()));
                    }
                }
                State::Head => {
                    if this.shared.evict.load(Ordering::Acquire) && this.shared.is_idle() {
                        this.state = State::Closing;
                        this.closed_idle = !this.head.started();
                        continue;
                    }
                    match this.head.look(&this.buf) {
                        HeadCheck::Complete { len, body } => {
                            this.release = len;
                            this.head = HeadProgress::default();
                            this.state = body.map_or(State::Head, State::Body);
                            this.head_started = None;
                            this.shared.begin();
                            continue;
                        }
                        HeadCheck::Reject(rejection) => {
                            this.reject(rejection);
                            continue;
                        }
                        HeadCheck::Partial => {}
                    }
                    if this.head_started.is_none() && this.head.started() {
                        this.head_started = Some(this.guards.clock.now());
                    }
                    if this.socket_eof {
                        // The client left (mid-head or between requests): nothing to answer.
                        this.state = State::Closing;
                        continue;
                    }
                    match this.poll_fill(cx)? {
                        Poll::Ready(0) => {
                            this.socket_eof = true;
                            continue;
                        }
                        Poll::Ready(_) => {
                            this.shared.waiting.store(false, Ordering::Release);
                            continue;
                        }
                        Poll::Pending => {
                            let nothing = !this.head.started();
                            this.shared.waiting.store(nothing, Ordering::Release);
                        }
                    }
                    match this.poll_guard(cx) {
                        Poll::Ready(Guard::Header) => {
                            this.reject(Rejection::header_timeout(this.guards.header_timeout));
                        }
                        Poll::Ready(Guard::Idle) => {
                            this.state = State::Closing;
                            this.closed_idle = true;
                        }
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }
}

impl AsyncWrite for FrontDoor {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(head: &[u8]) -> (usize, Option<Framing>) {
        match check_head(head) {
            HeadCheck::Complete { len, body } => (len, body),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(head)),
        }
    }

    fn rejected(head: &[u8]) -> Rejection {
        match check_head(head) {
            HeadCheck::Reject(r) => r,
            other => panic!(
                "{:?}: {other:?}",
                String::from_utf8_lossy(&head[..head.len().min(100)])
            ),
        }
    }

    #[test]
    fn good_heads_pass_with_their_framing() {
        let get = b"GET /v1/sync?since=s1_0 HTTP/1.1\r\nhost: x\r\n\r\n";
        assert_eq!(complete(get), (get.len(), None));
        let put = b"PUT /x HTTP/1.1\r\ncontent-length: 12\r\n\r\n{\"parts\":[]}";
        assert_eq!(complete(put), (put.len() - 12, Some(Framing::Length(12))));
        let chunked = b"PUT /x HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
        assert!(matches!(complete(chunked).1, Some(Framing::Chunked(_))));
        // Empty lines before the request line are skipped, as HTTP allows; LF-only lines pass.
        assert_eq!(complete(b"\r\n\r\nGET / HTTP/1.0\n\n").1, None);
        // Two equal lengths are one length; zero is no body.
        let twice = b"PUT /x HTTP/1.1\r\ncontent-length: 3\r\ncontent-length:  3 \r\n\r\n";
        assert_eq!(complete(twice).1, Some(Framing::Length(3)));
        assert_eq!(
            complete(b"PUT /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n").1,
            None
        );
        assert_eq!(
            check_head(b"GET / HTTP/1.1\r\nhost: x\r\n"),
            HeadCheck::Partial
        );
    }

    #[test]
    fn malformed_heads_are_400() {
        for head in [
            &b"G\x01T / HTTP/1.1\r\n\r\n"[..],
            b"GET /a\x7fb HTTP/1.1\r\n\r\n",
            b"GET / HTTP/9.9\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET / HTTP/1.1\r\nbad header: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nx: a\x01b\r\n\r\n",
            b"PUT / HTTP/1.1\r\ncontent-length: abc\r\n\r\n",
            b"PUT / HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
            b"PUT / HTTP/1.1\r\ncontent-length: 99999999999999999999999\r\n\r\n",
            b"PUT / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            b"PUT / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 2\r\n\r\n",
            b"PUT / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
            b"PUT / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n",
        ] {
            let r = rejected(head);
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{head:?}");
            assert_eq!(r.code, "bad_request");
        }
    }

    /// Feeds `bytes` to a head in reads of `step` bytes; the first verdict that is not Partial.
    fn look_in_steps(bytes: &[u8], step: usize) -> HeadCheck {
        let mut progress = HeadProgress::default();
        for end in (step..bytes.len() + step).step_by(step) {
            let verdict = progress.look(&bytes[..end.min(bytes.len())]);
            if verdict != HeadCheck::Partial {
                return verdict;
            }
        }
        HeadCheck::Partial
    }

    #[test]
    fn oversized_heads_are_414_or_431_even_before_they_end() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\n\r\n",
            "a".repeat(MAX_REQUEST_TARGET_BYTES)
        );
        assert_eq!(
            rejected(long_target.as_bytes()).status,
            StatusCode::URI_TOO_LONG
        );
        // Still arriving: refused as soon as the line is too long, in any split.
        let arriving = format!("GET /{}", "a".repeat(MAX_REQUEST_TARGET_BYTES + 100));
        for step in [1, 7, 4096, arriving.len()] {
            match look_in_steps(arriving.as_bytes(), step) {
                HeadCheck::Reject(r) => assert_eq!(r.status, StatusCode::URI_TOO_LONG),
                other => panic!("step {step}: {other:?}"),
            }
        }
        let lines: String = (0..4000)
            .map(|i| format!("x{i}: {}\r\n", "v".repeat(20)))
            .collect();
        let arriving = format!("GET / HTTP/1.1\r\n{lines}");
        match look_in_steps(arriving.as_bytes(), 1000) {
            HeadCheck::Reject(r) => {
                assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
            }
            other => panic!("{other:?}"),
        }
        // Byte by byte, a good head is found complete exactly when it ends.
        let good = b"\r\nGET /x HTTP/1.1\r\nhost: y\r\n\r\n";
        assert_eq!(
            look_in_steps(good, 1),
            HeadCheck::Complete {
                len: good.len(),
                body: None
            }
        );
        // A target just under the limit is fine.
        let fits = format!(
            "GET /{} HTTP/1.1\r\n\r\n",
            "a".repeat(MAX_REQUEST_TARGET_BYTES - 1)
        );
        assert!(matches!(
            check_head(fits.as_bytes()),
            HeadCheck::Complete { .. }
        ));
        let many: String = (0..=MAX_REQUEST_HEADERS)
            .map(|i| format!("x{i}: y\r\n"))
            .collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        let r = rejected(many.as_bytes());
        assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
        assert_eq!(r.code, "request_header_fields_too_large");
        let huge = format!(
            "GET / HTTP/1.1\r\nx: {}\r\n\r\n",
            "b".repeat(MAX_REQUEST_HEAD_BYTES)
        );
        assert_eq!(
            rejected(huge.as_bytes()).status,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
    }

    #[test]
    fn the_end_of_a_head_is_found_across_reads() {
        let head = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";
        for cut in 0..head.len() {
            // Everything up to `cut` was scanned before; the rest arrived now.
            assert!(head_may_end(head, cut), "cut at {cut}");
            assert!(!head_may_end(
                &head[..head.len() - 1],
                cut.min(head.len() - 1)
            ));
        }
        assert!(head_may_end(b"GET / HTTP/1.0\n\n", 0));
    }

    fn feed_all(framing: &mut Framing, stream: &[u8], step: usize) -> Result<usize, FramingError> {
        let mut taken = 0;
        for chunk in stream.chunks(step) {
            let (n, done) = framing.take(chunk)?;
            taken += n;
            if done {
                return Ok(taken);
            }
            assert_eq!(
                n,
                chunk.len(),
                "all of it belongs to the body until it ends"
            );
        }
        panic!("the body did not end");
    }

    #[test]
    fn chunked_framing_finds_the_end_of_the_body_in_any_split() {
        let body = b"5\r\nhello\r\nA;ext=1\r\n0123456789\r\n0\r\nx-trailer: t\r\n\r\n";
        let next = b"GET / HTTP/1.1\r\n\r\n";
        let stream = [&body[..], &next[..]].concat();
        for step in 1..=stream.len() {
            let mut f = Framing::Chunked(Chunked::default());
            assert_eq!(
                feed_all(&mut f, &stream, step).unwrap(),
                body.len(),
                "step {step}"
            );
        }
        let mut f = Framing::Chunked(Chunked::default());
        assert_eq!(feed_all(&mut f, b"0\r\n\r\nGET", 2).unwrap(), 5);
        let mut f = Framing::Length(3);
        assert_eq!(f.take(b"abcdef").unwrap(), (3, true));
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\nhello",
            b"11111111111111111\r\n",
            b"1;a\nb\r\n",
        ] {
            let mut f = Framing::Chunked(Chunked::default());
            let mut failed = false;
            for b in bad {
                if f.take(std::slice::from_ref(b)).is_err() {
                    failed = true;
                    break;
                }
            }
            assert!(failed, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn rejections_are_complete_json_answers() {
        let bytes = Rejection::uri_too_long().to_bytes();
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("connection: close"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"], "uri_too_long");
        assert!(Rejection::over_capacity()
            .to_bytes()
            .starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
    }
}
