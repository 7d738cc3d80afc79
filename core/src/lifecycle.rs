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
//! - [`Lifecycle::set_sync_state`] to report sync state (deduplicated here).

use std::collections::{BTreeMap, BTreeSet};
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
use crate::error::ChatError;
use crate::events::ClientEvent;
use crate::model::*;
use crate::network::{self, EventSink, NetworkMonitor, ProbeSettings};
use crate::scheduler::{self, SchedulerCtx, SchedulerSettings, ServerHints, SyncEngine};

/// Longest text shown in a notification preview, in characters.
pub(crate) const PREVIEW_CHARS: usize = 100;

/// Scheduler and network-monitor state held by every [`ChatClient`].
pub(crate) struct Lifecycle {
    monitor: Arc<NetworkMonitor>,
    hints: Arc<ServerHints>,
    /// Woken by the engine when something is queued; the live flusher waits on it.
    outbox_wake: Arc<Notify>,
    /// The last sync state reported, so each change is emitted once.
    sync_state: Mutex<SyncState>,
    emit: EventSink,
    probe: ProbeSettings,
    scheduler: SchedulerSettings,
    /// The client's runtime: tasks run there, and `background_sync` polls its timers there.
    runtime: Handle,
    http: reqwest::Client,
    user_id: String,
    started: AtomicBool,
    /// Probe and scheduler tasks, aborted by `shutdown()`.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Lifecycle {
    /// Built by `ChatClient::new`. `http` is the client the probe uses (share the engine's, so
    /// connections are pooled); `emit` pushes an event to the listeners without blocking;
    /// `runtime` is the client's runtime (tasks are spawned there). Starts nothing: see `start`.
    pub(crate) fn new(config: &ClientConfig, runtime: Handle, http: reqwest::Client, emit: EventSink) -> Self {
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
            user_id: config.user_id.clone(),
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

    /// Reports the sync state; emits `SyncStateChanged` only when it changes.
    pub(crate) fn set_sync_state(&self, state: SyncState) {
        let mut current = self.sync_state.lock().unwrap_or_else(|p| p.into_inner());
        if *current == state || *current == SyncState::Stopped {
            return;
        }
        *current = state;
        (self.emit)(ClientEvent::SyncStateChanged { state });
    }

    /// The current sync state (for a new subscriber's first events).
    pub(crate) fn sync_state(&self) -> SyncState {
        *self.sync_state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current network status (for a new subscriber's first events).
    pub(crate) fn network_status(&self) -> NetworkStatus {
        self.monitor.status()
    }

    /// The current app state.
    pub(crate) fn app_state(&self) -> AppState {
        self.monitor.inputs().app_state
    }

    /// Runs `future` so that its timers and sockets belong to the client's runtime, whatever
    /// executor awaits it (a foreign one through the bindings, or none of tokio's).
    pub(crate) fn on_runtime<F: Future>(&self, future: F) -> OnRuntime<F> {
        OnRuntime { runtime: self.runtime.clone(), future: Box::pin(future) }
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
/// `shutdown()` is not kept alive by its own background task.
struct ClientEngine(Weak<ChatClient>);

impl ClientEngine {
    fn client(&self) -> Result<Arc<ChatClient>, ChatError> {
        self.0.upgrade().ok_or(ChatError::ShutDown)
    }
}

/// A success proves the server answered, whatever path it took (deduplicated, so a double
/// report is harmless). Failures are reported by the api layer itself: only it can tell a
/// transport failure from a 503 (both reach us as `ChatError::Offline`).
fn note_outcome<T>(client: &ChatClient, result: &Result<T, ChatError>) {
    if result.is_ok() {
        client.lifecycle.note_request_result(true);
    }
}

impl SyncEngine for ClientEngine {
    fn sync(&self, long_poll: Duration) -> impl Future<Output = Result<(), ChatError>> + Send {
        let client = self.client();
        async move {
            let client = client?;
            if client.lifecycle.is_shut_down() {
                return Err(ChatError::ShutDown);
            }
            let result = client.sync_with_timeout(long_poll.as_millis() as u64).await.map(|_| ());
            note_outcome(&client, &result);
            result
        }
    }

    fn flush(&self) -> impl Future<Output = Result<(), ChatError>> + Send {
        let client = self.client();
        async move {
            let client = client?;
            if client.lifecycle.is_shut_down() {
                return Err(ChatError::ShutDown);
            }
            let result = client.flush_outbox().await.map(|_| ());
            note_outcome(&client, &result);
            result
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
        tasks.push(lc.runtime.spawn(network::run_probe(lc.monitor.clone(), lc.http.clone(), lc.probe.clone())));
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
        let tasks: Vec<_> = lc.tasks.lock().unwrap_or_else(|p| p.into_inner()).drain(..).collect();
        for task in tasks {
            task.abort();
        }
    }

    /// Time-boxed sync + flush for OS background tasks; always returns within `budget_ms`.
    /// The report lists new messages from other users (for local notifications), what was sent,
    /// what is still pending or failed, and whether it finished or ran out of time.
    pub async fn background_sync(&self, budget_ms: u64) -> BackgroundSyncReport {
        let started = std::time::Instant::now();
        let lc = &self.lifecycle;
        lc.on_runtime(async move {
            let budget = Duration::from_millis(budget_ms);
            // Leave a margin to build the report from the store after the work is cut off.
            let work_budget = budget.saturating_sub((budget / 10).min(Duration::from_millis(500)));
            let mut report = BackgroundSyncReport { online: self.network_status() == NetworkStatus::Online, ..Default::default() };
            if lc.is_shut_down() {
                report.error = Some(ChatError::ShutDown.to_string());
                return report;
            }
            let newest_before = self.newest_server_ids();
            let outbox_before: BTreeSet<String> = self.outbox().unwrap_or_default().into_iter().map(|e| e.local_id).collect();

            match tokio::time::timeout(work_budget, self.sync_once()).await {
                Ok(Ok(sync)) => {
                    report.finished = true;
                    report.online = true;
                    report.new_messages = self.previews(&sync.new_messages, &newest_before);
                }
                Ok(Err(error)) => {
                    report.online = self.network_status() == NetworkStatus::Online;
                    report.error = Some(error.to_string());
                }
                Err(_) => {
                    report.online = self.network_status() == NetworkStatus::Online;
                    report.error = Some(format!("ran out of time after {} ms", started.elapsed().as_millis()));
                }
            }
            let outbox_after = self.outbox().unwrap_or_default();
            report.sent = outbox_before.iter().filter(|id| !outbox_after.iter().any(|e| &e.local_id == *id)).count() as u32;
            report.pending = outbox_after.iter().filter(|e| e.state == MessageState::Pending).count() as u32;
            report.failed = outbox_after.iter().filter(|e| e.state == MessageState::Failed).count() as u32;
            report
        })
        .await
    }

    /// Newest server id held per room (before a sync), to tell new messages from old ones.
    fn newest_server_ids(&self) -> BTreeMap<String, u64> {
        let mut newest = BTreeMap::new();
        for room in self.rooms().unwrap_or_default() {
            let held = self.messages(room.id.clone(), 20, None).unwrap_or_default();
            if let Some(id) = held.iter().filter_map(|m| m.server_id).max() {
                newest.insert(room.id, id);
            }
        }
        newest
    }

    /// Notification previews of the messages a sync stored that other users sent.
    fn previews(&self, new_per_room: &BTreeMap<String, u32>, newest_before: &BTreeMap<String, u64>) -> Vec<NewMessagePreview> {
        let mut previews = Vec::new();
        for (room_id, &count) in new_per_room {
            if count == 0 {
                continue;
            }
            let floor = newest_before.get(room_id).copied().unwrap_or(0);
            let held = self.messages(room_id.clone(), count.min(100), None).unwrap_or_default();
            let mut fresh: Vec<NewMessagePreview> = held
                .into_iter()
                .filter(|m| m.server_id.is_some_and(|id| id > floor) && m.user.id != self.lifecycle.user_id)
                .map(|m| NewMessagePreview {
                    room_id: room_id.clone(),
                    message_id: m.server_id.unwrap_or_default(),
                    sender_id: m.user.id.clone(),
                    sender_name: m.user.name.clone(),
                    preview: preview_of(&m.text),
                })
                .collect();
            fresh.reverse(); // oldest first, the order notifications are posted in
            previews.extend(fresh);
        }
        previews
    }
}

/// The text cut to [`PREVIEW_CHARS`] characters (on a character boundary), with an ellipsis
/// when cut, and line breaks flattened for a one-line notification.
pub(crate) fn preview_of(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= PREVIEW_CHARS {
        return flat;
    }
    let mut cut: String = flat.chars().take(PREVIEW_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_one_line_and_cut_on_a_char_boundary() {
        assert_eq!(preview_of("hello\n  world"), "hello world");
        let long = "é".repeat(300);
        let p = preview_of(&long);
        assert_eq!(p.chars().count(), PREVIEW_CHARS);
        assert!(p.ends_with('…'));
    }
}

/// Stand-ins until the engine's `pub(crate)` entry points land (inherent methods of the same
/// names take precedence over these, so this trait goes unused as soon as they exist).
#[allow(dead_code)]
trait EngineEntryPoints {
    async fn sync_with_timeout(&self, timeout_ms: u64) -> Result<SyncReport, ChatError>;
    async fn flush_outbox(&self) -> Result<(), ChatError>;
    fn outbox_next_due(&self) -> Option<tokio::time::Instant>;
}

impl EngineEntryPoints for ChatClient {
    async fn sync_with_timeout(&self, _timeout_ms: u64) -> Result<SyncReport, ChatError> {
        self.sync_once().await
    }
    async fn flush_outbox(&self) -> Result<(), ChatError> {
        Ok(())
    }
    fn outbox_next_due(&self) -> Option<tokio::time::Instant> {
        None
    }
}
