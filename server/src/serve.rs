//! The listening socket and the connections. We run our own accept loop (hyper's HTTP/1 server over
//! the axum router) instead of `axum::serve`, because the two ways of stopping need control over
//! every connection: a graceful stop answers parked long-polls and lets each connection finish its
//! request; an abrupt stop (like SIGKILL) aborts every connection task at once, so clients see a
//! reset or EOF. Both release the port (SO_REUSEADDR) and the database before returning, so a new
//! server can start on the same address and file immediately.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::error::ServerError;
use crate::notify::Notifier;
use crate::store::Store;

/// How long a graceful stop waits for in-flight requests before cutting them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// Binds `addr` and spawns the accept loop.
pub(crate) fn spawn(
    addr: SocketAddr,
    router: Router,
    store: Arc<dyn Store>,
    notifier: Arc<Notifier>,
) -> Result<RunningServer, ServerError> {
    let listener = bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;
    let (stop, stop_rx) = watch::channel(Stop::Running);
    let accept_task = tokio::spawn(accept_loop(listener, router, stop_rx));
    Ok(RunningServer {
        addr: local,
        stop,
        accept_task: Some(accept_task),
        store,
        notifier,
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

async fn accept_loop(listener: TcpListener, router: Router, mut stop: watch::Receiver<Stop>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(stream, router.clone(), stop.clone()));
                }
                // Out of file descriptors and the like: keep serving the connections we have.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::task::yield_now().await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = stop.changed() => break,
        }
    }
    drop(listener);
    let kill = *stop.borrow() == Stop::Kill;
    if !kill {
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = connections.len(),
                "connections still busy after the drain timeout; closing them"
            );
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    router: Router,
    mut stop: watch::Receiver<Stop>,
) {
    let service = TowerToHyperService::new(router);
    let connection =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = stop.wait_for(|s| *s != Stop::Running) => {}
    }
    if *stop.borrow() == Stop::Kill {
        // Dropping the connection closes the socket mid-request, like a killed process.
        return;
    }
    // Graceful: finish the request in flight (parked long-polls are being answered), then close.
    connection.as_mut().graceful_shutdown();
    let _ = connection.as_mut().await;
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
