//! A chaos TCP proxy on 127.0.0.1 that sits between clients and the server and breaks the
//! connection the way mobile networks do: it delays bytes, drops connections at once, cuts a
//! connection in the middle of a response, and refuses connections outright (nothing listens on
//! its port for a while). Each fault can be asked for on command, or drawn at random per
//! connection from a seeded generator so a failing run can be replayed with the same seed.
//!
//! It works on bytes, not on HTTP: the client sees exactly what a real broken network shows it
//! (a reset, an EOF in the middle of a body, a refused connect), so the core's own error
//! classification is what gets tested.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// Size of the buffer each direction copies through.
const CHUNK: usize = 16 * 1024;

/// How often each fault happens to a new connection when faults are drawn at random.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultRates {
    /// Probability that a new connection is accepted and closed at once with a reset.
    pub drop: f64,
    /// Probability that a connection is cut after a random number of response bytes.
    pub cut: f64,
    /// Probability that a connection's chunks are each delayed by up to `max_delay`.
    pub delay: f64,
    /// Largest delay per chunk of a delayed connection.
    pub max_delay: Duration,
    /// Largest number of response bytes passed before a cut.
    pub max_cut_after_bytes: usize,
    /// Probability that any one chunk of an answer (on any connection, also a kept-alive one)
    /// is cut part way, ending the connection: what hits pooled connections mid-response.
    pub cut_chunk: f64,
}

impl FaultRates {
    /// No random faults: the proxy forwards everything (faults on command still work).
    pub const NONE: FaultRates = FaultRates {
        drop: 0.0,
        cut: 0.0,
        delay: 0.0,
        max_delay: Duration::ZERO,
        max_cut_after_bytes: 0,
        cut_chunk: 0.0,
    };
}

impl Default for FaultRates {
    fn default() -> Self {
        FaultRates::NONE
    }
}

/// What happens to one connection, decided when it is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionPlan {
    /// Reset the connection at once, forwarding nothing.
    pub drop: bool,
    /// Cut both sides after this many bytes of upstream answer reached the client.
    pub cut_after_bytes: Option<usize>,
    /// Delay every chunk (both directions) by this much.
    pub delay: Duration,
}

impl ConnectionPlan {
    /// Forward untouched.
    pub const CLEAN: ConnectionPlan = ConnectionPlan {
        drop: false,
        cut_after_bytes: None,
        delay: Duration::ZERO,
    };

    /// Draws a plan from `rng` with the given rates. A pure function of the generator's state,
    /// so the same seed gives the same sequence of plans.
    pub fn draw(rng: &mut fastrand::Rng, rates: &FaultRates) -> ConnectionPlan {
        // Always consume the same number of draws, so one rate does not shift the others.
        let (d, c, l) = (rng.f64(), rng.f64(), rng.f64());
        let cut_bytes = rng.usize(0..=rates.max_cut_after_bytes);
        let delay_ms = rng.u64(0..=rates.max_delay.as_millis() as u64);
        ConnectionPlan {
            drop: d < rates.drop,
            cut_after_bytes: (c < rates.cut).then_some(cut_bytes),
            delay: if l < rates.delay {
                Duration::from_millis(delay_ms)
            } else {
                Duration::ZERO
            },
        }
    }
}

/// Counters of what the proxy did, for the soak's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections reset at once (random `drop`).
    pub dropped: u64,
    /// Connections cut in the middle (random `cut` that actually happened mid-stream).
    pub cut: u64,
    /// Connections whose chunks were delayed.
    pub delayed: u64,
    /// Connections cut by [`ChaosProxy::cut_all`].
    pub cut_on_command: u64,
    /// Times the proxy started refusing connections ([`ChaosProxy::refuse`]).
    pub refusal_windows: u64,
    /// Connections whose upstream (the server) could not be reached.
    pub upstream_unreachable: u64,
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    dropped: AtomicU64,
    cut: AtomicU64,
    delayed: AtomicU64,
    cut_on_command: AtomicU64,
    refusal_windows: AtomicU64,
    upstream_unreachable: AtomicU64,
}

/// State shared by the handle and the connection tasks.
struct Shared {
    /// The servers new connections go to, one after another (several instances on one database,
    /// as behind a load balancer).
    upstream: Mutex<Vec<SocketAddr>>,
    /// How many connections went upstream (which instance the next one goes to).
    turn: std::sync::atomic::AtomicUsize,
    rates: Mutex<FaultRates>,
    /// The seeded generator; a std Mutex, held only to draw one plan.
    rng: Mutex<fastrand::Rng>,
    /// Plans queued on command; taken before random ones.
    forced: Mutex<std::collections::VecDeque<ConnectionPlan>>,
    counters: Counters,
    /// Bumped by `cut_all`; every live connection watches it.
    generation: watch::Sender<u64>,
}

/// Errors of the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The listening socket could not be bound (or bound again after refusing).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A running chaos proxy. Dropping it stops accepting and cuts every connection.
pub struct ChaosProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept task while listening; `None` while refusing.
    accept_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    refusing: AtomicBool,
}

impl ChaosProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`. Random faults are off
    /// until [`ChaosProxy::set_rates`].
    pub async fn start(upstream: SocketAddr, seed: u64) -> Result<ChaosProxy, ProxyError> {
        Self::start_spread(vec![upstream], seed).await
    }

    /// Like [`ChaosProxy::start`], forwarding each new connection to the next of `upstreams` in
    /// turn, as a round-robin load balancer does.
    pub async fn start_spread(
        upstreams: Vec<SocketAddr>,
        seed: u64,
    ) -> Result<ChaosProxy, ProxyError> {
        assert!(!upstreams.is_empty(), "at least one upstream");
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr().map_err(|source| ProxyError::Bind {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            source,
        })?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstreams),
            turn: Default::default(),
            rates: Mutex::new(FaultRates::NONE),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
            forced: Mutex::new(Default::default()),
            counters: Counters::default(),
            generation: watch::channel(0).0,
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(ChaosProxy {
            addr,
            shared,
            accept_task: Mutex::new(Some(task)),
            refusing: AtomicBool::new(false),
        })
    }

    /// The proxy's address (clients connect here).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Points new connections at another upstream (a restarted server on a new port).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *lock(&self.shared.upstream) = vec![upstream];
    }

    /// Sets the random fault rates for new connections.
    pub fn set_rates(&self, rates: FaultRates) {
        *lock(&self.shared.rates) = rates;
    }

    /// The next new connection gets `plan` instead of a random one (on-command faults).
    pub fn force_next(&self, plan: ConnectionPlan) {
        lock(&self.shared.forced).push_back(plan);
    }

    /// Cuts every live connection now (both sides see a reset or EOF).
    pub fn cut_all(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
    }

    /// Refuses connections (closes the listening socket: connects fail with "connection
    /// refused") or accepts them again on the same port.
    pub async fn refuse(&self, on: bool) -> Result<(), ProxyError> {
        let was = self.refusing.swap(on, Ordering::SeqCst);
        if on && !was {
            let task = lock(&self.accept_task).take();
            if let Some(task) = task {
                task.abort();
                // Once the aborted task is gone, so is its listening socket.
                let _ = task.await;
            }
            self.shared
                .counters
                .refusal_windows
                .fetch_add(1, Ordering::Relaxed);
        } else if !on && was {
            let listener = match bind(self.addr) {
                Ok(l) => l,
                Err(e) => {
                    self.refusing.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            };
            *lock(&self.accept_task) =
                Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
        }
        Ok(())
    }

    /// Whether the proxy refuses connections right now.
    pub fn is_refusing(&self) -> bool {
        self.refusing.load(Ordering::SeqCst)
    }

    /// What the proxy did so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            connections: c.connections.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            cut: c.cut.load(Ordering::Relaxed),
            delayed: c.delayed.load(Ordering::Relaxed),
            cut_on_command: c.cut_on_command.load(Ordering::Relaxed),
            refusal_windows: c.refusal_windows.load(Ordering::Relaxed),
            upstream_unreachable: c.upstream_unreachable.load(Ordering::Relaxed),
        }
    }
}

impl Drop for ChaosProxy {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.accept_task).take() {
            task.abort();
        }
        self.cut_all();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn bind(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    let err = |source| ProxyError::Bind { addr, source };
    let socket = TcpSocket::new_v4().map_err(err)?;
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    socket.listen(1024).map_err(err)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::task::yield_now().await;
            continue;
        };
        // Subscribed before the connection counts as accepted, so a `cut_all` after a caller
        // saw the count reaches it.
        let mut generation = shared.generation.subscribe();
        generation.mark_unchanged();
        shared.counters.connections.fetch_add(1, Ordering::Relaxed);
        let plan = lock(&shared.forced).pop_front().unwrap_or_else(|| {
            let rates = *lock(&shared.rates);
            ConnectionPlan::draw(&mut lock(&shared.rng), &rates)
        });
        tokio::spawn(handle_connection(client, plan, generation, shared.clone()));
    }
}

/// Closes with a reset rather than a FIN, like a dead network path or a killed peer.
#[allow(deprecated)] // linger 0 never blocks: it resets at once, which is the point
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn handle_connection(
    client: TcpStream,
    plan: ConnectionPlan,
    mut generation: watch::Receiver<u64>,
    shared: Arc<Shared>,
) {
    let c = &shared.counters;
    if plan.drop {
        c.dropped.fetch_add(1, Ordering::Relaxed);
        reset(client);
        return;
    }
    let upstream_addr = {
        let upstreams = lock(&shared.upstream);
        upstreams[shared.turn.fetch_add(1, Ordering::Relaxed) % upstreams.len()]
    };
    let upstream = match TcpStream::connect(upstream_addr).await {
        Ok(s) => s,
        Err(_) => {
            c.upstream_unreachable.fetch_add(1, Ordering::Relaxed);
            reset(client);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    if !plan.delay.is_zero() {
        c.delayed.fetch_add(1, Ordering::Relaxed);
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let delay = plan.delay;
    let chunk_rate = lock(&shared.rates).cut_chunk;
    let to_upstream = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if upstream_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = upstream_write.shutdown().await;
        // A half-closed request side is normal HTTP: the answer side decides the end.
        std::future::pending::<()>().await
    };
    let to_client = async {
        let mut buf = vec![0u8; CHUNK];
        let mut passed = 0usize;
        loop {
            let n = match upstream_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let chunk_cut = if chunk_rate > 0.0 {
                let mut rng = lock(&shared.rng);
                (rng.f64() < chunk_rate).then(|| passed + rng.usize(0..n))
            } else {
                None
            };
            if let Some(limit) = plan.cut_after_bytes.or(chunk_cut) {
                if passed + n > limit {
                    let _ = client_write.write_all(&buf[..limit - passed]).await;
                    return true;
                }
            }
            passed += n;
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
        false
    };
    // The connection ends when the answer side ends (upstream closed, or the cut).
    let both = async {
        tokio::select! {
            cut = to_client => cut,
            _ = to_upstream => false,
        }
    };
    let outcome = tokio::select! {
        cut = both => if cut { Some("cut") } else { None },
        _ = generation.changed() => Some("command"),
    };
    match outcome {
        Some("cut") => {
            c.cut.fetch_add(1, Ordering::Relaxed);
        }
        Some(_) => {
            c.cut_on_command.fetch_add(1, Ordering::Relaxed);
        }
        None => return,
    }
    // Cut: reunite the halves and reset both sockets.
    if let (Ok(client), Ok(upstream)) = (
        client_read.reunite(client_write),
        upstream_read.reunite(upstream_write),
    ) {
        reset(client);
        reset(upstream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A tiny upstream: answers every connection with `answer` after reading one chunk.
    async fn upstream(answer: Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    if s.read(&mut buf).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let _ = s.write_all(&answer).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        addr
    }

    /// Connects, sends a request, reads until EOF or error; returns the bytes and whether the
    /// stream ended with an error (a reset).
    async fn exchange(addr: SocketAddr) -> std::io::Result<(Vec<u8>, bool)> {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf).await {
                Ok(0) => return Ok((got, false)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => return Ok((got, true)),
            }
        }
    }

    fn body(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn forwards_untouched_without_faults() {
        let answer = body(300_000);
        let proxy = ChaosProxy::start(upstream(answer.clone()).await, 1)
            .await
            .unwrap();
        let (got, errored) = exchange(proxy.addr()).await.unwrap();
        assert!(!errored);
        assert_eq!(got, answer);
        assert_eq!(proxy.stats().connections, 1);
        assert_eq!(proxy.stats().cut, 0);
    }

    #[tokio::test]
    async fn a_cut_passes_exactly_the_given_bytes_then_breaks_the_connection() {
        let answer = body(200_000);
        let proxy = ChaosProxy::start(upstream(answer.clone()).await, 1)
            .await
            .unwrap();
        proxy.force_next(ConnectionPlan {
            cut_after_bytes: Some(12_345),
            ..ConnectionPlan::CLEAN
        });
        let (got, _) = exchange(proxy.addr()).await.unwrap();
        assert_eq!(got, answer[..12_345]);
        assert_eq!(proxy.stats().cut, 1);
        // The next connection is clean again.
        let (got, errored) = exchange(proxy.addr()).await.unwrap();
        assert_eq!((got.len(), errored), (answer.len(), false));
    }

    #[tokio::test]
    async fn chunk_cuts_hit_answers_on_any_connection() {
        let answer = body(50_000);
        let proxy = ChaosProxy::start(upstream(answer.clone()).await, 3)
            .await
            .unwrap();
        proxy.set_rates(FaultRates {
            cut_chunk: 1.0,
            ..FaultRates::NONE
        });
        let (got, _) = exchange(proxy.addr()).await.unwrap();
        assert!(
            got.len() < answer.len() && got[..] == answer[..got.len()],
            "{}",
            got.len()
        );
        assert_eq!(proxy.stats().cut, 1);
    }

    #[tokio::test]
    async fn a_drop_resets_at_once_with_nothing_forwarded() {
        let proxy = ChaosProxy::start(upstream(body(10)).await, 1)
            .await
            .unwrap();
        proxy.force_next(ConnectionPlan {
            drop: true,
            ..ConnectionPlan::CLEAN
        });
        match exchange(proxy.addr()).await {
            Ok((got, _)) => assert!(got.is_empty()),
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                ),
                "{e}"
            ),
        }
        assert_eq!(proxy.stats().dropped, 1);
    }

    #[tokio::test]
    async fn refusing_closes_the_port_and_resuming_reopens_it() {
        let proxy = ChaosProxy::start(upstream(body(10)).await, 1)
            .await
            .unwrap();
        proxy.refuse(true).await.unwrap();
        assert!(proxy.is_refusing());
        let e = TcpStream::connect(proxy.addr()).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        proxy.refuse(false).await.unwrap();
        let (got, _) = exchange(proxy.addr()).await.unwrap();
        assert_eq!(got, body(10));
        assert_eq!(proxy.stats().refusal_windows, 1);
    }

    #[tokio::test]
    async fn a_delay_holds_each_chunk_back() {
        let proxy = ChaosProxy::start(upstream(body(100)).await, 1)
            .await
            .unwrap();
        proxy.force_next(ConnectionPlan {
            delay: Duration::from_millis(150),
            ..ConnectionPlan::CLEAN
        });
        let started = Instant::now();
        let (got, _) = exchange(proxy.addr()).await.unwrap();
        assert_eq!(got, body(100));
        // One delay on the request chunk, one on the answer chunk.
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(proxy.stats().delayed, 1);
    }

    #[tokio::test]
    async fn cut_all_breaks_live_connections_on_command() {
        // An upstream that never answers: the connection stays open until cut.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream_addr = listener.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let mut s = s;
            let mut buf = [0u8; 64];
            // Reads until the proxy cuts the upstream side.
            while s.read(&mut buf).await.unwrap_or(0) > 0 {}
        });
        let proxy = ChaosProxy::start(upstream_addr, 1).await.unwrap();
        let mut s = TcpStream::connect(proxy.addr()).await.unwrap();
        s.write_all(b"hello").await.unwrap();
        // Wait until the proxy has the connection up to the upstream.
        let deadline = Instant::now() + Duration::from_secs(5);
        while proxy.stats().connections == 0 && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        proxy.cut_all();
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
        tokio::time::timeout(Duration::from_secs(5), held)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(proxy.stats().cut_on_command, 1);
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let rates = FaultRates {
            drop: 0.1,
            cut: 0.2,
            delay: 0.3,
            max_delay: Duration::from_millis(40),
            max_cut_after_bytes: 5_000,
            cut_chunk: 0.0,
        };
        let draw = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..500)
                .map(|_| ConnectionPlan::draw(&mut rng, &rates))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let plans = draw(7);
        let drops = plans.iter().filter(|p| p.drop).count();
        let cuts = plans.iter().filter(|p| p.cut_after_bytes.is_some()).count();
        // Roughly the asked-for rates (500 draws; wide bounds so it never flakes by chance).
        assert!((20..=90).contains(&drops), "{drops}");
        assert!((60..=150).contains(&cuts), "{cuts}");
        assert!(plans.iter().all(|p| p.delay <= rates.max_delay));
        let none: Vec<_> = {
            let mut rng = fastrand::Rng::with_seed(7);
            (0..100)
                .map(|_| ConnectionPlan::draw(&mut rng, &FaultRates::NONE))
                .collect()
        };
        assert!(none.iter().all(|p| *p == ConnectionPlan::CLEAN));
    }
}
