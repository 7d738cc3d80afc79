//! Network status: the platform's reachability hint, the outcome of every real request and the
//! core's own probe of the server's `/health`, folded into one `Online` / `Offline` / `Unknown`.
//!
//! Why its own module: the original app flapped because a ping and the OS hint each raised
//! events on their own. Here every input goes through [`NetworkMonitor::set_status`], which
//! changes the status under one lock and emits `NetworkStatusChanged` only when the status really
//! changes, so listeners get each change exactly once, in order.
//!
//! The probe is a plain HEAD or GET with react-native-offline's settings (URL, method, timeout,
//! interval, only while offline, in background). It uses tokio time for its timeout, so tests
//! drive it on tokio's paused clock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{ClientConfig, ProbeConfig, ProbeMethod};
use crate::events::ClientEvent;
use crate::model::{AppState, NetworkStatus};

/// Where lifecycle changes are reported: a closure the engine hands over that pushes the event
/// into its listener hub (never blocking).
pub(crate) type EventSink = Arc<dyn Fn(ClientEvent) + Send + Sync>;

/// Everything the scheduler and the probe react to, in one value so a task can wait for "any
/// input changed" with one `watch` receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Inputs {
    /// What the platform last said about reachability; `None` until it says anything (desktop,
    /// CLI, tests): then only the probe and real requests decide.
    pub hint: Option<bool>,
    pub app_state: AppState,
    pub status: NetworkStatus,
    /// Set once by `shutdown()`; every task ends when it sees it.
    pub shut_down: bool,
    /// Bumped whenever the hint says "reachable" again, so the probe runs at once even when the
    /// hint value itself did not change (a platform may repeat `true` after a network switch).
    pub reachable_nudges: u64,
}

impl Inputs {
    fn initial() -> Self {
        Inputs {
            hint: None,
            app_state: AppState::Active,
            status: NetworkStatus::Unknown,
            shut_down: false,
            reachable_nudges: 0,
        }
    }
}

/// The network half of the lifecycle: holds the inputs, derives the status, deduplicates events.
pub(crate) struct NetworkMonitor {
    /// The single source of truth; `send_if_modified` keeps no-op updates from waking anyone.
    inputs: watch::Sender<Inputs>,
    /// Serialises "compare, change, emit" so two racing outcomes cannot emit out of order.
    emit_lock: Mutex<()>,
    emit: EventSink,
}

impl NetworkMonitor {
    pub(crate) fn new(emit: EventSink) -> Self {
        let (inputs, _) = watch::channel(Inputs::initial());
        NetworkMonitor {
            inputs,
            emit_lock: Mutex::new(()),
            emit,
        }
    }

    /// A receiver that wakes on every change of [`Inputs`].
    pub(crate) fn subscribe(&self) -> watch::Receiver<Inputs> {
        self.inputs.subscribe()
    }

    /// The current inputs.
    pub(crate) fn inputs(&self) -> Inputs {
        *self.inputs.borrow()
    }

    pub(crate) fn status(&self) -> NetworkStatus {
        self.inputs.borrow().status
    }

    /// Sets the status; emits `NetworkStatusChanged` only if it differs from the current one.
    /// Returns whether it changed. After shutdown nothing is emitted any more.
    pub(crate) fn set_status(&self, status: NetworkStatus) -> bool {
        let _order = self.emit_lock.lock().unwrap_or_else(|p| p.into_inner());
        let changed = self.inputs.send_if_modified(|i| {
            if i.shut_down || i.status == status {
                return false;
            }
            i.status = status;
            true
        });
        if changed {
            tracing::debug!(?status, "network status changed");
            (self.emit)(ClientEvent::NetworkStatusChanged { status });
        }
        changed
    }

    /// The outcome of a real request (or a probe): `true` when the server answered, `false`
    /// when it could not be reached. Any answer proves the network works, so it marks Online;
    /// a transport failure marks Offline.
    pub(crate) fn note_reachable(&self, reachable: bool) {
        self.set_status(if reachable {
            NetworkStatus::Online
        } else {
            NetworkStatus::Offline
        });
    }

    /// The platform's hint. "Unreachable" is trusted at once (no route means no request can
    /// work). "Reachable" only means a network path exists, not that the server answers: it
    /// wakes the probe, which decides. Repeating the same hint changes nothing.
    pub(crate) fn set_hint(&self, reachable: bool) {
        self.inputs.send_if_modified(|i| {
            if i.shut_down || i.hint == Some(reachable) {
                return false;
            }
            i.hint = Some(reachable);
            if reachable && i.status != NetworkStatus::Online {
                i.reachable_nudges += 1;
            }
            true
        });
        if !reachable {
            self.set_status(NetworkStatus::Offline);
        }
    }

    /// Records the app state; a no-op (no wakeup) when it is the same.
    pub(crate) fn set_app_state(&self, state: AppState) {
        self.inputs.send_if_modified(|i| {
            if i.shut_down || i.app_state == state {
                return false;
            }
            i.app_state = state;
            true
        });
    }

    /// Marks everything as shut down and wakes every task so it ends.
    pub(crate) fn shut_down(&self) {
        self.inputs.send_if_modified(|i| {
            if i.shut_down {
                return false;
            }
            i.shut_down = true;
            true
        });
    }
}

/// The probe's settings, resolved (URL filled in from the server URL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProbeSettings {
    pub url: String,
    pub method: ProbeMethod,
    pub timeout: Duration,
    pub interval: Duration,
    pub only_while_offline: bool,
    pub in_background: bool,
}

impl ProbeSettings {
    /// Resolves `config.probe` against `config.server_url` (default target: `<server>/health`).
    pub(crate) fn from_config(config: &ClientConfig) -> Self {
        let ProbeConfig {
            url,
            method,
            timeout_ms,
            interval_ms,
            only_while_offline,
            in_background,
        } = config.probe.clone();
        let url =
            url.unwrap_or_else(|| format!("{}/health", config.server_url.trim_end_matches('/')));
        ProbeSettings {
            url,
            method,
            // A zero timeout or interval would make a busy loop: clamp to something sane.
            timeout: Duration::from_millis(timeout_ms.max(1)),
            interval: Duration::from_millis(interval_ms.max(10)),
            only_while_offline,
            in_background,
        }
    }

    /// Whether the probe should be running for these inputs. The probe runs while offline (or
    /// always, when `only_while_offline` is off), never while the platform says there is no
    /// network at all (its "reachable" hint wakes the probe), and in the background only when
    /// `in_background` allows. While the status is `Unknown` the scheduler's own first request
    /// decides, so the probe stays quiet and no extra request is made.
    pub(crate) fn should_probe(&self, inputs: &Inputs) -> bool {
        if inputs.shut_down || inputs.hint == Some(false) {
            return false;
        }
        if inputs.app_state == AppState::Background && !self.in_background {
            return false;
        }
        match inputs.status {
            NetworkStatus::Offline => true,
            NetworkStatus::Online | NetworkStatus::Unknown => !self.only_while_offline,
        }
    }
}

/// One probe: true when the server answered 2xx within the timeout.
pub(crate) async fn probe_once(http: &reqwest::Client, settings: &ProbeSettings) -> bool {
    let request = match settings.method {
        ProbeMethod::Head => http.head(&settings.url),
        ProbeMethod::Get => http.get(&settings.url),
    };
    let exchange = async {
        let response = request.send().await?;
        let ok = response.status().is_success();
        // Read (and drop) a GET body so the connection goes back to the pool.
        let _ = response.bytes().await?;
        Ok::<bool, reqwest::Error>(ok)
    };
    match tokio::time::timeout(settings.timeout, exchange).await {
        Ok(Ok(ok)) => ok,
        Ok(Err(error)) => {
            tracing::debug!(%error, "probe failed");
            false
        }
        Err(_) => {
            tracing::debug!(timeout = ?settings.timeout, "probe timed out");
            false
        }
    }
}

/// The probe task: while [`ProbeSettings::should_probe`] holds, probe every `interval`; a
/// "reachable" hint probes at once (even in the background: one request per real network change
/// is how a backgrounded app notices it is back). Sleeps on its watch receiver otherwise (no
/// timer, no wakeup).
pub(crate) async fn run_probe(
    monitor: Arc<NetworkMonitor>,
    http: reqwest::Client,
    settings: ProbeSettings,
) {
    let mut inputs_rx = monitor.subscribe();
    let mut nudges_seen = inputs_rx.borrow().reachable_nudges;
    loop {
        let inputs = *inputs_rx.borrow_and_update();
        if inputs.shut_down {
            return;
        }
        let nudged = inputs.reachable_nudges != nudges_seen
            && inputs.status != NetworkStatus::Online
            && inputs.hint != Some(false);
        nudges_seen = inputs.reachable_nudges;
        if !nudged && !settings.should_probe(&inputs) {
            if inputs_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let reachable = probe_once(&http, &settings).await;
        let now = monitor.inputs();
        if now.shut_down {
            return;
        }
        // A probe that succeeded after the platform said "no network" is stale: the hint wins
        // until the next "reachable" hint (which probes again).
        if !(reachable && now.hint == Some(false)) {
            monitor.note_reachable(reachable);
        }
        // Wait one interval, but re-evaluate at once on a relevant change (a new "reachable"
        // nudge, app state, shutdown). Status changes we caused ourselves are not a reason to
        // probe again immediately.
        let sleep = tokio::time::sleep(settings.interval);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                changed = inputs_rx.changed() => {
                    if changed.is_err() { return; }
                    let now = *inputs_rx.borrow();
                    if now.shut_down || now.reachable_nudges != nudges_seen || !settings.should_probe(&now) || now.app_state != inputs.app_state {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn recorder() -> (EventSink, Arc<StdMutex<Vec<ClientEvent>>>) {
        let seen = Arc::new(StdMutex::new(Vec::new()));
        let sink_seen = seen.clone();
        (Arc::new(move |e| sink_seen.lock().unwrap().push(e)), seen)
    }

    fn statuses(seen: &StdMutex<Vec<ClientEvent>>) -> Vec<NetworkStatus> {
        seen.lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                ClientEvent::NetworkStatusChanged { status } => Some(*status),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn starts_unknown_and_emits_each_change_once() {
        let (sink, seen) = recorder();
        let m = NetworkMonitor::new(sink);
        assert_eq!(m.status(), NetworkStatus::Unknown);
        m.note_reachable(true);
        m.note_reachable(true);
        m.note_reachable(false);
        m.note_reachable(false);
        m.note_reachable(true);
        assert_eq!(
            statuses(&seen),
            vec![
                NetworkStatus::Online,
                NetworkStatus::Offline,
                NetworkStatus::Online
            ]
        );
    }

    #[test]
    fn unreachable_hint_is_trusted_reachable_hint_only_nudges_the_probe() {
        let (sink, seen) = recorder();
        let m = NetworkMonitor::new(sink);
        m.set_hint(false);
        m.set_hint(false);
        assert_eq!(m.status(), NetworkStatus::Offline);
        m.set_hint(true);
        // Still offline until the probe or a request proves otherwise.
        assert_eq!(m.status(), NetworkStatus::Offline);
        assert_eq!(m.inputs().reachable_nudges, 1);
        m.set_hint(true);
        assert_eq!(
            m.inputs().reachable_nudges,
            1,
            "a repeated hint is not a change"
        );
        assert_eq!(statuses(&seen), vec![NetworkStatus::Offline]);
    }

    #[test]
    fn nothing_changes_or_emits_after_shutdown() {
        let (sink, seen) = recorder();
        let m = NetworkMonitor::new(sink);
        m.shut_down();
        m.note_reachable(true);
        m.set_hint(false);
        m.set_app_state(AppState::Background);
        assert!(statuses(&seen).is_empty());
        assert_eq!(m.inputs().app_state, AppState::Active);
    }

    fn settings(only_while_offline: bool, in_background: bool) -> ProbeSettings {
        ProbeSettings {
            url: "http://127.0.0.1:9/health".into(),
            method: ProbeMethod::Head,
            timeout: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            only_while_offline,
            in_background,
        }
    }

    #[test]
    fn probe_runs_only_while_offline_by_default() {
        let s = settings(true, false);
        let mut i = Inputs::initial();
        assert!(
            !s.should_probe(&i),
            "unknown: the scheduler's first request decides"
        );
        i.status = NetworkStatus::Offline;
        assert!(s.should_probe(&i));
        i.hint = Some(false);
        assert!(!s.should_probe(&i), "no network at all: wait for the hint");
        i.hint = Some(true);
        i.app_state = AppState::Background;
        assert!(!s.should_probe(&i), "not in background unless configured");
        assert!(settings(true, true).should_probe(&i));
        i.status = NetworkStatus::Online;
        assert!(!settings(true, true).should_probe(&i));
        assert!(settings(false, true).should_probe(&i), "always-probe mode");
    }

    #[test]
    fn default_probe_url_is_the_servers_health() {
        let config = ClientConfig::new(
            "http://127.0.0.1:5000/",
            "/tmp/x",
            "alice",
            crate::config::TokenSource::DevTokenRoute,
        );
        let s = ProbeSettings::from_config(&config);
        assert_eq!(s.url, "http://127.0.0.1:5000/health");
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.interval, Duration::from_secs(1));
    }

    /// A loopback server answering every request with `status`, counting requests.
    async fn answering(status: u16) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = count.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                let c = c.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    loop {
                        let n = sock.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        got.extend_from_slice(&buf[..n]);
                        while let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                            got.drain(..end + 4);
                            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            let answer =
                                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                            if sock.write_all(answer.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, count)
    }

    #[tokio::test]
    async fn probe_is_online_only_on_2xx() {
        let http = reqwest::Client::new();
        let (ok_url, _) = answering(200).await;
        let (bad_url, _) = answering(503).await;
        let mut s = settings(true, false);
        s.url = ok_url;
        assert!(probe_once(&http, &s).await);
        s.url = bad_url;
        assert!(!probe_once(&http, &s).await);
        s.method = ProbeMethod::Get;
        assert!(!probe_once(&http, &s).await);
    }

    #[tokio::test(start_paused = true)]
    async fn probe_of_a_silent_server_gives_up_after_the_timeout() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/health", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = listener.accept().await {
                held.push(sock);
            }
        });
        let mut s = settings(true, false);
        s.url = url;
        let started = tokio::time::Instant::now();
        assert!(!probe_once(&reqwest::Client::new(), &s).await);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(5) && took < Duration::from_secs(6),
            "took {took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn probe_loop_probes_every_interval_while_offline_and_stops_when_online() {
        let (url, count) = answering(503).await;
        let (sink, seen) = recorder();
        let monitor = Arc::new(NetworkMonitor::new(sink));
        monitor.note_reachable(false);
        let mut s = settings(true, false);
        s.url = url;
        let task = tokio::spawn(run_probe(monitor.clone(), reqwest::Client::new(), s));
        let started = tokio::time::Instant::now();
        // Wait (on the paused clock) until five probes were made.
        let deadline = Duration::from_secs(60);
        while count.load(std::sync::atomic::Ordering::SeqCst) < 5 {
            assert!(started.elapsed() < deadline, "probe stalled");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_secs(5),
            "5 probes took {took:?}"
        );
        // Online (a real request succeeded): the probe goes quiet, no timer runs.
        monitor.note_reachable(true);
        let before = count.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert!(count.load(std::sync::atomic::Ordering::SeqCst) <= before + 1);
        monitor.shut_down();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("probe task ends on shutdown")
            .unwrap();
        assert_eq!(
            statuses(&seen),
            vec![NetworkStatus::Offline, NetworkStatus::Online]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn in_background_only_a_reachable_hint_probes_once() {
        let (url, count) = answering(503).await;
        let (sink, _seen) = recorder();
        let monitor = Arc::new(NetworkMonitor::new(sink));
        monitor.set_app_state(AppState::Background);
        monitor.set_hint(false);
        let mut s = settings(true, false);
        s.url = url;
        let task = tokio::spawn(run_probe(monitor.clone(), reqwest::Client::new(), s));
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "offline in background: no probe"
        );
        monitor.set_hint(true);
        let started = tokio::time::Instant::now();
        while count.load(std::sync::atomic::Ordering::SeqCst) < 1 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the hint did not trigger a probe"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one probe per real change, then quiet"
        );
        assert_eq!(
            monitor.status(),
            NetworkStatus::Offline,
            "a 503 health check is not online"
        );
        monitor.shut_down();
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
    }
}
