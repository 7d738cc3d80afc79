//! The send queue: what the user sends, durably queued and delivered in order per room, exactly
//! once. It owns its state: the outbox (in the store), the one backoff of its flushes (and the
//! server's Retry-After), the lock that keeps flushes one at a time, and the wake-up of the
//! scheduler's live flusher.
//!
//! `send_text` stores a pending entry under a fresh client txn id and returns; a flush sends the
//! queue in order per room with `PUT /v1/rooms/{room}/messages/{txn}`, so a resend after any
//! crash is idempotent.
//!
//! Ordering rule (docs/adr/0003-device-store.md): a failed message blocks the later messages of
//! its room. They stay pending, in order, until the app retries or discards the failed one; a
//! conversation never silently shows a later message delivered while an earlier one was not.
//! Other rooms are not affected.
//!
//! Timing: transient failures (network, 5xx, 408, 429, an unreadable answer) back off
//! exponentially with jitter, capped, honouring Retry-After. The backoff is on tokio's clock, so
//! tests run it paused.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatsync_protocol::Part;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::{Api, ApiError};
use crate::changes::{Change, Changes};
use crate::error::{Error, Result};
use crate::events::{ClientEvent, EventHub};
use crate::model::*;
use crate::reads::check_room_id;
use crate::store::outbox::OutboxRecord;
use crate::store::{SharedStore, Store};

/// First retry delay after a transient failure.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Longest delay between two attempts (before Retry-After).
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// Capped exponential backoff with jitter: after the n-th consecutive failure the next attempt
/// is due after a delay drawn from `[d/2, d]`, `d = min(BACKOFF_CAP, BACKOFF_BASE * 2^(n-1))`,
/// or after the server's Retry-After when that is longer.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    failures: u32,
    next_due: Option<Instant>,
}

impl Backoff {
    /// Records a failure at `now`; returns the delay until the next attempt is due.
    pub fn on_failure(
        &mut self,
        now: Instant,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exp = BACKOFF_BASE
            .saturating_mul(1u32 << (self.failures - 1).min(16))
            .min(BACKOFF_CAP);
        // Jitter in [exp/2, exp], so many phones do not retry in lockstep.
        let half = exp / 2;
        let jitter = Duration::from_nanos(rng.u64(0..=half.as_nanos() as u64));
        let mut delay = half + jitter;
        if let Some(hint) = retry_after {
            delay = delay.max(hint);
        }
        self.next_due = Some(now + delay);
        delay
    }

    /// Forgets earlier failures: the next attempt is due at once.
    pub fn reset(&mut self) {
        self.failures = 0;
        self.next_due = None;
    }

    /// When the next attempt is due (`None`: now).
    pub fn next_due(&self) -> Option<Instant> {
        self.next_due
    }

    /// Consecutive failures so far.
    #[cfg(test)]
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Result of one flush.
#[derive(Debug, Default)]
pub(crate) struct FlushReport {
    /// Messages the server accepted during this flush.
    pub sent: u32,
    /// Entries still pending afterwards.
    pub pending: u32,
    /// Entries failed afterwards.
    pub failed: u32,
    /// The transient failure that stopped the flush, if one did (the backoff is armed).
    pub stopped_by: Option<Error>,
}

/// The send queue service.
pub(crate) struct SendQueue {
    store: SharedStore,
    api: Arc<Api>,
    events: EventHub,
    changes: Changes,
    /// The one backoff of flushes; a std Mutex, never held across an await.
    backoff: Mutex<Backoff>,
    /// One flush at a time, so per-room order holds.
    flush_lock: tokio::sync::Mutex<()>,
    /// Notified whenever something becomes sendable (a send, a retry, a discard that unblocks
    /// a room): the scheduler's live flusher waits on it.
    wake: Arc<Notify>,
}

impl SendQueue {
    pub fn new(store: SharedStore, api: Arc<Api>, events: EventHub, changes: Changes) -> Self {
        SendQueue {
            store,
            api,
            events,
            changes,
            backoff: Mutex::new(Backoff::default()),
            flush_lock: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
        }
    }

    fn store(&self) -> Result<Store> {
        self.store.get().ok_or(Error::ShutDown)
    }

    /// The store it works on.
    pub fn store_handle(&self) -> &SharedStore {
        &self.store
    }

    /// What the live flusher waits on.
    pub fn wake_handle(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Validates, queues durably, returns the queued entry (the app's echo is made from it).
    pub async fn send_text(&self, room_id: &str, text: &str) -> Result<OutboxRecord> {
        check_room_id(room_id)?;
        if text.trim().is_empty() {
            return Err(Error::InvalidInput("message text is empty".into()));
        }
        let parts = vec![Part::text(text)];
        chatsync_protocol::limits::check_parts(&parts)?;
        let store = self.store()?;
        let after_id = store.room(room_id)?.and_then(|r| r.newest_held);
        let record = OutboxRecord {
            local_id: uuid::Uuid::new_v4().to_string(),
            room_id: room_id.to_owned(),
            parts,
            created_at: now_rfc3339(),
            state: MessageState::Pending,
            attempts: 0,
            failure_reason: None,
            after_id,
        };
        store.enqueue(&record)?;
        // Durable before the app is told it is queued. When that fails (a full disk) the app is
        // told the send failed, so the journal must not bring the entry back in a recovery.
        if let Err(e) = store.flush().await {
            store.journal_forget(&record.local_id);
            return Err(e.into());
        }
        self.changed(&record.room_id, vec![record.local_id.clone()]);
        self.emit_counts(&store);
        self.wake.notify_one();
        Ok(record)
    }

    /// Pending and failed counts.
    pub fn counts(&self) -> Result<(u32, u32)> {
        counts(&self.store()?)
    }

    /// Emits the outbox counts (the hub drops it when unchanged).
    pub fn emit_counts(&self, store: &Store) {
        match counts(store) {
            Ok((pending, failed)) => self
                .events
                .emit(ClientEvent::OutboxChanged { pending, failed }),
            Err(e) => tracing::warn!("cannot count the outbox: {e}"),
        }
    }

    /// Tells the views and the app that messages of `room_id` changed.
    fn changed(&self, room_id: &str, ids: Vec<String>) {
        self.changes.send(Change::Room(room_id.to_owned()));
        self.events.emit(ClientEvent::MessagesChanged {
            room_id: room_id.to_owned(),
            ids,
        });
    }

    /// When the queue next has work: `None` when nothing is sendable (empty, or only failed
    /// entries and what they block), a past or present instant when due now, a future one while
    /// backing off.
    pub fn next_due(&self) -> Result<Option<Instant>> {
        if sendable_count(&self.store()?)? == 0 {
            return Ok(None);
        }
        let due = self
            .backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_due();
        Ok(Some(due.unwrap_or_else(Instant::now)))
    }

    /// Sends the queue in order per room. Stops at the first transient failure (arming the
    /// backoff); a permanent rejection marks that entry failed and blocks its room. Sends
    /// regardless of the backoff: the caller decides when (the scheduler waits for `next_due`,
    /// the app's explicit sync always tries).
    pub async fn flush(&self) -> Result<FlushReport> {
        let _one_flush = self.flush_lock.lock().await;
        let store = self.store()?;
        let mut report = FlushReport::default();
        let mut blocked = BTreeSet::new();
        let entries = store.outbox.entries()?;
        // Counted once and kept up to date here: rescanning the outbox after every message
        // would make a long offline backlog quadratic. Recounted at the end.
        let mut failed = entries
            .iter()
            .filter(|(_, r)| r.state == MessageState::Failed)
            .count() as u32;
        let mut pending = entries.len() as u32 - failed;
        for (seq, record) in entries {
            if blocked.contains(&record.room_id) {
                continue;
            }
            if record.state == MessageState::Failed {
                blocked.insert(record.room_id.clone());
                continue;
            }
            match self
                .api
                .send_message(&record.room_id, &record.local_id, &record.parts)
                .await
            {
                Ok(message) => {
                    store.complete_send(seq, &record.local_id, &message)?;
                    store.flush().await?;
                    self.backoff
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .reset();
                    report.sent += 1;
                    pending = pending.saturating_sub(1);
                    self.changed(
                        &record.room_id,
                        vec![record.local_id.clone(), message.id.to_string()],
                    );
                    self.events
                        .emit(ClientEvent::OutboxChanged { pending, failed });
                }
                Err(e) if e.is_transient() || matches!(e, ApiError::Protocol(_)) => {
                    // A garbled answer may hide a stored message: resending the txn id is safe.
                    store.update_outbox(seq, |r| r.attempts = r.attempts.saturating_add(1))?;
                    store.flush().await?;
                    let delay = {
                        let mut rng = fastrand::Rng::new();
                        self.backoff
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .on_failure(Instant::now(), e.retry_after(), &mut rng)
                    };
                    tracing::debug!("flush stopped ({e}); next attempt in {delay:?}");
                    report.stopped_by = Some(e.into());
                    break;
                }
                Err(e @ (ApiError::Unauthorized(_) | ApiError::ShutDown | ApiError::Token(_))) => {
                    // Not this message's fault: keep it pending, surface the error.
                    return Err(e.into());
                }
                Err(e) => {
                    let reason = match &e {
                        ApiError::Rejected { reason, .. } | ApiError::NotFound(reason) => {
                            reason.clone()
                        }
                        other => other.to_string(),
                    };
                    store.update_outbox(seq, |r| {
                        r.state = MessageState::Failed;
                        r.attempts = r.attempts.saturating_add(1);
                        r.failure_reason = Some(reason.clone());
                    })?;
                    store.flush().await?;
                    blocked.insert(record.room_id.clone());
                    pending = pending.saturating_sub(1);
                    failed += 1;
                    self.changed(&record.room_id, vec![record.local_id.clone()]);
                    self.events
                        .emit(ClientEvent::OutboxChanged { pending, failed });
                }
            }
        }
        // Exact again (messages may have been queued meanwhile).
        let (pending, failed) = counts(&store)?;
        self.events
            .emit(ClientEvent::OutboxChanged { pending, failed });
        report.pending = pending;
        report.failed = failed;
        Ok(report)
    }

    /// A failed entry becomes pending again (and unblocks its room).
    pub async fn retry(&self, local_id: &str) -> Result<()> {
        let store = self.store()?;
        let Some((seq, record)) = store.outbox.find(local_id)? else {
            return Err(Error::NotFound(format!("no queued message {local_id}")));
        };
        if record.state != MessageState::Failed {
            return Ok(());
        }
        store.update_outbox(seq, |r| {
            r.state = MessageState::Pending;
            r.failure_reason = None;
        })?;
        store.flush().await?;
        self.backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reset();
        self.changed(&record.room_id, vec![record.local_id]);
        self.emit_counts(&store);
        self.wake.notify_one();
        Ok(())
    }

    /// Drops a queued entry. A pending one may already have reached the server (its answer
    /// lost); it then shows up with the next sync.
    pub async fn discard(&self, local_id: &str) -> Result<()> {
        // Not while a flush may be sending it.
        let _one_flush = self.flush_lock.lock().await;
        let store = self.store()?;
        let Some((seq, record)) = store.outbox.find(local_id)? else {
            return Err(Error::NotFound(format!("no queued message {local_id}")));
        };
        store.remove_outbox(seq)?;
        store.flush().await?;
        self.changed(&record.room_id, vec![record.local_id]);
        self.emit_counts(&store);
        // Discarding a failed message unblocks the ones it held back.
        self.wake.notify_one();
        Ok(())
    }
}

/// Pending and failed counts of the outbox.
pub(crate) fn counts(store: &Store) -> Result<(u32, u32)> {
    let entries = store.outbox.entries()?;
    let failed = entries
        .iter()
        .filter(|(_, r)| r.state == MessageState::Failed)
        .count() as u32;
    Ok((entries.len() as u32 - failed, failed))
}

/// Pending entries not blocked by an earlier failed one of their room.
fn sendable_count(store: &Store) -> Result<usize> {
    let mut blocked = BTreeSet::new();
    let mut sendable = 0;
    for (_, r) in store.outbox.entries()? {
        if r.state == MessageState::Failed {
            blocked.insert(r.room_id);
        } else if !blocked.contains(&r.room_id) {
            sendable += 1;
        }
    }
    Ok(sendable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut backoff = Backoff::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut expected = BACKOFF_BASE;
        for _ in 0..12 {
            let now = Instant::now();
            let delay = backoff.on_failure(now, None, &mut rng);
            assert!(
                delay >= expected / 2 && delay <= expected,
                "{delay:?} outside [{:?}, {expected:?}]",
                expected / 2
            );
            assert_eq!(backoff.next_due(), Some(now + delay));
            expected = (expected * 2).min(BACKOFF_CAP);
        }
        assert_eq!(expected, BACKOFF_CAP);
        backoff.reset();
        assert_eq!(backoff.next_due(), None);
        assert_eq!(backoff.failures(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_wins_when_longer() {
        let mut backoff = Backoff::default();
        let mut rng = fastrand::Rng::with_seed(1);
        let delay = backoff.on_failure(Instant::now(), Some(Duration::from_secs(30)), &mut rng);
        assert_eq!(delay, Duration::from_secs(30));
        let delay = backoff.on_failure(Instant::now(), Some(Duration::from_millis(1)), &mut rng);
        assert!(delay >= Duration::from_secs(1));
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut rng = fastrand::Rng::with_seed(3);
        let now = Instant::now();
        let delays: BTreeSet<Duration> = (0..20)
            .map(|_| {
                let mut b = Backoff::default();
                b.on_failure(now, None, &mut rng)
            })
            .collect();
        assert!(delays.len() > 10);
    }
}
