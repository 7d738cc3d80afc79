//! The listening socket and the connections. We run our own accept loop (hyper's HTTP/1 server over
//! the axum router) instead of `axum::serve`, because the two ways of stopping need control over
//! every connection: a graceful stop answers parked long-polls and lets each connection finish its
//! request; an abrupt stop (like SIGKILL) aborts every connection task at once, so clients see a
//! reset or EOF. Both release the port (SO_REUSEADDR) and the database before returning, so a new
//! server can start on the same address and file immediately.
//!
//! It also keeps the server alive under pressure:
//! - **a connection cap** ([`ConnectionLimits::max_connections`], by default what the open-file
//!   limit leaves): at the cap an idle connection (no request in progress and none arriving) is
//!   closed to make room, as nginx reuses idle keep-alive connections; with none idle the newcomer
//!   gets a 503 with the JSON body and is closed. A flood of idle sockets cannot lock out
//!   `/health`.
//! - **accept errors back off**: out of file descriptors (EMFILE, ENFILE) or buffers, the loop
//!   closes one idle connection, waits 10 ms doubling to 1 s (reset by the next success), and logs
//!   at most one line per 5 s with the count of errors it did not log. Before, it retried at once
//!   forever: 35 CPU-seconds and 2.7 million log lines in 30 s.
//! - each connection goes through the front door (`front.rs`: header and idle timeouts, JSON
//!   answers to malformed heads); bodies have a deadline in the router ([`crate::app`]).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::error::ServerError;
use crate::front::{ConnShared, FrontDoor, Guards, Rejection};
use crate::notify::Notifier;
use crate::store::Store;

/// How long a graceful stop waits for in-flight requests before cutting them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Accept back-off after a resource error: first wait, and the longest.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one log line about failing accepts per this long.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// File descriptors kept back from the default connection cap: the database and its journal
/// files (per connection), the listener, the runtime's epoll and wakers, stdio.
pub const RESERVED_FDS: usize = 64;
/// Connections over the cap while the idle ones closed to make room are still closing. Within
/// [`RESERVED_FDS`].
const EVICTION_SLACK: usize = 16;

/// Timeouts and the connection cap. Defaults: [`ConnectionLimits::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the first byte of a request head to its end; then 408 (JSON) and close.
    pub header_timeout: Duration,
    /// From a request head to the end of its body; then 408 (JSON) and close.
    pub body_timeout: Duration,
    /// How long a connection with no request in progress stays open (then closed without a
    /// word). A fresh connection counts as idle until its first byte.
    pub idle_timeout: Duration,
    /// Most open connections; `None`: the open-file limit less [`RESERVED_FDS`].
    pub max_connections: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
        }
    }
}

/// The default connection cap: the soft open-file limit less [`RESERVED_FDS`], at least 16.
pub fn default_max_connections() -> usize {
    let limit = open_file_limit().unwrap_or(1024);
    limit.saturating_sub(RESERVED_FDS).clamp(16, 1 << 20)
}

#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
fn open_file_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    Some(usize::try_from(limit.rlim_cur as u64).unwrap_or(usize::MAX))
}

/// How the server is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    Graceful,
    Kill,
}

/// A server running on the current tokio runtime. Dropping it without calling
/// [`RunningServer::shutdown`] or [`RunningServer::kill`] kills it.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    stop: watch::Sender<Stop>,
    accept_task: Option<tokio::task::JoinHandle<()>>,
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
    connections: Arc<Connections>,
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// The open connections, for the cap.
#[derive(Debug, Default)]
struct Connections {
    /// A std Mutex: held for an insert, a remove or a short scan, never across `.await`.
    live: Mutex<HashMap<u64, Arc<ConnShared>>>,
    next_id: AtomicU64,
    /// Connections refused at the cap, and closed to make room (for tests and metrics).
    refused: AtomicUsize,
    evicted: AtomicUsize,
}

impl Connections {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnShared>>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks one idle connection that has nothing of a next request to close. False when there
    /// is none.
    fn evict_one_idle(&self) -> bool {
        let live = self.lock();
        let evicted = live.values().any(|c| c.is_evictable() && c.evict());
        if evicted {
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
        evicted
    }
}

/// Unregisters a connection when its task ends, however it ends.
struct Registered {
    connections: Arc<Connections>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.connections.lock().remove(&self.id);
    }
}

/// What every connection task needs.
struct Shared {
    router: Router,
    guards: Arc<Guards>,
    max_connections: usize,
    connections: Arc<Connections>,
}

/// Binds `addr` and spawns the accept loop.
pub(crate) fn spawn(
    addr: SocketAddr,
    router: Router,
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
    limits: ConnectionLimits,
    clock: Clock,
) -> Result<RunningServer, ServerError> {
    let listener = bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let (stop, stop_rx) = watch::channel(Stop::Running);
    let connections = Arc::new(Connections::default());
    let shared = Arc::new(Shared {
        router,
        guards: Arc::new(Guards {
            clock,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
        }),
        max_connections: limits
            .max_connections
            .unwrap_or_else(default_max_connections),
        connections: Arc::clone(&connections),
    });
    let accept_task = tokio::spawn(accept_loop(listener, shared, stop_rx));
    Ok(RunningServer {
        addr: local,
        stop,
        accept_task: Some(accept_task),
        store,
        notifier,
        connections,
    })
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Whether an accept error means the process or system is out of a resource (back off), rather
/// than one connection that failed before we got it (go on at once).
fn is_resource_error(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Rate-limited logging of accept errors: one line per [`ACCEPT_LOG_INTERVAL`] at most.
struct AcceptErrors {
    last_logged: Option<tokio::time::Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    fn record(&mut self, now: tokio::time::Instant, error: &std::io::Error, backoff: Duration) {
        match self.last_logged {
            Some(at) if now < at + ACCEPT_LOG_INTERVAL => self.suppressed += 1,
            _ => {
                tracing::warn!(
                    %error,
                    suppressed = self.suppressed,
                    backoff_ms = backoff.as_millis() as u64,
                    "accept failed; backing off (open connections closed when idle; see --max-connections)"
                );
                self.last_logged = Some(now);
                self.suppressed = 0;
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<Stop>) {
    let mut tasks = JoinSet::new();
    let clock = shared.guards.clock.clone();
    let mut backoff = ACCEPT_BACKOFF_FIRST;
    let mut errors = AcceptErrors {
        last_logged: None,
        suppressed: 0,
    };
    // Set while backing off: no accept until it fires.
    let mut pause: Option<Pin<Box<tokio::time::Sleep>>> = None;
    loop {
        tokio::select! {
            accepted = listener.accept(), if pause.is_none() => match accepted {
                Ok((stream, _peer)) => {
                    backoff = ACCEPT_BACKOFF_FIRST;
                    admit(stream, &shared, &stop, &mut tasks);
                }
                Err(e) if is_resource_error(&e) => {
                    // Free a descriptor for the next try, then wait before it.
                    shared.connections.evict_one_idle();
                    errors.record(clock.now(), &e, backoff);
                    pause = Some(Box::pin(clock.sleep_until(clock.now() + backoff)));
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
                // One connection failed before we got it (reset, aborted): nothing to wait for.
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            },
            _ = async { pause.as_mut().expect("guarded").await }, if pause.is_some() => pause = None,
            // Reap finished connections so the set does not grow.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let kill = *stop.borrow() == Stop::Kill;
    if !kill {
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = tasks.len(),
                "connections still busy after the drain timeout; closing them"
            );
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// Registers and starts a new connection, making room at the cap or refusing it.
fn admit(
    stream: TcpStream,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<Stop>,
    tasks: &mut JoinSet<()>,
) {
    let connections = &shared.connections;
    let open = connections.len();
    if open >= shared.max_connections
        && (open >= shared.max_connections + EVICTION_SLACK || !connections.evict_one_idle())
    {
        connections.refused.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            cap = shared.max_connections,
            "connection refused at the cap"
        );
        // Best effort, without waiting: the answer fits any socket buffer.
        let _ = stream.try_write(&Rejection::over_capacity().to_bytes());
        return;
    }
    let _ = stream.set_nodelay(true);
    let conn = ConnShared::new(shared.guards.clock.now());
    let id = connections.next_id.fetch_add(1, Ordering::Relaxed);
    connections.lock().insert(id, Arc::clone(&conn));
    let registered = Registered {
        connections: Arc::clone(connections),
        id,
    };
    tasks.spawn(serve_connection(
        stream,
        Arc::clone(shared),
        conn,
        registered,
        stop.clone(),
    ));
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    conn: Arc<ConnShared>,
    _registered: Registered,
    mut stop: watch::Receiver<Stop>,
) {
    let door = FrontDoor::new(stream, Arc::clone(&shared.guards), Arc::clone(&conn));
    let service = ConnService {
        router: shared.router.clone(),
        conn,
        clock: shared.guards.clock.clone(),
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The front door runs the header timeout (and answers it with a 408).
    builder.header_read_timeout(None);
    let mut connection = builder.serve_connection(TokioIo::new(door), service);
    let finished = tokio::select! {
        result = std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)) => Some(result),
        _ = stop.wait_for(|s| *s != Stop::Running) => None,
    };
    let result = match finished {
        Some(result) => result,
        // Dropping the connection closes the socket mid-request, like a killed process.
        None if *stop.borrow() == Stop::Kill => return,
        None => {
            // Graceful: finish the request in flight (parked long-polls are being answered).
            Pin::new(&mut connection).graceful_shutdown();
            std::future::poll_fn(|cx| connection.poll_without_shutdown(cx)).await
        }
    };
    match result {
        Ok(()) => connection.into_parts().io.into_inner().close().await,
        Err(e) => tracing::debug!(error = %e, "connection ended with an error"),
    }
}

/// The router, as one connection's hyper service: it counts each answer in progress for the
/// front door, until the answer's body is sent (or dropped).
#[derive(Clone)]
struct ConnService {
    router: Router,
    conn: Arc<ConnShared>,
    clock: Clock,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<TrackedBody>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        // The front door counted this request when it handed over its head.
        let in_flight = InFlight {
            conn: Arc::clone(&self.conn),
            clock: self.clock.clone(),
        };
        let router = self.router.clone();
        Box::pin(async move {
            let response = match router.oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok(response.map(|body| TrackedBody {
                inner: body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// One answer in progress; finished when dropped.
struct InFlight {
    conn: Arc<ConnShared>,
    clock: Clock,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.conn.finished(self.clock.now());
    }
}

/// An answer's body that ends the answer's [`InFlight`] when hyper is done with it.
struct TrackedBody {
    inner: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl RunningServer {
    /// The address it listens on (with the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many `/v1/sync` long-polls are parked right now (tests wait on this instead of sleeping).
    pub fn parked_long_polls(&self) -> usize {
        self.notifier.subscriptions()
    }

    /// How many connections are open right now.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// Connections refused at the cap (503) and idle ones closed to make room, since the start.
    pub fn connections_refused_and_evicted(&self) -> (usize, usize) {
        (
            self.connections.refused.load(Ordering::Relaxed),
            self.connections.evicted.load(Ordering::Relaxed),
        )
    }

    /// Graceful: answers parked long-polls, finishes in-flight requests, closes the DB.
    pub async fn shutdown(mut self) {
        self.notifier.begin_shutdown();
        self.stop.send_replace(Stop::Graceful);
        self.finish().await;
    }

    /// Abrupt, like SIGKILL: aborts every task and connection at once (clients see reset/EOF).
    pub async fn kill(mut self) {
        // The accept loop reacts at once: it drops the listener, aborts every connection task and
        // waits until they are gone, so no socket outlives this call.
        self.stop.send_replace(Stop::Kill);
        self.finish().await;
        self.notifier.begin_shutdown();
    }

    async fn finish(&mut self) {
        if let Some(task) = self.accept_task.take() {
            let _ = task.await;
        }
        let store = Arc::clone(&self.store);
        // Closing waits for a storage call in progress; keep that off the async threads.
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(task) = self.accept_task.take() {
            self.stop.send_replace(Stop::Kill);
            task.abort();
            self.store.close();
        }
    }
}
