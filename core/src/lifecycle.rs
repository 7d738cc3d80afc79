//! The lifecycle half of [`ChatClient`]: network status, app state, the scheduler that decides
//! what runs now, and the time-boxed one-shot sync for OS background tasks. Kept in its own
//! module (a second `impl ChatClient` block) so the engine (store, sync, outbox) and the
//! scheduling policy evolve separately.
//!
//! The engine talks to this module through a few `pub(crate)` hooks on [`Lifecycle`]:
//! - [`Lifecycle::note_request_result`] after every real request (answered or unreachable),
//! - [`Lifecycle::note_server_backoff`] on a 429 / 503 answer (with its `Retry-After`),
//! - [`Lifecycle::note_outbox_queued`] whenever something is queued (send, retry),
//! - [`Lifecycle::is_shut_down`] before any request (none is made after `shutdown()`),
//! - [`Lifecycle::set_sync_state`] to report sync state (the event hub drops repeats).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::client::ChatClient;
use crate::config::ClientConfig;
use crate::engine::Engine;
use crate::error::ChatError;
use crate::events::ClientEvent;
use crate::model::*;
use crate::network::{self, EventSink, NetworkMonitor, ProbeSettings};
use crate::scheduler::{self, SchedulerCtx, SchedulerSettings, ServerHints, SyncEngine};

/// Scheduler and network-monitor state held by every [`ChatClient`].
pub(crate) struct Lifecycle {
    monitor: Arc<NetworkMonitor>,
    hints: Arc<ServerHints>,
    /// Woken by the engine when something is queued; the live flusher waits on it.
    outbox_wake: Arc<Notify>,
    /// The last sync state reported by the scheduler; once `Stopped`, nothing more is reported.
    sync_state: Mutex<SyncState>,
    emit: EventSink,
    probe: ProbeSettings,
    scheduler: SchedulerSettings,
    /// The client's runtime: tasks run there, and `background_sync` polls its timers there.
    runtime: Handle,
    http: reqwest::Client,
    started: AtomicBool,
    /// Probe and scheduler tasks, aborted by `shutdown()`.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Lifecycle {
    /// Built by `ChatClient::new`. `http` is the client the probe uses (share the engine's, so
    /// connections are pooled); `emit` pushes an event to the listeners without blocking;
    /// `runtime` is the client's runtime (tasks are spawned there). Starts nothing: see `start`.
    pub(crate) fn new(
        config: &ClientConfig,
        runtime: Handle,
        http: reqwest::Client,
        emit: EventSink,
    ) -> Self {
        Lifecycle {
            monitor: Arc::new(NetworkMonitor::new(emit.clone())),
            hints: Arc::new(ServerHints::default()),
            outbox_wake: Arc::new(Notify::new()),
            sync_state: Mutex::new(SyncState::Idle),
            emit,
            probe: ProbeSettings::from_config(config),
            scheduler: SchedulerSettings::from_config(config),
            runtime,
            http,
            started: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Hook for the api layer, to call after every real request to the server: `reachable` is
    /// true when the server answered (any HTTP status: it proves the network works) and false
    /// on a transport failure (connect error, reset, timeout). A failure marks Offline, any
    /// answer marks Online; listeners only hear about real changes.
    pub(crate) fn note_request_result(&self, reachable: bool) {
        if !self.is_shut_down() {
            self.monitor.note_reachable(reachable);
        }
    }

    /// Hook for the api layer on a 429 or 503 answer: `retry_after` is the raw `Retry-After`
    /// header. The scheduler waits at least that long before its next attempt.
    pub(crate) fn note_server_backoff(&self, status: u16, retry_after: Option<&str>) {
        self.hints.note(status, retry_after);
    }

    /// Hook for the outbox: something was queued (send, retry); the live flusher wakes up.
    pub(crate) fn note_outbox_queued(&self) {
        self.outbox_wake.notify_one();
    }

    /// True once `shutdown()` ran: the engine makes no request after that (`ChatError::ShutDown`).
    pub(crate) fn is_shut_down(&self) -> bool {
        self.monitor.is_shut_down()
    }

    /// Reports the sync state. Forwarded every time (the event hub drops repeats, and the
    /// engine reports `Syncing` / `Idle` to it directly too, so a local "unchanged" check could
    /// go stale); nothing after `Stopped`.
    pub(crate) fn set_sync_state(&self, state: SyncState) {
        let mut current = self.sync_state.lock().unwrap_or_else(|p| p.into_inner());
        if *current == SyncState::Stopped {
            return;
        }
        *current = state;
        (self.emit)(ClientEvent::SyncStateChanged { state });
    }

    /// The current network status (for a new subscriber's first events).
    pub(crate) fn network_status(&self) -> NetworkStatus {
        self.monitor.status()
    }

    /// Runs `future` so that its timers and sockets belong to the client's runtime, whatever
    /// executor awaits it (a foreign one through the bindings, or none of tokio's).
    pub(crate) fn on_runtime<F: Future>(&self, future: F) -> OnRuntime<F> {
        OnRuntime {
            runtime: self.runtime.clone(),
            future: Box::pin(future),
        }
    }
}

impl Drop for Lifecycle {
    /// A client dropped without `shutdown()` still stops its probe and scheduler: the probe
    /// task holds the monitor, so it would otherwise probe forever while offline.
    fn drop(&mut self) {
        self.monitor.shut_down();
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

/// A future polled inside the client's runtime context (see [`Lifecycle::on_runtime`]).
pub(crate) struct OnRuntime<F> {
    runtime: Handle,
    future: Pin<Box<F>>,
}

impl<F: Future> Future for OnRuntime<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _context = self.runtime.enter();
        self.future.as_mut().poll(cx)
    }
}

/// The scheduler's view of a client. Holds it weakly, so a client the app dropped without
/// `shutdown()` is not kept alive by its own background task; during a request only the engine
/// is held.
struct ClientEngine(Weak<ChatClient>);

impl ClientEngine {
    fn engine(&self) -> Result<Arc<Engine>, ChatError> {
        let client = self.0.upgrade().ok_or(ChatError::ShutDown)?;
        if client.lifecycle.is_shut_down() {
            return Err(ChatError::ShutDown);
        }
        Ok(client.engine.clone())
    }

    /// A success proves the server answered, whatever path it took (deduplicated, so a double
    /// report is harmless). Failures are reported by the api layer itself: only it can tell a
    /// transport failure from a 503 (`ChatError::Offline` and `Unavailable` both end a
    /// request without telling whether the connection worked).
    fn note_success(&self) {
        if let Some(client) = self.0.upgrade() {
            client.lifecycle.note_request_result(true);
        }
    }
}

impl SyncEngine for ClientEngine {
    /// Calls the engine directly (not `ChatClient::sync_with_timeout`, which spawns): dropping
    /// this future must cancel the HTTP request, so going to the background ends the long-poll.
    fn sync(&self, long_poll: Duration) -> impl Future<Output = Result<(), ChatError>> + Send {
        let engine = self.engine();
        async move {
            engine?.sync_request(long_poll.as_millis() as u64).await?;
            self.note_success();
            Ok(())
        }
    }

    /// One flush; a transient failure that stopped it is an error here, so the scheduler backs
    /// off (the outbox's own backoff decides `outbox_next_due`).
    ///
    /// Through `ChatClient::flush_outbox` (spawned): a flush is not cut off by a change of
    /// mode, so an accepted message is recorded as sent instead of being sent again later.
    fn flush(&self) -> impl Future<Output = Result<(), ChatError>> + Send {
        let client = self
            .engine()
            .and_then(|_| self.0.upgrade().ok_or(ChatError::ShutDown));
        async move {
            let report = client?.flush_outbox().await?;
            match report.stopped_by {
                Some(error) => Err(error),
                None => Ok(()),
            }
        }
    }

    fn outbox_next_due(&self) -> Option<tokio::time::Instant> {
        self.0.upgrade().and_then(|client| client.outbox_next_due())
    }
}

impl ChatClient {
    /// Starts the scheduler (probe, live long-poll, background timer). Idempotent; does nothing
    /// after `shutdown()`.
    pub fn start(self: &Arc<Self>) {
        let lc = &self.lifecycle;
        if lc.is_shut_down() || lc.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let set_state_client = Arc::downgrade(self);
        let ctx = Arc::new(SchedulerCtx {
            monitor: lc.monitor.clone(),
            hints: lc.hints.clone(),
            outbox_wake: lc.outbox_wake.clone(),
            set_state: Arc::new(move |state| {
                if let Some(client) = set_state_client.upgrade() {
                    client.lifecycle.set_sync_state(state);
                }
            }),
            settings: lc.scheduler.clone(),
        });
        let engine = Arc::new(ClientEngine(Arc::downgrade(self)));
        let mut tasks = lc.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(lc.runtime.spawn(network::run_probe(
            lc.monitor.clone(),
            lc.http.clone(),
            lc.probe.clone(),
        )));
        tasks.push(lc.runtime.spawn(scheduler::run_scheduler(engine, ctx)));
        // A shutdown that raced with this start: make sure nothing keeps running.
        if lc.is_shut_down() {
            tasks.drain(..).for_each(|t| t.abort());
        }
    }

    /// The platform's reachability hint (Android ConnectivityManager, iOS NWPathMonitor).
    /// `false` marks Offline at once; `true` makes the probe check the server at once.
    pub fn set_network_reachable(&self, reachable: bool) {
        self.lifecycle.monitor.set_hint(reachable);
    }

    /// The app's lifecycle state; the scheduler adapts at once (going to the background ends
    /// the live long-poll).
    pub fn set_app_state(&self, state: AppState) {
        self.lifecycle.monitor.set_app_state(state);
    }

    /// Online, Offline, or Unknown before the first answer.
    pub fn network_status(&self) -> NetworkStatus {
        self.lifecycle.network_status()
    }

    /// Stops everything; after it returns no task runs and no request is made. Idempotent.
    pub fn shutdown(&self) {
        let lc = &self.lifecycle;
        lc.set_sync_state(SyncState::Stopped);
        lc.monitor.shut_down();
        let tasks: Vec<_> = lc
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
        }
    }

    /// Time-boxed sync + flush for OS background tasks; always returns within `budget_ms`.
    /// The report lists new messages from other users (for local notifications), what was sent,
    /// what is still pending or failed, and whether it finished or ran out of time. Work cut
    /// off by the budget is cancelled (a resend later reuses the same txn id).
    pub async fn background_sync(&self, budget_ms: u64) -> BackgroundSyncReport {
        let started = std::time::Instant::now();
        let lc = &self.lifecycle;
        if lc.is_shut_down() {
            return BackgroundSyncReport {
                error: Some(ChatError::ShutDown.to_string()),
                ..Default::default()
            };
        }
        let engine = self.engine.clone();
        lc.on_runtime(async move {
            let budget = Duration::from_millis(budget_ms);
            // Leave a margin to read the outbox and build the report after a cut-off.
            let work_budget = budget.saturating_sub((budget / 10).min(Duration::from_millis(200)));
            let mut report = BackgroundSyncReport::default();
            let outbox_before: BTreeSet<String> = engine
                .outbox_entries()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.local_id)
                .collect();
            lc.set_sync_state(SyncState::Syncing);
            let work = async {
                let outcome = engine.sync_request(0).await?;
                report.online = true;
                report.new_messages = outcome.previews;
                engine.upload_profile_if_owed().await;
                match engine.flush_outbox().await?.stopped_by {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            };
            let result = tokio::time::timeout(work_budget, work).await;
            lc.set_sync_state(SyncState::Idle);
            match result {
                Ok(Ok(())) => report.finished = true,
                Ok(Err(error)) => report.error = Some(error.to_string()),
                Err(_) => {
                    report.error = Some(format!(
                        "ran out of time after {} ms",
                        started.elapsed().as_millis()
                    ))
                }
            }
            if report.finished || report.online {
                lc.note_request_result(true);
            }
            report.online = report.online || self.network_status() == NetworkStatus::Online;
            let outbox_after = engine.outbox_entries().unwrap_or_default();
            report.sent = outbox_before
                .iter()
                .filter(|id| !outbox_after.iter().any(|e| &e.local_id == *id))
                .count() as u32;
            report.pending = outbox_after
                .iter()
                .filter(|e| e.state == MessageState::Pending)
                .count() as u32;
            report.failed = outbox_after
                .iter()
                .filter(|e| e.state == MessageState::Failed)
                .count() as u32;
            report
        })
        .await
    }
}

/// One-shot background sync for a process the OS started just for it (Android JobScheduler,
/// iOS BGAppRefreshTask): opens the store of `config`, runs [`ChatClient::background_sync`],
/// and closes the store again, all within `budget_ms`. When another client (the app's UI
/// process) holds the store, it waits for it up to half the budget, then reports `busy` in
/// `error` without touching anything. Call it on a tokio runtime (the bindings do); the client
/// runs on that runtime.
pub async fn background_sync_at(config: ClientConfig, budget_ms: u64) -> BackgroundSyncReport {
    let started = tokio::time::Instant::now();
    let budget = Duration::from_millis(budget_ms);
    let handle = Handle::current();
    // Opening may wait (blocking) for a store held by another process: off this thread, and
    // given up on after half the budget.
    let open = tokio::task::spawn_blocking(move || ChatClient::with_runtime(config, handle));
    let client = match tokio::time::timeout(budget / 2, open).await {
        Ok(Ok(Ok(client))) => client,
        Ok(Ok(Err(error))) => {
            return BackgroundSyncReport {
                error: Some(error.to_string()),
                ..Default::default()
            }
        }
        Ok(Err(join_error)) => {
            return BackgroundSyncReport {
                error: Some(format!("cannot open the store: {join_error}")),
                ..Default::default()
            }
        }
        Err(_) => {
            return BackgroundSyncReport {
                error: Some(
                    ChatError::Busy("the store is held by another client".into()).to_string(),
                ),
                ..Default::default()
            }
        }
    };
    let left = budget.saturating_sub(started.elapsed());
    let report = client.background_sync(left.as_millis() as u64).await;
    client.shutdown();
    report
}
