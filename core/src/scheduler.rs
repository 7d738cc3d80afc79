//! The scheduler: (app state x network status) -> what runs now.
//!
//! - Active (or iOS's transient Inactive) and not offline: a live long-poll loop on `/v1/sync`,
//!   plus an outbox flush whenever something is queued or a retry falls due.
//! - Background and not offline: one sync + flush every `background_interval`.
//! - Offline (or the platform says there is no network): nothing here; only the probe runs.
//!
//! Every wait is a tokio timer or a channel, so the whole policy runs on tokio's paused clock in
//! tests, and an idle client makes no wakeups beyond what the mode needs. A change of mode
//! drops the running mode's future, which cancels an in-flight long-poll at once (going to the
//! background ends it promptly). Failures back off exponentially with jitter, capped; a change
//! of mode resets the backoff; a server's 429/503 (with its Retry-After) is honoured as a
//! minimum. Flushes are timed by the send queue's own backoff (`SendQueue::next_due`): one
//! backoff per kind of request, never two stacked.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::error::Error;
use crate::model::{AppState, NetworkStatus, SyncState};
use crate::network::{Inputs, NetworkMonitor};

/// What the scheduler is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Long-poll loop + flush on demand (app in the foreground).
    Live,
    /// Sync + flush every `background_interval` (app in the background).
    Interval,
    /// Offline: no requests (the probe works on its own).
    Idle,
    /// Shut down: the task ends.
    Stopped,
}

/// The policy, as a pure function of the inputs. `Unknown` counts as "try": the first real
/// request decides the status, so no separate probe request is needed at start.
pub(crate) fn mode_for(inputs: &Inputs) -> Mode {
    if inputs.shut_down {
        return Mode::Stopped;
    }
    if inputs.status == NetworkStatus::Offline || inputs.hint == Some(false) {
        return Mode::Idle;
    }
    match inputs.app_state {
        AppState::Active | AppState::Inactive => Mode::Live,
        AppState::Background => Mode::Interval,
    }
}

/// Capped exponential backoff with "equal jitter": the n-th delay is uniformly drawn from
/// `[d/2, d]` with `d = min(cap, base * 2^n)`. Half the delay is guaranteed (no hammering), the
/// other half spreads many devices apart after a server outage.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub(crate) fn new(base: Duration, cap: Duration, rng: fastrand::Rng) -> Self {
        Backoff {
            base,
            cap,
            failures: 0,
            rng,
        }
    }

    /// The delay before the next attempt after one more failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(30);
        self.failures = self.failures.saturating_add(1);
        let full = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let half = full / 2;
        let jitter_ms = self.rng.u64(0..=(full - half).as_millis() as u64);
        half + Duration::from_millis(jitter_ms)
    }

    /// After a success or a change of state.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    #[cfg(test)]
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }
}

/// How long a 429 or 503 without `Retry-After` keeps us away at least.
pub(crate) const DEFAULT_UNAVAILABLE_DELAY: Duration = Duration::from_secs(5);

/// The wait a failed sync's answer asks for: its Retry-After, or [`DEFAULT_UNAVAILABLE_DELAY`]
/// for a 429 or 503 without one; nothing for other failures.
fn server_delay(error: &Error) -> Duration {
    match error {
        Error::Api(crate::api::ApiError::Unavailable {
            status,
            retry_after,
            ..
        }) => retry_after.unwrap_or(if *status == 429 || *status == 503 {
            DEFAULT_UNAVAILABLE_DELAY
        } else {
            Duration::ZERO
        }),
        _ => Duration::ZERO,
    }
}

/// What the scheduler needs from the services. `lifecycle` implements it over the sync service
/// and the send queue; keeping it a trait keeps this module about timing, not about stores and
/// HTTP.
pub(crate) trait SyncEngine: Send + Sync + 'static {
    /// One `/v1/sync` request from the stored token, holding up to `long_poll` when nothing is
    /// new, with the batch applied to the store.
    fn sync(&self, long_poll: Duration) -> impl Future<Output = Result<(), Error>> + Send;
    /// Sends what is due in the outbox.
    fn flush(&self) -> impl Future<Output = Result<(), Error>> + Send;
    /// When the outbox next has work: `None` when empty (or only failed entries), a past
    /// instant when due now, a future one when waiting for a retry.
    fn outbox_next_due(&self) -> Option<Instant>;
}

/// Scheduler timings.
#[derive(Clone, Debug)]
pub(crate) struct SchedulerSettings {
    pub long_poll: Duration,
    pub background_interval: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl SchedulerSettings {
    pub(crate) fn from_config(config: &crate::config::ClientConfig) -> Self {
        SchedulerSettings {
            // At least a second: a zero hold would turn the live loop into a busy poll.
            long_poll: Duration::from_millis(
                config
                    .long_poll_timeout_ms
                    .clamp(1_000, chatsync_protocol::SYNC_MAX_TIMEOUT_MS),
            ),
            background_interval: Duration::from_millis(config.background_interval_ms.max(1_000)),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
        }
    }
}

/// Shared handles the scheduler task works with.
pub(crate) struct SchedulerCtx {
    pub monitor: Arc<NetworkMonitor>,
    /// Notified by the send queue whenever something becomes sendable (send, retry).
    pub outbox_wake: Arc<Notify>,
    /// Reports the scheduler's own state (live, backing off, idle, stopped).
    pub set_state: Arc<dyn Fn(SyncState) + Send + Sync>,
    pub settings: SchedulerSettings,
}

/// The scheduler task: runs the mode the inputs call for; on every change of mode drops the
/// running one (cancelling its in-flight request) and starts the next with a fresh backoff.
pub(crate) async fn run_scheduler<E: SyncEngine>(engine: Arc<E>, ctx: Arc<SchedulerCtx>) {
    let mut inputs_rx = ctx.monitor.subscribe();
    let mut previous = None;
    loop {
        let inputs = *inputs_rx.borrow_and_update();
        let mode = mode_for(&inputs);
        tracing::debug!(?mode, ?inputs, "scheduler mode");
        let work = async {
            match mode {
                Mode::Stopped => {}
                Mode::Idle => {
                    (ctx.set_state)(SyncState::Idle);
                    std::future::pending::<()>().await
                }
                Mode::Live => live(&*engine, &ctx).await,
                // Coming from the foreground we are up to date: first wait one interval.
                // Coming online or starting in the background: catch up at once.
                Mode::Interval => interval(&*engine, &ctx, previous == Some(Mode::Live)).await,
            }
        };
        if mode == Mode::Stopped {
            (ctx.set_state)(SyncState::Stopped);
            return;
        }
        tokio::select! {
            _ = work => {}
            ended = mode_changes(&mut inputs_rx, mode) => {
                if !ended {
                    (ctx.set_state)(SyncState::Stopped);
                    return;
                }
            }
        }
        previous = Some(mode);
    }
}

/// Resolves (true) once the inputs call for a mode other than `mode`; false if the sender is
/// gone.
async fn mode_changes(rx: &mut watch::Receiver<Inputs>, mode: Mode) -> bool {
    loop {
        if rx.changed().await.is_err() {
            return false;
        }
        if mode_for(&rx.borrow()) != mode {
            return true;
        }
    }
}

/// Waits `delay`, reporting `BackingOff` meanwhile.
async fn back_off(ctx: &SchedulerCtx, delay: Duration) {
    (ctx.set_state)(SyncState::BackingOff);
    tracing::debug!(?delay, "backing off");
    tokio::time::sleep(delay).await;
}

fn new_backoff(ctx: &SchedulerCtx) -> Backoff {
    Backoff::new(
        ctx.settings.backoff_base,
        ctx.settings.backoff_cap,
        fastrand::Rng::new(),
    )
}

/// Foreground: the long-poll loop and the outbox flusher side by side, so a message typed while
/// the long-poll is parked goes out at once without ending the poll.
async fn live<E: SyncEngine>(engine: &E, ctx: &SchedulerCtx) {
    let poll = async {
        let mut backoff = new_backoff(ctx);
        loop {
            (ctx.set_state)(SyncState::Live);
            match engine.sync(ctx.settings.long_poll).await {
                Ok(()) => backoff.reset(),
                Err(Error::ShutDown) => return,
                Err(error) => {
                    tracing::debug!(%error, "live sync failed");
                    // A transport failure has marked us Offline already, which ends this mode;
                    // anything else (5xx, 429, a protocol error) waits and tries again.
                    let delay = backoff.next_delay().max(server_delay(&error));
                    back_off(ctx, delay).await;
                }
            }
        }
    };
    let flush = flush_on_demand(engine, ctx);
    tokio::join!(poll, flush);
}

/// Flushes whenever the send queue has due work; sleeps on its "sendable" notification or its
/// next retry time otherwise (no polling). A failed flush arms the queue's own backoff, which
/// `outbox_next_due` then reports: the only backoff of flushes.
async fn flush_on_demand<E: SyncEngine>(engine: &E, ctx: &SchedulerCtx) {
    loop {
        match engine.outbox_next_due() {
            Some(due) if due <= Instant::now() => match engine.flush().await {
                Ok(()) => {}
                Err(Error::ShutDown) => return,
                Err(error) => {
                    tracing::debug!(%error, "flush failed");
                    // Not a transient failure of the queue (a refused token): wait for news.
                    if engine
                        .outbox_next_due()
                        .is_none_or(|due| due <= Instant::now())
                    {
                        ctx.outbox_wake.notified().await;
                    }
                }
            },
            Some(due) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(due) => {}
                    _ = ctx.outbox_wake.notified() => {}
                }
            }
            None => ctx.outbox_wake.notified().await,
        }
    }
}

/// Background: one sync and one flush per interval; after a failure, the next try waits the
/// longer of the interval and the backoff (and any server hint).
async fn interval<E: SyncEngine>(engine: &E, ctx: &SchedulerCtx, wait_first: bool) {
    let mut backoff = new_backoff(ctx);
    let every = ctx.settings.background_interval;
    if wait_first {
        (ctx.set_state)(SyncState::Idle);
        tokio::time::sleep(every).await;
    }
    loop {
        (ctx.set_state)(SyncState::Syncing);
        let mut result = engine.sync(Duration::ZERO).await;
        if result.is_ok()
            && engine
                .outbox_next_due()
                .is_some_and(|due| due <= Instant::now())
        {
            result = engine.flush().await;
        }
        match result {
            Ok(()) => {
                backoff.reset();
                (ctx.set_state)(SyncState::Idle);
                tokio::time::sleep(every).await;
            }
            Err(Error::ShutDown) => return,
            Err(error) => {
                tracing::debug!(%error, "background sync failed");
                let delay = backoff.next_delay().max(every).max(server_delay(&error));
                back_off(ctx, delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(app_state: AppState, status: NetworkStatus) -> Inputs {
        let mut i = NetworkMonitor::new(Arc::new(|_| {})).inputs();
        i.app_state = app_state;
        i.status = status;
        i
    }

    #[test]
    fn mode_follows_app_state_and_network() {
        use AppState::*;
        use NetworkStatus::*;
        assert_eq!(mode_for(&inputs(Active, Online)), Mode::Live);
        assert_eq!(mode_for(&inputs(Inactive, Online)), Mode::Live);
        assert_eq!(
            mode_for(&inputs(Active, Unknown)),
            Mode::Live,
            "unknown: the first request decides"
        );
        assert_eq!(mode_for(&inputs(Background, Online)), Mode::Interval);
        assert_eq!(mode_for(&inputs(Background, Unknown)), Mode::Interval);
        assert_eq!(mode_for(&inputs(Active, Offline)), Mode::Idle);
        assert_eq!(mode_for(&inputs(Background, Offline)), Mode::Idle);
        let mut no_route = inputs(Active, Online);
        no_route.hint = Some(false);
        assert_eq!(mode_for(&no_route), Mode::Idle);
        let mut stopped = inputs(Active, Online);
        stopped.shut_down = true;
        assert_eq!(mode_for(&stopped), Mode::Stopped);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(
            Duration::from_secs(1),
            Duration::from_secs(60),
            fastrand::Rng::with_seed(7),
        );
        let mut previous_full = Duration::ZERO;
        for n in 0..12u32 {
            let full = Duration::from_secs(1)
                .saturating_mul(1 << n)
                .min(Duration::from_secs(60));
            let d = b.next_delay();
            assert!(
                d >= full / 2 && d <= full,
                "attempt {n}: {d:?} not in [{:?}, {full:?}]",
                full / 2
            );
            assert!(full >= previous_full);
            previous_full = full;
        }
        assert_eq!(b.failures(), 12);
        b.reset();
        let d = b.next_delay();
        assert!(
            d >= Duration::from_millis(500) && d <= Duration::from_secs(1),
            "{d:?}"
        );
    }

    #[test]
    fn jitter_spreads_devices_apart() {
        let delays: std::collections::BTreeSet<Duration> = (0..20)
            .map(|seed| {
                let mut b = Backoff::new(
                    Duration::from_secs(1),
                    Duration::from_secs(60),
                    fastrand::Rng::with_seed(seed),
                );
                for _ in 0..5 {
                    b.next_delay();
                }
                b.next_delay()
            })
            .collect();
        assert!(
            delays.len() > 10,
            "20 devices should not retry in lockstep: {delays:?}"
        );
    }

    #[test]
    fn only_a_busy_server_imposes_its_own_wait() {
        use crate::api::ApiError;
        let busy = |status, retry_after| {
            Error::Api(ApiError::Unavailable {
                status,
                retry_after,
                reason: String::new(),
            })
        };
        assert_eq!(
            server_delay(&busy(429, Some(Duration::from_secs(30)))),
            Duration::from_secs(30)
        );
        assert_eq!(server_delay(&busy(503, None)), DEFAULT_UNAVAILABLE_DELAY);
        assert_eq!(server_delay(&busy(500, None)), Duration::ZERO);
        assert_eq!(
            server_delay(&Error::Api(ApiError::Network("x".into()))),
            Duration::ZERO
        );
    }

    #[test]
    fn settings_are_clamped_to_sane_bounds() {
        let mut config = crate::config::ClientConfig::new(
            "http://127.0.0.1:1",
            "/tmp/x",
            "a",
            crate::config::TokenSource::DevTokenRoute,
        );
        let defaults = SchedulerSettings::from_config(&config);
        assert_eq!(defaults.long_poll, Duration::from_secs(25));
        assert_eq!(defaults.background_interval, Duration::from_secs(60));
        config.long_poll_timeout_ms = 0;
        config.background_interval_ms = 0;
        let low = SchedulerSettings::from_config(&config);
        assert_eq!(
            low.long_poll,
            Duration::from_secs(1),
            "no busy long-poll loop"
        );
        assert_eq!(low.background_interval, Duration::from_secs(1));
        config.long_poll_timeout_ms = 10 * 60_000;
        assert_eq!(
            SchedulerSettings::from_config(&config).long_poll,
            Duration::from_millis(chatsync_protocol::SYNC_MAX_TIMEOUT_MS)
        );
    }
}
