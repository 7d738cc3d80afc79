//! Parked `/v1/sync` and `/v2/sync` long-polls and the change feed that answers them from memory.
//!
//! - **Waking**: each user with at least one parked request has one `tokio::sync::watch` channel; a
//!   commit bumps the channels of the members of the rooms it touched, so a message wakes exactly
//!   the requests that can return it. A parked request is a suspended future holding a receiver (no
//!   thread, no timer thread), which is why thousands fit. Shutdown is a separate watch flag that
//!   answers every parked request at once.
//! - **Answering** ([`Feed`], crate::feed): the store hands every commit's changes to the
//!   notifier in commit order ([`CommitSink`]), before it answers the writes in it. The feed keeps
//!   the latest of them (bounded in count and bytes) with their positions, so an incremental sync
//!   whose token is at or after the oldest kept position is answered from memory, exactly as the
//!   database would answer it at the feed's head, without a query. Before, each woken long-poll
//!   re-queried the one SQLite connection: 1,000 live pollers cut sends from ~3,000/s to 206/s,
//!   and 5,000 parked polls took p99 527 ms to answer after one send.
//! - **Typing** is not a commit: the typing registry (crate::typing) announces its changes
//!   here ([`Notifier::announce_to`]), paced like commits.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

pub use crate::feed::{Feed, Miss, Rendered, FEED_MAX_BYTES, FEED_MAX_ENTRIES};
use crate::store::{CommitSink, Committed, Head, LoadSink, ReadState, StreamBatch, SyncBatch};
use crate::sync_token::SyncPosition;

/// What pacing counts per woken request (see the module documentation).
pub const WAKE_COST: Duration = Duration::from_micros(100);
/// The longest pause between two wake rounds.
pub const MAX_WAKE_PAUSE: Duration = Duration::from_millis(100);

/// The registry of parked long-polls and the change feed, shared by the routes.
#[derive(Debug)]
pub struct Notifier {
    /// Users with news not yet announced, and when the next round may wake them. A std Mutex:
    /// held for a set insert or a round, never across `.await`.
    pacing: Mutex<Pacing>,
    /// Where a delayed round runs (the runtime the server was started on); `None`: no pacing.
    runtime: Option<tokio::runtime::Handle>,
    /// user id → change counter. A std Mutex: held only for a map lookup, never across `.await`.
    users: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// The latest committed changes. A std RwLock: every woken long-poll reads it at once, the
    /// store's writer appends one commit at a time; neither holds it across `.await`.
    feed: RwLock<Feed>,
    /// Becomes true once the server starts shutting down.
    shutdown: watch::Sender<bool>,
    /// Live subscriptions (parked or about to park), for tests, metrics and pacing.
    subscriptions: AtomicUsize,
    /// The most subscriptions at once since the last wake round (for pacing: while a round is
    /// being answered, many of its long-polls are between two requests and not counted above).
    peak: AtomicUsize,
    /// The long-polls parked on the deployment's other instances (PostgreSQL; see
    /// [`LoadSink`]): rounds are paced by the whole deployment's load.
    elsewhere: AtomicUsize,
}

/// What ended a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something changed for the user: look again.
    Changed,
    /// The server is shutting down: answer now.
    Shutdown,
}

/// See [`Notifier::pacing`].
#[derive(Debug, Default)]
struct Pacing {
    pending: HashSet<String>,
    /// No round before this.
    next_round: Option<Instant>,
    /// A delayed round is on its way.
    scheduled: bool,
}

impl Notifier {
    /// A registry with nobody waiting and an empty feed at `position`.
    pub fn new(head: Head) -> Arc<Self> {
        Self::with_feed(Feed::new(head))
    }

    /// A registry over this feed. Wake rounds are paced on the current runtime, if there is one.
    pub fn with_feed(feed: Feed) -> Arc<Self> {
        Arc::new(Notifier {
            pacing: Mutex::new(Pacing::default()),
            runtime: tokio::runtime::Handle::try_current().ok(),
            users: Mutex::new(HashMap::new()),
            feed: RwLock::new(feed),
            shutdown: watch::channel(false).0,
            subscriptions: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            elsewhere: AtomicUsize::new(0),
        })
    }

    /// Registers interest in `user_id`'s changes. Subscribe *before* looking for changes, so a
    /// change that lands between the look and the wait is not missed.
    pub fn subscribe(self: &Arc<Self>, user_id: &str) -> Subscription {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let rx = users
            .entry(user_id.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        let now = self.subscriptions.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Subscription {
            notifier: Arc::clone(self),
            user_id: user_id.to_owned(),
            changes: Some(rx),
            shutdown: self.shutdown.subscribe(),
        }
    }

    /// Wakes every parked request of these users now; how many requests that was.
    pub fn notify<'a>(&self, user_ids: impl IntoIterator<Item = &'a str>) -> usize {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut woken = 0;
        for user_id in user_ids {
            if let Some(tx) = users.get(user_id) {
                woken += tx.receiver_count();
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
        woken
    }

    /// Announces news for these users: at once in a quiet moment, else with the next paced round.
    fn announce(self: &Arc<Self>, user_ids: impl IntoIterator<Item = String>) {
        let mut pacing = self.pacing.lock().unwrap_or_else(|e| e.into_inner());
        pacing.pending.extend(user_ids);
        if pacing.scheduled || pacing.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        match (&self.runtime, pacing.next_round) {
            (Some(runtime), Some(next)) if now < next => {
                pacing.scheduled = true;
                let notifier = Arc::clone(self);
                runtime.spawn(async move {
                    tokio::time::sleep_until(next).await;
                    let mut pacing = notifier.pacing.lock().unwrap_or_else(|e| e.into_inner());
                    pacing.scheduled = false;
                    notifier.round(&mut pacing, Instant::now());
                });
            }
            _ => self.round(&mut pacing, now),
        }
    }

    /// Wakes everyone pending and sets when the next round may come.
    fn round(&self, pacing: &mut Pacing, now: Instant) {
        let pending = std::mem::take(&mut pacing.pending);
        let woken = self.notify(pending.iter().map(String::as_str));
        // The requests the next round may answer: the ones it woke and the ones that come back
        // for more (the most long-polls registered at once since the last round), and those the
        // other instances hold. Paced by its own third, each of three instances on shared CPUs
        // answered twice as many polls per second as one instance holding them all, which took
        // the CPU their senders needed (BENCHMARKS.md).
        let load = woken.max(self.peak.swap(self.subscriptions(), Ordering::Relaxed))
            + self.elsewhere.load(Ordering::Relaxed);
        let pause = WAKE_COST
            .saturating_mul(u32::try_from(load).unwrap_or(u32::MAX))
            .min(MAX_WAKE_PAUSE);
        pacing.next_round = Some(now + pause);
    }

    /// The sync answer for `user_id` from memory, when the feed covers `since` (see
    /// [`Feed::answer`]).
    pub fn answer(&self, user_id: &str, since: SyncPosition, limit: u32) -> Option<SyncBatch> {
        self.feed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .answer(user_id, since, limit)
    }

    /// The same answer rendered as the response body (see [`Feed::render`]).
    pub fn render(&self, user_id: &str, since: SyncPosition, limit: u32) -> Option<Rendered> {
        self.feed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .render(user_id, since, limit)
    }

    /// The v2 sync answer for `user_id` from memory (see [`Feed::answer_v2`]).
    pub fn answer_v2(
        &self,
        user_id: &str,
        since: u64,
        limit: u32,
        also: &[String],
    ) -> Result<StreamBatch, Miss> {
        self.feed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .answer_v2(user_id, since, limit, also)
    }

    /// The same answer rendered as the response body (see [`Feed::render_v2`]).
    pub fn render_v2(
        &self,
        user_id: &str,
        since: u64,
        limit: u32,
        also: &[String],
        next_batch: impl FnOnce(u64) -> String,
        typing: impl FnMut(&str) -> Vec<String>,
    ) -> Result<Rendered, Miss> {
        self.feed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .render_v2(user_id, since, limit, also, next_batch, typing)
    }

    /// Read states from the database at stream position `at`, for the feed (see
    /// [`Feed::fill_reads`]).
    pub fn fill_reads(&self, user_id: &str, at: u64, states: Vec<(String, ReadState)>) {
        self.feed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .fill_reads(user_id, at, states);
    }

    /// Announces news that is not a commit (typing) to these users, paced like commits.
    pub fn announce_to(self: &Arc<Self>, user_ids: impl IntoIterator<Item = String>) {
        self.announce(user_ids);
    }

    /// When the next wake round may come, if that is later than now: a long-poll that finds news
    /// before it waits for it (see [`crate::routes::sync`]).
    pub fn next_round(&self) -> Option<Instant> {
        let next = self
            .pacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_round?;
        (next > Instant::now()).then_some(next)
    }

    /// Answers every parked request now, and every later one at once.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// How many long-poll requests are registered (for tests and metrics).
    pub fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// How many users have at least one parked request (for tests and metrics).
    pub fn waiting_users(&self) -> usize {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The other instances' long-polls, for pacing.
impl LoadSink for Notifier {
    fn elsewhere(&self, parked: usize) {
        self.elsewhere.store(parked, Ordering::Relaxed);
    }
}

/// The notifier as the store's commit sink: an `Arc` so a delayed round can hold it.
impl CommitSink for Arc<Notifier> {
    fn committed(&self, commit: Committed) {
        // The users to wake: members of every room the commit touched, once each.
        let mut concerned: HashSet<String> = HashSet::new();
        let mut last: Option<*const [String]> = None;
        for change in &commit.changes {
            let members = change.members();
            // Consecutive changes of one room share their member list: skip it.
            if last.is_some_and(|l| std::ptr::eq(l, members)) {
                continue;
            }
            last = Some(members as *const [String]);
            concerned.extend(members.iter().cloned());
        }
        self.feed
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(commit);
        // Announced once the writes are answered (see `answered`); a request that looks before
        // that already finds the commit in the feed.
        self.pacing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending
            .extend(concerned);
    }

    fn answered(&self) {
        self.announce(std::iter::empty());
    }
}

/// One parked request's interest in a user's changes. Dropping it unregisters it.
#[derive(Debug)]
pub struct Subscription {
    notifier: Arc<Notifier>,
    user_id: String,
    /// Always `Some` until drop, which takes it out to count the remaining receivers.
    changes: Option<watch::Receiver<u64>>,
    shutdown: watch::Receiver<bool>,
}

impl Subscription {
    /// Waits until shutdown (only).
    pub async fn shutdown(&mut self) -> Wake {
        let _ = self.shutdown.wait_for(|down| *down).await;
        Wake::Shutdown
    }

    /// Waits until the user's data changed since the last call (or since subscribing), or until
    /// shutdown. Returns at once if either already happened.
    pub async fn wait(&mut self) -> Wake {
        let changes = self.changes.as_mut().expect("present until drop");
        if *self.shutdown.borrow() {
            return Wake::Shutdown;
        }
        tokio::select! {
            biased;
            _ = self.shutdown.wait_for(|down| *down) => Wake::Shutdown,
            changed = changes.changed() => match changed {
                Ok(()) => Wake::Changed,
                // The sender lives in the map while we hold a receiver; treat loss as shutdown.
                Err(_) => Wake::Shutdown,
            },
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut users = self
            .notifier
            .users
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        drop(self.changes.take());
        self.notifier.subscriptions.fetch_sub(1, Ordering::Relaxed);
        if users
            .get(&self.user_id)
            .is_some_and(|tx| tx.receiver_count() == 0)
        {
            users.remove(&self.user_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Change;

    /// A commit as the store reports it: its changes, then (its writes answered) the go-ahead.
    fn publish(n: &Arc<Notifier>, commit: Committed) {
        n.committed(commit);
        n.answered();
    }

    /// Commits message `id` in room r1, moving the head to it.
    fn publish_message(n: &Arc<Notifier>, id: u64) {
        publish(
            n,
            Committed {
                changes: vec![message(id, "r1")],
                head: head(id, 0),
            },
        );
    }

    fn notifier() -> Arc<Notifier> {
        Notifier::new(Head::default())
    }

    #[tokio::test]
    async fn wakes_only_the_notified_user() {
        let n = notifier();
        let mut alice = n.subscribe("alice");
        let mut bob = n.subscribe("bob");
        n.notify(["alice"]);
        assert_eq!(alice.wait().await, Wake::Changed);
        let bob_woke = tokio::time::timeout(std::time::Duration::from_millis(20), bob.wait()).await;
        assert!(bob_woke.is_err(), "bob was not notified");
    }

    #[tokio::test]
    async fn a_change_before_waiting_is_not_lost() {
        let n = notifier();
        let mut s = n.subscribe("alice");
        n.notify(["alice"]);
        assert_eq!(s.wait().await, Wake::Changed);
    }

    #[tokio::test]
    async fn shutdown_answers_everyone() {
        let n = notifier();
        let mut a = n.subscribe("alice");
        let mut b = n.subscribe("alice");
        n.begin_shutdown();
        assert_eq!(a.wait().await, Wake::Shutdown);
        assert_eq!(b.wait().await, Wake::Shutdown);
    }

    #[test]
    fn dropping_the_last_subscription_unregisters_the_user() {
        let n = notifier();
        let a = n.subscribe("alice");
        let b = n.subscribe("alice");
        assert_eq!((n.waiting_users(), n.subscriptions()), (1, 2));
        drop(a);
        assert_eq!(n.waiting_users(), 1);
        drop(b);
        assert_eq!((n.waiting_users(), n.subscriptions()), (0, 0));
    }

    fn message(id: u64, room: &str) -> Change {
        Change::Message {
            pos: id,
            message: Arc::new(crate::store::MessageState {
                id,
                room_id: room.into(),
                user_id: "alice".into(),
                parts: vec![chatsync_protocol::Part::text(format!("m{id}"))],
                created_at: "t".into(),
                updated_at: "t".into(),
                edited_at: None,
                deleted: false,
                reactions: Vec::new(),
                txn_id: format!("t{id}"),
            }),
            members: vec!["alice".to_owned(), "bob".to_owned()].into(),
        }
    }

    fn at(message_id: u64, membership_seq: u64) -> SyncPosition {
        SyncPosition {
            message_id,
            membership_seq,
        }
    }

    /// The head after message `message_id` when only messages took positions.
    fn head(message_id: u64, membership_seq: u64) -> Head {
        Head {
            v1: at(message_id, membership_seq),
            pos: message_id,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_is_in_the_feed_before_its_writes_are_answered_and_wakes_after() {
        let n = Notifier::new(head(10, 2));
        let mut bob = n.subscribe("bob");
        n.committed(Committed {
            changes: vec![message(11, "r1")],
            head: head(11, 2),
        });
        // Reported, its writes not answered yet: a request that looks finds it...
        let batch = n.answer("bob", at(10, 2), 50).unwrap();
        assert_eq!(batch.position, at(11, 2));
        assert_eq!(batch.rooms["r1"].messages[0].id, 11);
        assert!(n.answer("carol", at(10, 2), 50).unwrap().rooms.is_empty());
        // ...but nobody is woken before the writers have their answers.
        assert!(tokio::time::timeout(Duration::from_secs(1), bob.wait())
            .await
            .is_err());
        n.answered();
        assert_eq!(bob.wait().await, Wake::Changed);
    }

    #[test]
    fn the_feed_forgets_its_oldest_changes_and_then_sends_those_syncs_to_the_database() {
        let mut feed = Feed::with_bounds(head(0, 0), 3, usize::MAX);
        for id in 1..=5 {
            feed.push(Committed {
                changes: vec![message(id, "r1")],
                head: head(id, 0),
            });
        }
        assert_eq!(feed.head(), head(5, 0));
        assert!(
            feed.answer("alice", at(1, 0), 50).is_none(),
            "2 is forgotten"
        );
        let batch = feed.answer("alice", at(2, 0), 50).unwrap();
        let ids: Vec<u64> = batch.rooms["r1"].messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        // Ahead of the head: the database decides (it may be a commit not yet in the feed).
        assert!(feed.answer("alice", at(6, 0), 50).is_none());
        // Nothing new: an empty answer at the head.
        assert!(feed.answer("alice", at(5, 0), 50).unwrap().rooms.is_empty());
        let limited = feed.answer("alice", at(2, 0), 2).unwrap();
        assert!(limited.rooms["r1"].limited);
        assert_eq!(limited.rooms["r1"].messages.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_commit_wakes_at_once_and_busy_ones_are_paced_by_what_they_woke() {
        let n = Notifier::new(head(0, 0));
        let mut parked: Vec<Subscription> = (0..1000).map(|_| n.subscribe("bob")).collect();
        let start = Instant::now();
        publish_message(&n, 1);
        for s in &mut parked {
            assert_eq!(s.wait().await, Wake::Changed);
        }
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a quiet commit wakes at once"
        );
        // Two more commits right after a round that woke 1,000: announced together, 100 ms on.
        for id in [2, 3] {
            publish_message(&n, id);
        }
        let first = &mut parked[0];
        assert!(
            tokio::time::timeout(Duration::from_millis(99), first.wait())
                .await
                .is_err(),
            "not before the pause"
        );
        assert_eq!(first.wait().await, Wake::Changed);
        assert_eq!(start.elapsed(), MAX_WAKE_PAUSE.min(WAKE_COST * 1000));
        let batch = n.answer("bob", at(1, 0), 50).unwrap();
        let ids: Vec<u64> = batch.rooms["r1"].messages.iter().map(|m| m.id).collect();
        assert_eq!(ids, vec![2, 3], "one answer for both");
        // Once the crowd is gone, a round that woke a few paces the next by little (the first
        // round after still counts the crowd, which was registered until then).
        drop(parked);
        let mut one = n.subscribe("bob");
        tokio::time::sleep(MAX_WAKE_PAUSE).await;
        for id in [4, 5] {
            publish_message(&n, id);
            assert_eq!(one.wait().await, Wake::Changed);
        }
        let quiet = Instant::now();
        publish_message(&n, 6);
        assert_eq!(one.wait().await, Wake::Changed);
        // (tokio's timers have millisecond resolution)
        assert!(quiet.elapsed() > Duration::ZERO && quiet.elapsed() <= Duration::from_millis(1));
    }

    /// Three instances on shared CPUs, each pacing by its own third of the long-polls, answered
    /// twice as many polls as one instance holding them all: the others' long-polls count too.
    #[tokio::test(start_paused = true)]
    async fn rounds_are_paced_by_the_long_polls_of_the_other_instances_too() {
        let n = Notifier::new(head(0, 0));
        LoadSink::elsewhere(&*n, 599);
        let mut one = n.subscribe("bob");
        let start = Instant::now();
        publish_message(&n, 1);
        assert_eq!(one.wait().await, Wake::Changed);
        assert_eq!(
            start.elapsed(),
            Duration::ZERO,
            "a quiet commit wakes at once"
        );
        publish_message(&n, 2);
        assert_eq!(one.wait().await, Wake::Changed);
        // One long-poll here, 599 elsewhere: the pause is the deployment's, not this instance's
        // (0.1 ms without the others).
        assert_eq!(start.elapsed(), WAKE_COST * 600);
    }
}
