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
//! of mode resets the backoff; a server hint (429 Retry-After, 503) is honoured as a minimum.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::time::Instant;

use crate::error::ChatError;
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

/// How long a 503 without `Retry-After` keeps us away at least.
pub(crate) const DEFAULT_UNAVAILABLE_DELAY: Duration = Duration::from_secs(5);
/// A server cannot keep a device away for longer than this (a broken or hostile header).
pub(crate) const MAX_SERVER_DELAY: Duration = Duration::from_secs(3600);

/// Parses a `Retry-After` value in delta-seconds. (The HTTP-date form is rare for 429/503 APIs
/// and would need a date parser; it falls back to the default delay.)
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s).min(MAX_SERVER_DELAY))
}

/// The latest "come back later" from the server, waiting to be honoured by the next backoff.
#[derive(Debug, Default)]
pub(crate) struct ServerHints {
    /// Earliest moment the server wants to hear from us again.
    not_before: Mutex<Option<Instant>>,
}

impl ServerHints {
    /// Records a 429/503 answer and its `Retry-After` header, if any.
    pub(crate) fn note(&self, status: u16, retry_after: Option<&str>) {
        if status != 429 && status != 503 {
            return;
        }
        let delay = retry_after
            .and_then(parse_retry_after)
            .unwrap_or(DEFAULT_UNAVAILABLE_DELAY);
        let until = Instant::now() + delay;
        let mut slot = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        if !slot.is_some_and(|t| t >= until) {
            *slot = Some(until);
        }
    }

    /// The remaining server-imposed wait, consuming the hint.
    pub(crate) fn take_remaining(&self) -> Duration {
        let mut slot = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        slot.take()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or_default()
    }
}

/// What the scheduler needs from the engine. `ChatClient` implements it in `lifecycle`; keeping
/// it a trait keeps this module about timing, not about stores and HTTP.
pub(crate) trait SyncEngine: Send + Sync + 'static {
    /// One `/v1/sync` request from the stored token, holding up to `long_poll` when nothing is
    /// new, with the batch applied to the store.
    fn sync(&self, long_poll: Duration) -> impl Future<Output = Result<(), ChatError>> + Send;
    /// Sends what is due in the outbox.
    fn flush(&self) -> impl Future<Output = Result<(), ChatError>> + Send;
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
    pub hints: Arc<ServerHints>,
    /// Notified by the engine whenever something is queued (send, retry).
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
                Err(ChatError::ShutDown) => return,
                Err(error) => {
                    tracing::debug!(%error, "live sync failed");
                    // A transport failure has marked us Offline already, which ends this mode;
                    // anything else (5xx, 429, a protocol error) waits and tries again.
                    let delay = backoff.next_delay().max(ctx.hints.take_remaining());
                    back_off(ctx, delay).await;
                }
            }
        }
    };
    let flush = flush_on_demand(engine, ctx);
    tokio::join!(poll, flush);
}

/// Flushes whenever the outbox has due work; sleeps on the engine's "queued" notification or
/// the next retry time otherwise (no polling).
async fn flush_on_demand<E: SyncEngine>(engine: &E, ctx: &SchedulerCtx) {
    let mut backoff = new_backoff(ctx);
    loop {
        match engine.outbox_next_due() {
            Some(due) if due <= Instant::now() => match engine.flush().await {
                Ok(()) => backoff.reset(),
                Err(ChatError::ShutDown) => return,
                Err(error) => {
                    tracing::debug!(%error, "flush failed");
                    let delay = backoff.next_delay().max(ctx.hints.take_remaining());
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = ctx.outbox_wake.notified() => {}
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
            Err(ChatError::ShutDown) => return,
            Err(error) => {
                tracing::debug!(%error, "background sync failed");
                let delay = backoff
                    .next_delay()
                    .max(every)
                    .max(ctx.hints.take_remaining());
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
    fn retry_after_is_parsed_and_bounded() {
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("99999999"), Some(MAX_SERVER_DELAY));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn server_hints_are_honoured_once_and_the_longest_wins() {
        let hints = ServerHints::default();
        assert_eq!(hints.take_remaining(), Duration::ZERO);
        hints.note(429, Some("30"));
        hints.note(503, Some("10"));
        hints.note(500, Some("999"));
        assert_eq!(hints.take_remaining(), Duration::from_secs(30));
        assert_eq!(
            hints.take_remaining(),
            Duration::ZERO,
            "a hint is used once"
        );
        hints.note(503, None);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            hints.take_remaining(),
            DEFAULT_UNAVAILABLE_DELAY - Duration::from_secs(2)
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
