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
use crate::store::messages::StoredMessage;
use crate::store::outbox::{Op, OutboxRecord, Target};
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
    /// The device's user: only their own messages can be edited or deleted.
    user_id: String,
}

impl SendQueue {
    pub fn new(
        user_id: String,
        store: SharedStore,
        api: Arc<Api>,
        events: EventHub,
        changes: Changes,
    ) -> Self {
        SendQueue {
            user_id,
            store,
            api,
            events,
            changes,
            backoff: Mutex::new(Backoff::default()),
            flush_lock: tokio::sync::Mutex::new(()),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Whether the server may already have acted on `record` under its txn id. Then rewriting
    /// it in place would be lost (a retry with the same txn id gets the first answer back) and
    /// cancelling it would not undo it; a new entry must follow it instead. Read under the
    /// flush lock, so no request of this process is in flight; a request of an earlier process
    /// that was killed mid-request left the mark ([`SendQueue::before_request`]).
    fn maybe_sent(&self, record: &OutboxRecord) -> bool {
        record.maybe_sent
    }

    /// Queues `record` durably (flushed by the caller).
    fn enqueue(&self, store: &Store, record: &OutboxRecord) -> Result<()> {
        store.enqueue(record)?;
        Ok(())
    }

    /// Marks entry `seq` as possibly reaching the server, durably, before its request goes out
    /// (a kill during the request must leave the mark). Once per entry.
    async fn before_request(&self, store: &Store, seq: u64, record: &OutboxRecord) -> Result<()> {
        if !record.maybe_sent {
            store.update_outbox(seq, |r| r.maybe_sent = true)?;
            store.flush().await?;
        }
        Ok(())
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
            op: Op::Send,
            maybe_sent: false,
        };
        self.enqueue(&store, &record)?;
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

    /// Makes a queued change durable and tells everyone; on a failed flush the journal forgets
    /// it (the app is told the change failed).
    async fn committed(&self, store: &Store, room_id: &str, ids: Vec<String>) -> Result<()> {
        store.flush().await?;
        self.changed(room_id, ids);
        self.emit_counts(store);
        self.wake.notify_one();
        Ok(())
    }

    /// A change's entry in the queue.
    fn change_record(room_id: &str, after_id: Option<u64>, parts: Vec<Part>, op: Op) -> OutboxRecord {
        OutboxRecord {
            local_id: uuid::Uuid::new_v4().to_string(),
            room_id: room_id.to_owned(),
            parts,
            created_at: now_rfc3339(),
            state: MessageState::Pending,
            attempts: 0,
            failure_reason: None,
            after_id,
            op,
            maybe_sent: false,
        }
    }

    /// What the app's message id `id` in `room_id` names: a send still queued (its local id),
    /// or a held message (by server id, or by the local id it was sent with).
    fn resolve(&self, store: &Store, room_id: &str, id: &str) -> Result<Resolved> {
        for (seq, r) in store.outbox.entries()? {
            if r.op.is_send() && r.local_id == id && r.room_id == room_id {
                return Ok(Resolved::Queued { seq, record: r });
            }
        }
        let server_id = match id.parse::<u64>() {
            Ok(n) if store.messages.get(room_id, n)?.is_some() => Some(n),
            _ => store.server_id_of(room_id, id)?,
        };
        let Some(server_id) = server_id else {
            return Err(Error::NotFound(format!("no message {id} in room {room_id}")));
        };
        let held = store
            .messages
            .get(room_id, server_id)?
            .ok_or_else(|| Error::NotFound(format!("no message {id} in room {room_id}")))?;
        Ok(Resolved::Held(held))
    }

    /// Checks that the user may change `held` (their own message, not deleted).
    fn check_own(&self, held: &StoredMessage, what: &str) -> Result<()> {
        if held.message.user_id != self.user_id {
            return Err(Error::InvalidInput(format!(
                "only the sender can {what} a message"
            )));
        }
        if held.deleted {
            return Err(Error::InvalidInput(format!("cannot {what} a deleted message")));
        }
        Ok(())
    }

    /// Queued changes of `room_id` about `target` (by server id or the local id of its send).
    fn queued_changes(
        store: &Store,
        room_id: &str,
        target: &Target,
    ) -> Result<Vec<(u64, OutboxRecord)>> {
        Ok(store
            .outbox
            .entries()?
            .into_iter()
            .filter(|(_, r)| r.room_id == room_id)
            .filter(|(_, r)| match &r.op {
                Op::Edit { target: t } | Op::Delete { target: t } | Op::React { target: t, .. } => {
                    t.same_message(target)
                }
                _ => false,
            })
            .collect())
    }

    /// New content for a message of this user. A send still queued is rewritten in place (it
    /// goes out once, with the new text); an edit already queued for the message is rewritten.
    /// Neither is rewritten when the server may have acted on it already
    /// ([`SendQueue::maybe_sent`]): a new edit follows it instead.
    pub async fn edit(&self, room_id: &str, id: &str, text: &str) -> Result<()> {
        check_room_id(room_id)?;
        if text.trim().is_empty() {
            return Err(Error::InvalidInput("message text is empty".into()));
        }
        let parts = vec![Part::text(text)];
        chatsync_protocol::limits::check_parts(&parts)?;
        // Not while a flush may be sending the message with its old text.
        let _one_flush = self.flush_lock.lock().await;
        let store = self.store()?;
        let target = match self.resolve(&store, room_id, id)? {
            Resolved::Queued { seq, record } if !self.maybe_sent(&record) => {
                store.update_outbox(seq, |r| r.parts = parts.clone())?;
                return self.committed(&store, room_id, vec![id.to_owned()]).await;
            }
            Resolved::Queued { record, .. } => Target {
                server_id: None,
                local_id: Some(record.local_id),
            },
            Resolved::Held(held) => {
                self.check_own(&held, "edit")?;
                target_of(&held)
            }
        };
        let edits: Vec<(u64, OutboxRecord)> = Self::queued_changes(&store, room_id, &target)?
            .into_iter()
            .filter(|(_, r)| matches!(r.op, Op::Edit { .. }))
            .collect();
        // Failed edits of the message are superseded by this one: a retry must not bring their
        // older text back over it (the crash torture found a retried failed edit landing after
        // the newer one).
        for (seq, r) in &edits {
            if r.state == MessageState::Failed {
                store.remove_outbox(*seq)?;
            }
        }
        // The newest edit queued for the message, when it can still be rewritten.
        let rewritable = edits
            .into_iter()
            .filter(|(_, r)| r.state == MessageState::Pending)
            .last()
            .filter(|(_, r)| !self.maybe_sent(r));
        match rewritable {
            Some((seq, _)) => {
                store.update_outbox(seq, |r| r.parts = parts.clone())?;
            }
            None => self.enqueue(
                &store,
                &Self::change_record(room_id, None, parts, Op::Edit { target }),
            )?,
        }
        self.committed(&store, room_id, vec![id.to_owned()]).await
    }

    /// Deletes a message of this user. A send still queued is dropped (never sent), with the
    /// changes queued about it; otherwise a deletion is queued behind the edits and reactions
    /// queued about the message. They are kept, not dropped, though the deletion wipes what they
    /// do: the app may still discard the deletion (the crash torture found a reaction lost that
    /// way), and one the server may have acted on already ([`SendQueue::maybe_sent`]) could not
    /// be taken back anyway.
    pub async fn delete(&self, room_id: &str, id: &str) -> Result<()> {
        check_room_id(room_id)?;
        let _one_flush = self.flush_lock.lock().await;
        let store = self.store()?;
        let target = match self.resolve(&store, room_id, id)? {
            Resolved::Queued { seq, record } => {
                let target = Target {
                    server_id: None,
                    local_id: Some(record.local_id.clone()),
                };
                if !self.maybe_sent(&record) {
                    for (s, _) in Self::queued_changes(&store, room_id, &target)? {
                        store.remove_outbox(s)?;
                    }
                    store.remove_outbox(seq)?;
                    return self.committed(&store, room_id, vec![id.to_owned()]).await;
                }
                target
            }
            Resolved::Held(held) => {
                self.check_own(&held, "delete")?;
                target_of(&held)
            }
        };
        self.enqueue(
            &store,
            &Self::change_record(room_id, None, Vec::new(), Op::Delete { target }),
        )?;
        self.committed(&store, room_id, vec![id.to_owned()]).await
    }

    /// Toggles the user's reaction `key` on a message: added when they have not reacted with
    /// it, removed when they have. Toggling back a change still queued cancels it (nothing is
    /// sent). Returns whether the user now reacts with `key`.
    pub async fn toggle_reaction(&self, room_id: &str, id: &str, key: &str) -> Result<bool> {
        check_room_id(room_id)?;
        chatsync_protocol::v2::check_reaction_key(key)?;
        let _one_flush = self.flush_lock.lock().await;
        let store = self.store()?;
        let (target, stored_me) = match self.resolve(&store, room_id, id)? {
            Resolved::Queued { record, .. } => (
                Target {
                    server_id: None,
                    local_id: Some(record.local_id),
                },
                false,
            ),
            Resolved::Held(held) => {
                if held.deleted {
                    return Err(Error::InvalidInput(
                        "cannot react to a deleted message".into(),
                    ));
                }
                let me = held.reactions.iter().any(|r| r.key == key && r.me);
                (target_of(&held), me)
            }
        };
        // The newest change of this key queued for the message: what the user sees now.
        let pending = Self::queued_changes(&store, room_id, &target)?
            .into_iter()
            .filter(|(_, r)| matches!(&r.op, Op::React { key: k, .. } if k == key))
            .last();
        let shown_on = match &pending {
            Some((_, record)) => matches!(record.op, Op::React { on: true, .. }),
            None => stored_me,
        };
        match pending {
            // A toggle back of a change never sent: cancelled, nothing goes out.
            Some((seq, record)) if !self.maybe_sent(&record) => {
                store.remove_outbox(seq)?;
            }
            // The server may have it already: the opposite change follows it.
            _ => self.enqueue(
                &store,
                &Self::change_record(
                    room_id,
                    None,
                    Vec::new(),
                    Op::React {
                        target,
                        key: key.to_owned(),
                        on: !shown_on,
                    },
                ),
            )?,
        }
        let now_on = !shown_on;
        self.committed(&store, room_id, vec![id.to_owned()]).await?;
        Ok(now_on)
    }

    /// Marks the room read up to its newest held message: a receipt is queued (or the one
    /// already queued moves forward). Nothing when the user's receipt is there already.
    pub async fn mark_read(&self, room_id: &str) -> Result<()> {
        check_room_id(room_id)?;
        // Not while a flush may be sending the receipt queued before.
        let _one_flush = self.flush_lock.lock().await;
        let store = self.store()?;
        let Some(room) = store.room(room_id)? else {
            return Ok(());
        };
        let Some(newest) = room.newest_held else {
            return Ok(());
        };
        if room.receipts.get(&self.user_id).is_some_and(|r| *r >= newest) && room.unread == 0 {
            return Ok(());
        }
        let queued_upto = store
            .outbox
            .entries()?
            .into_iter()
            .filter_map(|(_, r)| match r.op {
                Op::Receipt { message_id }
                    if r.room_id == room_id && r.state == MessageState::Pending =>
                {
                    Some(message_id)
                }
                _ => None,
            })
            .max();
        if queued_upto.is_some_and(|upto| upto >= newest) {
            // Queued already, but perhaps not durable yet (the call that queued it may have
            // failed its flush on a full disk): durable before the app is told it is read (the
            // crash torture found a receipt acknowledged this way and lost to the next kill).
            store.flush().await?;
            return Ok(());
        }
        // The newest receipt queued for the room, when the server cannot have seen it yet (one
        // it may have seen keeps its txn id's answer; a new receipt follows it instead).
        let queued = store
            .outbox
            .entries()?
            .into_iter()
            .filter(|(_, r)| r.room_id == room_id && matches!(r.op, Op::Receipt { .. }))
            .last()
            .filter(|(_, r)| !self.maybe_sent(r) && r.state == MessageState::Pending);
        match queued {
            Some((seq, _)) => {
                store.update_outbox(seq, |r| {
                    if let Op::Receipt { message_id } = &mut r.op {
                        *message_id = (*message_id).max(newest);
                    }
                })?;
            }
            None => {
                self.enqueue(
                    &store,
                    &Self::change_record(room_id, None, Vec::new(), Op::Receipt { message_id: newest }),
                )?;
            }
        }
        self.committed(&store, room_id, Vec::new()).await
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
        // A receipt queued or confirmed moves the badge.
        match store.unread_total() {
            Ok(total) => self.events.emit(ClientEvent::UnreadChanged { total }),
            Err(e) => tracing::warn!("cannot count unread messages: {e}"),
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
                // A failed send holds its room back; a failed change does not.
                if record.op.is_send() {
                    blocked.insert(record.room_id.clone());
                }
                continue;
            }
            if !record.op.is_send() {
                match self.send_change(&store, seq, &record).await {
                    Ok(Sent::Done) => {
                        report.sent += 1;
                        pending = pending.saturating_sub(1);
                        self.events
                            .emit(ClientEvent::OutboxChanged { pending, failed });
                        continue;
                    }
                    // Its message is still queued (a later flush) or was discarded (dropped).
                    Ok(Sent::Waiting) => {
                        blocked.insert(record.room_id.clone());
                        continue;
                    }
                    Err(e) => match self.after_failure(&store, seq, &record, e).await? {
                        Some(stop) => {
                            report.stopped_by = Some(stop);
                            break;
                        }
                        None => {
                            pending = pending.saturating_sub(1);
                            failed += 1;
                            continue;
                        }
                    },
                }
            }
            self.before_request(&store, seq, &record).await?;
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
                    // Only the mark this attempt set may be cleared: an earlier attempt may have
                    // reached the server.
                    let unsent = !record.maybe_sent && e.never_left();
                    store.update_outbox(seq, |r| {
                        r.attempts = r.attempts.saturating_add(1);
                        r.maybe_sent &= !unsent;
                    })?;
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
                    // Refused: the server did not act on it (a failed send edited before a
                    // retry is rewritten in place again).
                    let refused = !record.maybe_sent
                        && matches!(e, ApiError::Rejected { .. } | ApiError::NotFound(_));
                    store.update_outbox(seq, |r| {
                        r.state = MessageState::Failed;
                        r.attempts = r.attempts.saturating_add(1);
                        r.failure_reason = Some(reason.clone());
                        r.maybe_sent &= !refused;
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

    /// Sends one queued change (not a send) and records the answer.
    async fn send_change(&self, store: &Store, seq: u64, record: &OutboxRecord) -> Result<Sent> {
        let room = &record.room_id;
        let resolve = |t: &Target| -> Result<Option<u64>> {
            match (t.server_id, &t.local_id) {
                (Some(id), _) => Ok(Some(id)),
                (None, Some(local)) => Ok(store.server_id_of(room, local)?),
                (None, None) => Ok(None),
            }
        };
        let target = match &record.op {
            Op::Edit { target } | Op::Delete { target } | Op::React { target, .. } => {
                match resolve(target)? {
                    Some(id) => Some(id),
                    None => {
                        let still_queued = store.outbox.entries()?.into_iter().any(|(_, r)| {
                            r.op.is_send() && Some(&r.local_id) == target.local_id.as_ref()
                        });
                        if still_queued {
                            return Ok(Sent::Waiting);
                        }
                        // Its send was discarded: the change is about nothing.
                        store.remove_outbox(seq)?;
                        store.flush().await?;
                        return Ok(Sent::Done);
                    }
                }
            }
            _ => None,
        };
        let txn = &record.local_id;
        // The answer states the message as of the write. A sync that completed meanwhile may
        // have stored a newer state (someone's reaction, a deletion on another device): then
        // the answer is not written over it (that sync, or the next, has this change too).
        let token_before = store.meta.sync_token()?;
        self.before_request(store, seq, record).await?;
        let message = match &record.op {
            Op::Send => unreachable!("sends are flushed by the caller"),
            Op::Edit { .. } => Some(
                self.api
                    .edit_message(room, target.unwrap_or(0), txn, &record.parts)
                    .await?,
            ),
            Op::Delete { .. } => Some(
                self.api
                    .delete_message(room, target.unwrap_or(0), txn)
                    .await?,
            ),
            Op::React { key, on, .. } => Some(
                self.api
                    .react(room, target.unwrap_or(0), txn, key, *on)
                    .await?,
            ),
            Op::Receipt { message_id } => {
                let answer = self.api.receipt(room, txn, *message_id).await?;
                // The count as of the receipt: stale when a sync moved the token meanwhile
                // (a newer message may be counted there already); the receipt itself only
                // moves forward.
                let fresh = store.meta.sync_token()? == token_before;
                store.apply_own_receipt(
                    room,
                    &self.user_id,
                    answer.message_id,
                    fresh.then_some(answer.unread),
                )?;
                None
            }
        };
        let message = message.filter(|_| {
            store
                .meta
                .sync_token()
                .is_ok_and(|now| now == token_before)
        });
        store.complete_change(seq, txn, message.as_ref())?;
        store.flush().await?;
        self.backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .reset();
        let ids = message
            .iter()
            .map(|m| m.id.to_string())
            .chain(std::iter::once(txn.clone()))
            .collect();
        self.changed(room, ids);
        Ok(Sent::Done)
    }

    /// Records a failed attempt of a change. A transient failure arms the backoff and stops the
    /// flush (returned); a permanent one marks the entry failed (`None`).
    async fn after_failure(
        &self,
        store: &Store,
        seq: u64,
        record: &OutboxRecord,
        error: Error,
    ) -> Result<Option<Error>> {
        let transient = matches!(&error, Error::Api(e) if e.is_transient() || matches!(e, ApiError::Protocol(_)));
        if transient {
            // Only the mark this attempt set may be cleared (see the sends' flush).
            let unsent = !record.maybe_sent && matches!(&error, Error::Api(e) if e.never_left());
            store.update_outbox(seq, |r| {
                r.attempts = r.attempts.saturating_add(1);
                r.maybe_sent &= !unsent;
            })?;
            store.flush().await?;
            let retry_after = match &error {
                Error::Api(e) => e.retry_after(),
                _ => None,
            };
            let mut rng = fastrand::Rng::new();
            self.backoff
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .on_failure(Instant::now(), retry_after, &mut rng);
            return Ok(Some(error));
        }
        if matches!(
            &error,
            Error::Api(ApiError::Unauthorized(_) | ApiError::ShutDown | ApiError::Token(_))
                | Error::ShutDown
        ) {
            return Err(error);
        }
        // 409 `conflict` to an edit or a reaction: the message was deleted (by its sender, on
        // another device, before this change reached the server). The change is moot, not
        // failed: kept as failed it would stay in the outbox and show on a tombstone forever, on
        // this device only. The tombstone itself arrives with the next sync.
        // (Adding a reaction is also a 409 when the user has too many keys on the message: that
        // one fails and says why; if the message was deleted instead, its tombstone arriving by
        // sync drops it.)
        let moot = matches!(&record.op, Op::Edit { .. } | Op::React { on: false, .. })
            && matches!(&error, Error::Api(ApiError::Rejected { status: 409, code, .. }) if code == chatsync_protocol::error_code::CONFLICT);
        if moot {
            store.complete_change(seq, &record.local_id, None)?;
            store.flush().await?;
            self.changed(&record.room_id, vec![record.local_id.clone()]);
            return Ok(None);
        }
        let reason = match &error {
            Error::Api(ApiError::Rejected { reason, .. } | ApiError::NotFound(reason)) => {
                reason.clone()
            }
            other => other.to_string(),
        };
        let refused = !record.maybe_sent
            && matches!(
                &error,
                Error::Api(ApiError::Rejected { .. } | ApiError::NotFound(_))
            );
        store.update_outbox(seq, |r| {
            r.state = MessageState::Failed;
            r.attempts = r.attempts.saturating_add(1);
            r.failure_reason = Some(reason.clone());
            r.maybe_sent &= !refused;
        })?;
        store.flush().await?;
        self.changed(&record.room_id, vec![record.local_id.clone()]);
        Ok(None)
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
            if r.op.is_send() {
                blocked.insert(r.room_id);
            }
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

/// What an app's message id names.
enum Resolved {
    /// A send still queued.
    Queued { seq: u64, record: OutboxRecord },
    /// A message held in the store.
    Held(StoredMessage),
}

/// How a queued change went.
enum Sent {
    /// Accepted (or moot): out of the queue.
    Done,
    /// Its message is still queued: later.
    Waiting,
}

/// The target naming a held message (its server id; its local id too when this device sent it).
fn target_of(held: &StoredMessage) -> Target {
    Target {
        server_id: Some(held.message.id),
        local_id: held.local_id.clone(),
    }
}
