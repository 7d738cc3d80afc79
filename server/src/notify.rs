//! Parked `/v1/sync` long-polls and the change feed that answers them from memory.
//!
//! - **Waking**: each user with at least one parked request has one `tokio::sync::watch` channel; a
//!   commit bumps the channels of the members of the rooms it touched, so a message wakes exactly
//!   the requests that can return it. A parked request is a suspended future holding a receiver (no
//!   thread, no timer thread), which is why thousands fit. Shutdown is a separate watch flag that
//!   answers every parked request at once.
//! - **Answering** ([`Feed`]): the store hands every commit's changes to the notifier in commit
//!   order ([`CommitSink`]), before it answers the writes in it. The feed keeps the latest of them
//!   (bounded in count and bytes) with their positions, so an incremental sync whose token is at
//!   or after the oldest kept position is answered from memory, exactly as the database would
//!   answer it at the feed's head, without a query. Before, each woken long-poll re-queried the
//!   one SQLite connection: 1,000 live pollers cut sends from ~3,000/s to 206/s, and 5,000 parked
//!   polls took p99 527 ms to answer after one send.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chatsync_protocol::{Message, RoomSync};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::store::{Change, CommitSink, Committed, SyncBatch};
use crate::sync_token::SyncPosition;

/// Most changes the feed keeps, and about how many bytes of message parts. Beyond either, the
/// oldest go and a sync from before them is answered by the database. 100,000 entries is a few
/// seconds of the most the server commits; a long-poll parked for its 30 s is usually still
/// covered, a client back from a day offline never is (it needs the database anyway).
pub const FEED_MAX_ENTRIES: usize = 100_000;
/// See [`FEED_MAX_ENTRIES`].
pub const FEED_MAX_BYTES: usize = 64 * 1024 * 1024;

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

/// One kept change, the position it brought the stream to, and for a message its JSON, rendered
/// once for every answer that carries it.
#[derive(Debug)]
struct Entry {
    position: SyncPosition,
    change: Change,
    json: Option<Box<str>>,
}

/// The latest committed changes: every change with a position after `start`, up to `head`.
#[derive(Debug)]
pub struct Feed {
    start: SyncPosition,
    head: SyncPosition,
    entries: VecDeque<Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

/// The messages of one room a sync answer carries, as feed entries.
struct Selected<'f> {
    room_id: &'f str,
    messages: Vec<&'f Entry>,
    limited: bool,
}

impl Feed {
    /// An empty feed at `position` (the store's position when it opened).
    pub fn new(position: SyncPosition) -> Feed {
        Feed::with_bounds(position, FEED_MAX_ENTRIES, FEED_MAX_BYTES)
    }

    /// An empty feed that keeps at most `max_entries` changes and about `max_bytes` of messages.
    pub fn with_bounds(position: SyncPosition, max_entries: usize, max_bytes: usize) -> Feed {
        Feed {
            start: position,
            head: position,
            entries: VecDeque::new(),
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The position after the newest change.
    pub fn head(&self) -> SyncPosition {
        self.head
    }

    /// Appends one commit's changes (their positions only grow).
    pub fn push(&mut self, commit: Committed) {
        for change in commit.changes {
            let (position, json) = match &change {
                Change::Message { message, .. } => (
                    SyncPosition {
                        message_id: message.id,
                        membership_seq: self.head.membership_seq,
                    },
                    Some(
                        serde_json::to_string(&**message)
                            .expect("a message serializes")
                            .into_boxed_str(),
                    ),
                ),
                Change::Room { seqs, .. } => (
                    SyncPosition {
                        message_id: self.head.message_id,
                        membership_seq: seqs
                            .iter()
                            .copied()
                            .max()
                            .unwrap_or(self.head.membership_seq),
                    },
                    None,
                ),
            };
            debug_assert!(position >= self.head, "changes arrive in commit order");
            let entry = Entry {
                position,
                change,
                json,
            };
            self.bytes += weight(&entry);
            self.head = position;
            self.entries.push_back(entry);
        }
        self.head = self.head.max(commit.position);
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= weight(&old);
            self.start = old.position;
        }
    }

    /// What `/v1/sync` answers `user_id` for `since` with this `limit`, at the feed's head, as the
    /// database would; `None` when the feed does not hold everything after `since` (too old, or
    /// ahead of the head: the database decides then).
    pub fn answer(&self, user_id: &str, since: SyncPosition, limit: u32) -> Option<SyncBatch> {
        let rooms = self
            .select(user_id, since, limit)?
            .into_iter()
            .map(|room| {
                let messages = room
                    .messages
                    .iter()
                    .filter_map(|e| match &e.change {
                        Change::Message { message, .. } => Some(Message::clone(message)),
                        Change::Room { .. } => None,
                    })
                    .collect();
                (
                    room.room_id.to_owned(),
                    RoomSync {
                        messages,
                        limited: room.limited,
                    },
                )
            })
            .collect();
        Some(SyncBatch {
            position: self.head,
            rooms,
        })
    }

    /// The same answer as [`Feed::answer`] as the JSON body of the sync response, byte for byte
    /// what serializing that answer gives, put together from the messages' JSON rendered once at
    /// commit: a message that 1,000 long-polls carry is serialized once, not 1,000 times.
    pub fn render(&self, user_id: &str, since: SyncPosition, limit: u32) -> Option<Rendered> {
        let rooms = self.select(user_id, since, limit)?;
        let size: usize = rooms
            .iter()
            .map(|r| {
                64 + r.room_id.len()
                    + r.messages
                        .iter()
                        .map(|e| e.json.as_ref().map_or(0, |j| j.len() + 1))
                        .sum::<usize>()
            })
            .sum();
        let mut body = String::with_capacity(64 + size);
        body.push_str("{\"next_batch\":\"");
        body.push_str(&self.head.to_string());
        body.push_str("\",\"rooms\":{");
        for (i, room) in rooms.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&serde_json::to_string(room.room_id).expect("a string serializes"));
            body.push_str(":{\"messages\":[");
            for (j, entry) in room.messages.iter().enumerate() {
                if j > 0 {
                    body.push(',');
                }
                body.push_str(entry.json.as_deref().unwrap_or("null"));
            }
            body.push_str("],\"limited\":");
            body.push_str(if room.limited { "true" } else { "false" });
            body.push('}');
        }
        body.push_str("}}");
        Some(Rendered {
            body: body.into(),
            empty: rooms.is_empty(),
        })
    }

    /// The rooms and messages an answer carries: the feed's share of the sync query.
    fn select(&self, user_id: &str, since: SyncPosition, limit: u32) -> Option<Vec<Selected<'_>>> {
        let covered = since.message_id >= self.start.message_id
            && since.membership_seq >= self.start.membership_seq
            && since.message_id <= self.head.message_id
            && since.membership_seq <= self.head.membership_seq;
        if !covered {
            return None;
        }
        // Positions only grow, so the changes after `since` are a suffix.
        let first = self.entries.partition_point(|e| {
            e.position.message_id <= since.message_id
                && e.position.membership_seq <= since.membership_seq
        });
        // Rooms the user joined after `since`: reported whole, like in an initial sync.
        let mut joined: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        let mut changed: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
        // Messages of one room share one member list: look the user up once per list.
        let mut last_members: Option<(&Arc<[String]>, bool)> = None;
        for entry in self.entries.range(first..) {
            match &entry.change {
                Change::Room { room, seqs } => {
                    if let Ok(i) = room
                        .member_ids
                        .binary_search_by(|m| m.as_str().cmp(user_id))
                    {
                        if seqs[i] > since.membership_seq {
                            joined.insert(&room.id, Vec::new());
                        }
                    }
                }
                Change::Message { message, members } => {
                    let member = match last_members {
                        Some((m, member)) if Arc::ptr_eq(m, members) => member,
                        _ => {
                            let member = members
                                .binary_search_by(|m| m.as_str().cmp(user_id))
                                .is_ok();
                            last_members = Some((members, member));
                            member
                        }
                    };
                    if !member {
                        continue;
                    }
                    if let Some(list) = joined.get_mut(message.room_id.as_str()) {
                        // A joined room's messages all come after its creation, which is here.
                        list.push(entry);
                    } else if message.id > since.message_id {
                        changed.entry(&message.room_id).or_default().push(entry);
                    }
                }
            }
        }
        let keep = limit as usize;
        changed.extend(joined);
        Some(
            changed
                .into_iter()
                .map(|(room_id, mut messages)| {
                    let limited = messages.len() > keep;
                    if limited {
                        messages.drain(..messages.len() - keep);
                    }
                    Selected {
                        room_id,
                        messages,
                        limited,
                    }
                })
                .collect(),
        )
    }
}

/// A sync answer rendered from the feed.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The JSON body.
    pub body: bytes::Bytes,
    /// No room in it: nothing new.
    pub empty: bool,
}

/// What an entry counts against [`FEED_MAX_BYTES`]: its JSON (or member list), roughly.
fn weight(entry: &Entry) -> usize {
    const OVERHEAD: usize = 192;
    match (&entry.change, &entry.json) {
        // The message itself and its rendering are about the same size.
        (Change::Message { .. }, Some(json)) => OVERHEAD + 2 * json.len(),
        (Change::Message { .. }, None) => OVERHEAD,
        (Change::Room { room, .. }, _) => {
            OVERHEAD + room.member_ids.iter().map(|m| m.len() + 24).sum::<usize>()
        }
    }
}

impl Notifier {
    /// A registry with nobody waiting and an empty feed at `position`.
    pub fn new(position: SyncPosition) -> Arc<Self> {
        Self::with_feed(Feed::new(position))
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
        // for more (the most long-polls registered at once since the last round).
        let load = woken.max(self.peak.swap(self.subscriptions(), Ordering::Relaxed));
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

/// The notifier as the store's commit sink: an `Arc` so a delayed round can hold it.
impl CommitSink for Arc<Notifier> {
    fn committed(&self, commit: Committed) {
        // The users to wake: members of every room the commit touched, once each.
        let mut concerned: HashSet<String> = HashSet::new();
        let mut last: Option<&Arc<[String]>> = None;
        for change in &commit.changes {
            match change {
                Change::Message { members, .. } => {
                    // Consecutive messages of one room share their member list: skip it.
                    if last.is_some_and(|l| Arc::ptr_eq(l, members)) {
                        continue;
                    }
                    last = Some(members);
                    concerned.extend(members.iter().cloned());
                }
                Change::Room { room, .. } => concerned.extend(room.member_ids.iter().cloned()),
            }
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

    /// A commit as the store reports it: its changes, then (its writes answered) the go-ahead.
    fn publish(n: &Arc<Notifier>, commit: Committed) {
        n.committed(commit);
        n.answered();
    }

    fn notifier() -> Arc<Notifier> {
        Notifier::new(SyncPosition::default())
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
            message: Arc::new(Message {
                id,
                room_id: room.into(),
                user_id: "alice".into(),
                parts: vec![chatsync_protocol::Part::text(format!("m{id}"))],
                created_at: "t".into(),
                updated_at: "t".into(),
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

    #[tokio::test(start_paused = true)]
    async fn a_commit_is_in_the_feed_before_its_writes_are_answered_and_wakes_after() {
        let n = Notifier::new(at(10, 2));
        let mut bob = n.subscribe("bob");
        n.committed(Committed {
            changes: vec![message(11, "r1")],
            position: at(11, 2),
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
        let mut feed = Feed::with_bounds(at(0, 0), 3, usize::MAX);
        for id in 1..=5 {
            feed.push(Committed {
                changes: vec![message(id, "r1")],
                position: at(id, 0),
            });
        }
        assert_eq!(feed.head(), at(5, 0));
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
        let n = Notifier::new(at(0, 0));
        let mut parked: Vec<Subscription> = (0..1000).map(|_| n.subscribe("bob")).collect();
        let start = Instant::now();
        publish(
            &n,
            Committed {
                changes: vec![message(1, "r1")],
                position: at(1, 0),
            },
        );
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
            publish(
                &n,
                Committed {
                    changes: vec![message(id, "r1")],
                    position: at(id, 0),
                },
            );
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
            publish(
                &n,
                Committed {
                    changes: vec![message(id, "r1")],
                    position: at(id, 0),
                },
            );
            assert_eq!(one.wait().await, Wake::Changed);
        }
        let quiet = Instant::now();
        publish(
            &n,
            Committed {
                changes: vec![message(6, "r1")],
                position: at(6, 0),
            },
        );
        assert_eq!(one.wait().await, Wake::Changed);
        // (tokio's timers have millisecond resolution)
        assert!(quiet.elapsed() > Duration::ZERO && quiet.elapsed() <= Duration::from_millis(1));
    }
}
