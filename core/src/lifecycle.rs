//! The lifecycle service: network status (the platform's hint, real requests, the probe), the
//! app's state, the scheduler that decides what runs now, and the one sync-status state
//! machine. It is the only writer of `SyncStateChanged`: the scheduler reports its own state
//! here, an explicit `sync_once` shows as `Syncing` while it runs, and `Stopped` (after
//! `shutdown()`) is final. It also runs the time-boxed one-shot sync of OS background tasks.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::api::RequestObserver;
use crate::client::ChatClient;
use crate::config::ClientConfig;
use crate::error::{ChatError, Error, Result};
use crate::events::{ClientEvent, EventHub};
use crate::model::*;
use crate::network::{self, NetworkMonitor, ProbeSettings};
use crate::scheduler::{self, SchedulerCtx, SchedulerSettings, SyncEngine};
use crate::send_queue::SendQueue;
use crate::shutdown::Shutdown;
use crate::sync::SyncService;

/// What every request tells the lifecycle: the network status follows real requests, and a
/// refused token is announced once per streak.
pub(crate) struct RequestReporter {
    pub monitor: Arc<NetworkMonitor>,
    pub events: EventHub,
}

impl RequestObserver for RequestReporter {
    fn request_result(&self, answered: bool) {
        self.monitor.note_reachable(answered);
    }
    fn unauthorized(&self, reason: &str) {
        self.events.emit(ClientEvent::Unauthorized {
            reason: reason.to_owned(),
        });
    }
    fn authorized(&self) {
        self.events.note_authorized();
    }
}

/// The sync-status state machine: the scheduler's own state, raised to `Syncing` while explicit
/// syncs run, `Stopped` for good after shutdown.
#[derive(Debug)]
struct Status {
    scheduler: SyncState,
    explicit: u32,
    stopped: bool,
}

/// The lifecycle service.
pub(crate) struct Lifecycle {
    monitor: Arc<NetworkMonitor>,
    events: EventHub,
    sync: Arc<SyncService>,
    queue: Arc<SendQueue>,
    status: Arc<Mutex<Status>>,
    probe: ProbeSettings,
    scheduler: SchedulerSettings,
    /// The client's runtime: tasks run there.
    runtime: Handle,
    http: reqwest::Client,
    shutdown: Shutdown,
    started: AtomicBool,
    /// Probe and scheduler tasks, aborted by `shutdown()`.
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// One explicit sync in progress: `Syncing` while it lives.
struct ExplicitSync<'a>(&'a Lifecycle);

impl Drop for ExplicitSync<'_> {
    fn drop(&mut self) {
        self.0
            .change_status(|s| s.explicit = s.explicit.saturating_sub(1));
    }
}

impl Lifecycle {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: &ClientConfig,
        monitor: Arc<NetworkMonitor>,
        events: EventHub,
        sync: Arc<SyncService>,
        queue: Arc<SendQueue>,
        runtime: Handle,
        http: reqwest::Client,
        shutdown: Shutdown,
    ) -> Lifecycle {
        Lifecycle {
            monitor,
            events,
            sync,
            queue,
            status: Arc::new(Mutex::new(Status {
                scheduler: SyncState::Idle,
                explicit: 0,
                stopped: false,
            })),
            probe: ProbeSettings::from_config(config),
            scheduler: SchedulerSettings::from_config(config),
            runtime,
            http,
            shutdown,
            started: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Changes the status under its lock and publishes the resulting state (the hub drops
    /// repeats; nothing after `Stopped`).
    fn change_status(&self, change: impl FnOnce(&mut Status)) {
        publish(&self.status, &self.events, change);
    }

    fn begin_explicit(&self) -> ExplicitSync<'_> {
        self.change_status(|s| s.explicit += 1);
        ExplicitSync(self)
    }

    /// Starts the probe and the scheduler (live long-poll, background timer). Idempotent; does
    /// nothing after `shutdown()`.
    pub fn start(&self) {
        if self.shutdown.is_triggered() || self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let status = self.status.clone();
        let events = self.events.clone();
        let ctx = Arc::new(SchedulerCtx {
            monitor: self.monitor.clone(),
            outbox_wake: self.queue.wake_handle(),
            set_state: Arc::new(move |state| {
                publish(&status, &events, |s| s.scheduler = state);
            }),
            settings: self.scheduler.clone(),
        });
        let engine = Arc::new(Services {
            sync: self.sync.clone(),
            queue: self.queue.clone(),
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks.push(self.runtime.spawn(network::run_probe(
            self.monitor.clone(),
            self.http.clone(),
            self.probe.clone(),
        )));
        tasks.push(self.runtime.spawn(scheduler::run_scheduler(engine, ctx)));
        // A shutdown that raced with this start: make sure nothing keeps running.
        if self.shutdown.is_triggered() {
            tasks.drain(..).for_each(|t| t.abort());
        }
    }

    /// The platform's reachability hint.
    pub fn set_network_reachable(&self, reachable: bool) {
        self.monitor.set_hint(reachable);
    }

    /// The app's lifecycle state.
    pub fn set_app_state(&self, state: AppState) {
        self.monitor.set_app_state(state);
    }

    /// Online, Offline, or Unknown before the first answer.
    pub fn network_status(&self) -> NetworkStatus {
        self.monitor.status()
    }

    /// Stops the probe and the scheduler and publishes `Stopped`, the last status. The caller
    /// (the facade) has triggered the shutdown signal, which ends every call in flight.
    pub fn stop(&self) {
        self.change_status(|s| s.stopped = true);
        self.monitor.shut_down();
        let tasks: Vec<_> = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
            .collect();
        for task in tasks {
            task.abort();
        }
    }

    /// One sync and an outbox flush, now. Offline is a report (`online: false`), not an error;
    /// when the platform says there is no network, no request is made at all. A server that
    /// answers with an error or "busy" is an error (`Unavailable`) that says so.
    pub async fn sync_once(&self) -> Result<SyncReport> {
        self.shutdown.check()?;
        let offline_report = |queue: &SendQueue| -> Result<SyncReport> {
            let (pending, failed) = queue.counts()?;
            Ok(SyncReport {
                online: false,
                pending,
                failed,
                ..SyncReport::default()
            })
        };
        if self.monitor.inputs().hint == Some(false) {
            return offline_report(&self.queue);
        }
        let _syncing = self.begin_explicit();
        let mut report = SyncReport::default();
        match self.sync.sync_request(0).await {
            Ok(outcome) => {
                report.online = true;
                report.new_messages = outcome.new_messages;
            }
            Err(
                e @ Error::Api(
                    crate::api::ApiError::Network(_)
                    | crate::api::ApiError::Token(crate::error::TokenError::Offline(_)),
                ),
            ) => {
                tracing::debug!("sync_once offline: {e}");
                return offline_report(&self.queue);
            }
            Err(e) => return Err(e),
        }
        self.sync.upload_profile_if_owed().await;
        let flush = self.queue.flush().await?;
        report.sent = flush.sent;
        report.pending = flush.pending;
        report.failed = flush.failed;
        Ok(report)
    }

    /// Time-boxed sync + flush for OS background tasks; always returns within `budget_ms`, with
    /// a typed outcome.
    pub async fn background_sync(&self, budget_ms: u64) -> BackgroundSyncReport {
        let started = std::time::Instant::now();
        if self.shutdown.is_triggered() {
            return failed_report(BackgroundOutcome::Failed, &ChatError::ShutDown);
        }
        let budget = Duration::from_millis(budget_ms);
        // Leave a margin to read the outbox and build the report after a cut-off.
        let work_budget = budget.saturating_sub((budget / 10).min(Duration::from_millis(200)));
        let mut report = BackgroundSyncReport::default();
        let outbox_before: BTreeSet<String> = self
            .queue_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let result = {
            let _syncing = self.begin_explicit();
            let work = async {
                let outcome = self.sync.sync_request(0).await?;
                report.online = true;
                report.new_messages = outcome.previews;
                self.sync.upload_profile_if_owed().await;
                match self.queue.flush().await?.stopped_by {
                    Some(error) => Err(error),
                    None => Ok(()),
                }
            };
            tokio::time::timeout(work_budget, self.shutdown.race(work)).await
        };
        match result {
            Ok(Ok(())) => report.outcome = BackgroundOutcome::Completed,
            Ok(Err(error)) => {
                let public = ChatError::from(error);
                report.outcome = match &public {
                    ChatError::Offline(_) | ChatError::Unavailable { .. } => {
                        BackgroundOutcome::Offline
                    }
                    ChatError::Unauthorized(_) => BackgroundOutcome::Unauthorized,
                    ChatError::Busy(_) => BackgroundOutcome::Busy,
                    _ => BackgroundOutcome::Failed,
                };
                report.error = Some(public.to_string());
            }
            Err(_) => {
                report.outcome = BackgroundOutcome::TimedOut;
                report.error = Some(format!(
                    "ran out of time after {} ms",
                    started.elapsed().as_millis()
                ));
            }
        }
        report.retry_later = report.outcome.retry_later();
        report.online = report.online || self.network_status() == NetworkStatus::Online;
        let after = self.queue_ids().unwrap_or_default();
        report.sent = outbox_before
            .iter()
            .filter(|id| !after.iter().any(|(a, _)| a == *id))
            .count() as u32;
        report.pending = after
            .iter()
            .filter(|(_, s)| *s == MessageState::Pending)
            .count() as u32;
        report.failed = after
            .iter()
            .filter(|(_, s)| *s == MessageState::Failed)
            .count() as u32;
        report
    }

    /// The outbox's local ids and states.
    fn queue_ids(&self) -> Result<Vec<(String, MessageState)>> {
        let store = self.queue_store()?;
        Ok(store
            .outbox
            .entries()?
            .into_iter()
            .map(|(_, r)| (r.local_id, r.state))
            .collect())
    }

    fn queue_store(&self) -> Result<crate::store::Store> {
        self.queue.store_handle().get().ok_or(Error::ShutDown)
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

/// Applies `change` to the status and emits the state it now stands for.
fn publish(status: &Mutex<Status>, events: &EventHub, change: impl FnOnce(&mut Status)) {
    let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
    if s.stopped {
        return;
    }
    change(&mut s);
    let state = if s.stopped {
        SyncState::Stopped
    } else if s.explicit > 0 {
        SyncState::Syncing
    } else {
        s.scheduler
    };
    // Under the lock: two changes cannot publish out of order.
    events.emit(ClientEvent::SyncStateChanged { state });
}

fn failed_report(outcome: BackgroundOutcome, error: &ChatError) -> BackgroundSyncReport {
    BackgroundSyncReport {
        outcome,
        retry_later: outcome.retry_later(),
        error: Some(error.to_string()),
        ..Default::default()
    }
}

/// The scheduler's view of the services: the sync service and the send queue, nothing else.
struct Services {
    sync: Arc<SyncService>,
    queue: Arc<SendQueue>,
}

impl SyncEngine for Services {
    /// Calls the sync service directly: dropping this future cancels the HTTP request, so going
    /// to the background ends the long-poll at once.
    fn sync(&self, long_poll: Duration) -> impl std::future::Future<Output = Result<()>> + Send {
        let sync = self.sync.clone();
        async move {
            sync.sync_request(long_poll.as_millis() as u64).await?;
            Ok(())
        }
    }

    /// One flush; a transient failure that stopped it is an error here (the queue's backoff is
    /// armed and `outbox_next_due` reports it).
    fn flush(&self) -> impl std::future::Future<Output = Result<()>> + Send {
        let queue = self.queue.clone();
        async move {
            // Spawned, so a change of mode does not cut a flush off between the server's answer
            // and its record: an accepted message is recorded as sent, not sent again later.
            let report = tokio::spawn(async move { queue.flush().await })
                .await
                .map_err(|e| Error::Internal(format!("flush task: {e}")))??;
            match report.stopped_by {
                Some(error) => Err(error),
                None => Ok(()),
            }
        }
    }

    fn outbox_next_due(&self) -> Option<tokio::time::Instant> {
        self.queue.next_due().unwrap_or_else(|e| {
            tracing::warn!("cannot read the outbox: {e}");
            None
        })
    }
}

/// One-shot background sync for a process the OS started just for it (Android JobScheduler,
/// iOS BGAppRefreshTask): opens the store of `config`, runs `background_sync`, and closes the
/// store again, all within `budget_ms`. When another client (the app's UI process) holds the
/// store, it waits for it up to half the budget, then reports `Busy` without touching
/// anything. Call it on a tokio runtime (the bindings do); the client runs on that runtime.
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
            let outcome = match error {
                ChatError::Busy(_) => BackgroundOutcome::Busy,
                _ => BackgroundOutcome::Failed,
            };
            return failed_report(outcome, &error);
        }
        Ok(Err(join_error)) => {
            return failed_report(
                BackgroundOutcome::Failed,
                &ChatError::Internal(format!("cannot open the store: {join_error}")),
            )
        }
        Err(_) => {
            return failed_report(
                BackgroundOutcome::Busy,
                &ChatError::Busy("the store is held by another client".into()),
            )
        }
    };
    let left = budget.saturating_sub(started.elapsed());
    let report = client.background_sync(left.as_millis() as u64).await;
    client.shutdown();
    report
}
