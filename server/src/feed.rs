//! The change feed: the latest committed changes, kept in memory in commit order, so that an
//! incremental sync (v1 or v2) whose token it covers is answered without a query, exactly as the
//! database would answer it at the feed's head (`store::sqlite`'s differential tests compare the
//! two, byte for byte).
//!
//! What it keeps, besides the changes themselves:
//! - **the state of every message a kept change is about**, with its JSON rendered once (v1, and
//!   v2 up to the parts that depend on who asks): an edit or a reaction replaces it, and every
//!   answer that carries the message shows it as it is now, as the database does;
//! - **the newest receipt of each member** with a kept receipt change, and every receipt of the
//!   rooms created within the feed (a room new to a device comes with all its receipts);
//! - **read states** (read-up-to and unread count) of (room, user) pairs, exact at the head:
//!   seeded at 0 when a room is created, set by each receipt (the writer computes the count in
//!   its transaction), moved by sends (+1 for everyone but the sender) and deletions (-1 for
//!   those who had not read the message), and filled from the database on a miss
//!   ([`Feed::fill_reads`]). A v2 answer that needs a count the feed does not hold says so
//!   ([`Miss::Reads`]) instead of guessing.
//!
//! Bounded: at most [`FEED_MAX_ENTRIES`] changes and about [`FEED_MAX_BYTES`]; the oldest go
//! first and a sync from before them is answered by the database.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chatsync_protocol::v2::{self, SYNC_MAX_CHANGES};
use chatsync_protocol::RoomSync;

use crate::store::{
    Change, Committed, Head, MessageState, ReadState, StreamBatch, StreamRoom, SyncBatch,
    UpdateKind,
};
use crate::sync_token::SyncPosition;

/// Most changes the feed keeps, and about how many bytes. Beyond either, the oldest go and a
/// sync from before them is answered by the database. 100,000 entries is a few seconds of the
/// most the server commits; a long-poll parked for its 30 s is usually still covered, a client
/// back from a day offline never is (it needs the database anyway).
pub const FEED_MAX_ENTRIES: usize = 100_000;
/// See [`FEED_MAX_ENTRIES`].
pub const FEED_MAX_BYTES: usize = 64 * 1024 * 1024;
/// Most read states kept (about 100 bytes each); beyond, whole rooms' are forgotten and read
/// again from the database when needed.
pub const FEED_MAX_READS: usize = 200_000;

/// A message's state with its JSON rendered once for every answer that carries it.
#[derive(Debug)]
struct Shown {
    state: Arc<MessageState>,
    /// The v1 JSON; `None` once deleted (v1 never shows a tombstone).
    v1: Option<Box<str>>,
    /// The v2 JSON without its closing brace and without `reactions` and `txn_id`, which depend
    /// on who asks.
    v2_head: Box<str>,
    /// The position of the newest change to it (the send or a later one).
    pos: u64,
}

impl Shown {
    fn new(state: Arc<MessageState>, pos: u64) -> Shown {
        let v1 = (!state.deleted).then(|| {
            serde_json::to_string(&state.v1())
                .expect("a message serializes")
                .into_boxed_str()
        });
        // Rendered for nobody (no reactions, no txn id): those two fields come last.
        let mut bare = state.v2_for("");
        bare.reactions.clear();
        bare.txn_id = None;
        let mut v2_head = serde_json::to_string(&bare).expect("a message serializes");
        v2_head.pop(); // the closing brace
        Shown {
            state,
            v1,
            v2_head: v2_head.into_boxed_str(),
            pos,
        }
    }

    /// The v2 JSON as `viewer` sees it: byte for byte what serializing
    /// `state.v2_for(viewer)` gives.
    fn write_v2(&self, viewer: &str, out: &mut String) {
        out.push_str(&self.v2_head);
        let state = &self.state;
        if !state.reactions.is_empty() {
            out.push_str(",\"reactions\":");
            let reactions: Vec<v2::Reaction> = state.v2_for(viewer).reactions;
            out.push_str(&serde_json::to_string(&reactions).expect("reactions serialize"));
        }
        if state.user_id == viewer {
            out.push_str(",\"txn_id\":");
            out.push_str(&serde_json::to_string(&state.txn_id).expect("a string serializes"));
        }
        out.push('}');
    }

    fn weight(&self) -> usize {
        self.v1.as_ref().map_or(0, |j| j.len()) + 2 * self.v2_head.len()
    }
}

/// One kept change and the v1 position after it.
#[derive(Debug)]
struct Entry {
    v1: SyncPosition,
    change: Change,
    /// What it counts against [`FEED_MAX_BYTES`].
    weight: usize,
}

impl Entry {
    fn pos(&self) -> u64 {
        self.change.pos()
    }
}

/// The latest committed changes: every change after `start`, up to `head`.
#[derive(Debug)]
pub struct Feed {
    start: Head,
    head: Head,
    entries: VecDeque<Entry>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
    /// message id → its newest state, for every message a kept change is about.
    messages: HashMap<u64, Shown>,
    /// room → member → (read-up-to, position): the newest receipt of each member with a kept
    /// receipt change.
    receipts: HashMap<Arc<str>, RoomReceipts>,
    /// room → user → read state, exact at the head.
    reads: HashMap<String, HashMap<String, ReadState>>,
    reads_len: usize,
    max_reads: usize,
    /// room → the position it was created at, for the rooms created within the feed.
    created: HashMap<String, u64>,
}

/// One room's kept receipts: member → (read-up-to, position of the receipt).
type RoomReceipts = BTreeMap<Arc<str>, (u64, u64)>;

/// Why the feed cannot answer a v2 sync by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// It does not hold every change after the token (too old, or ahead of the head).
    NotCovered,
    /// It lacks the user's read state in these rooms: read them ([`Feed::fill_reads`]) and ask
    /// again.
    Reads(Vec<String>),
}

/// The messages of one room a v1 answer carries.
struct Selected<'f> {
    room_id: &'f str,
    messages: Vec<&'f Shown>,
    limited: bool,
}

/// One room of a v2 answer, as references into the feed.
struct V2Room<'f> {
    messages: Vec<&'f Shown>,
    limited: bool,
    updates: Vec<&'f Shown>,
    receipts: BTreeMap<String, u64>,
    unread: u32,
}

/// A v2 answer, as references into the feed.
struct V2Selection<'f> {
    pos: u64,
    has_more: bool,
    rooms: BTreeMap<String, V2Room<'f>>,
}

/// A sync answer rendered from the feed.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The JSON body.
    pub body: bytes::Bytes,
    /// No room in it: nothing new.
    pub empty: bool,
}

/// Whether `user` is in a sorted member list.
fn is_member(members: &[String], user: &str) -> bool {
    members.binary_search_by(|m| m.as_str().cmp(user)).is_ok()
}

impl Feed {
    /// An empty feed at `head` (the store's when it opened).
    pub fn new(head: Head) -> Feed {
        Feed::with_bounds(head, FEED_MAX_ENTRIES, FEED_MAX_BYTES)
    }

    /// An empty feed that keeps at most `max_entries` changes and about `max_bytes`.
    pub fn with_bounds(head: Head, max_entries: usize, max_bytes: usize) -> Feed {
        Feed {
            start: head,
            head,
            entries: VecDeque::new(),
            bytes: 0,
            max_entries: max_entries.max(1),
            max_bytes,
            messages: HashMap::new(),
            receipts: HashMap::new(),
            reads: HashMap::new(),
            reads_len: 0,
            max_reads: FEED_MAX_READS,
            created: HashMap::new(),
        }
    }

    /// Where the newest kept change brought the store.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Appends one commit's changes (their positions only grow). A change at or below the head
    /// is already accounted for (a follower of the stream that started before the feed did
    /// reports it again) and is skipped.
    pub fn push(&mut self, commit: Committed) {
        for change in commit.changes {
            if change.pos() <= self.head.pos {
                continue;
            }
            let mut v1 = self.head.v1;
            let mut weight = 192;
            match &change {
                Change::Message { pos, message, .. } | Change::Updated { pos, message, .. } => {
                    if matches!(change, Change::Message { .. }) {
                        v1.message_id = message.id;
                    }
                    let shown = Shown::new(Arc::clone(message), *pos);
                    weight += shown.weight();
                    self.apply_to_reads(&change);
                    self.messages.insert(message.id, shown);
                }
                Change::Receipt {
                    pos,
                    room_id,
                    user_id,
                    read,
                    ..
                } => {
                    self.receipts
                        .entry(Arc::clone(room_id))
                        .or_default()
                        .insert(Arc::clone(user_id), (read.read_upto, *pos));
                    self.set_read(room_id, user_id, *read);
                }
                Change::Room { room, seqs, pos } => {
                    v1.membership_seq = seqs.iter().copied().max().unwrap_or(v1.membership_seq);
                    self.created.insert(room.id.clone(), *pos);
                    weight += room.member_ids.iter().map(|m| m.len() + 24).sum::<usize>();
                    // Nobody has read or missed anything in a new room.
                    for member in &room.member_ids {
                        self.set_read(&room.id, member, ReadState::default());
                    }
                }
            }
            debug_assert!(
                change.pos() > self.head.pos,
                "changes arrive in commit order"
            );
            debug_assert!(v1 >= self.head.v1);
            self.head = Head {
                v1,
                pos: change.pos(),
            };
            self.bytes += weight;
            self.entries.push_back(Entry { v1, change, weight });
        }
        self.head.v1 = self.head.v1.max(commit.head.v1);
        self.head.pos = self.head.pos.max(commit.head.pos);
        while self.entries.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(old) = self.entries.pop_front() else {
                break;
            };
            self.forget(&old);
            self.bytes -= old.weight;
            self.start = Head {
                v1: old.v1,
                pos: old.pos(),
            };
        }
    }

    /// Drops what only `old` (leaving the feed) kept.
    fn forget(&mut self, old: &Entry) {
        let pos = old.pos();
        match &old.change {
            Change::Message { message, .. } | Change::Updated { message, .. } => {
                if self.messages.get(&message.id).is_some_and(|s| s.pos == pos) {
                    self.messages.remove(&message.id);
                }
            }
            Change::Receipt {
                room_id, user_id, ..
            } => {
                if let Some(room) = self.receipts.get_mut(room_id) {
                    if room.get(user_id).is_some_and(|(_, p)| *p == pos) {
                        room.remove(user_id);
                    }
                    if room.is_empty() {
                        self.receipts.remove(room_id);
                    }
                }
            }
            Change::Room { room, .. } => {
                self.created.remove(&room.id);
            }
        }
    }

    fn set_read(&mut self, room_id: &str, user_id: &str, read: ReadState) {
        if self.reads_len >= self.max_reads
            && !self
                .reads
                .get(room_id)
                .is_some_and(|r| r.contains_key(user_id))
        {
            // Forget whole rooms until there is room (they are read again when needed).
            while self.reads_len >= self.max_reads {
                let Some(victim) = self.reads.keys().next().cloned() else {
                    break;
                };
                if let Some(gone) = self.reads.remove(&victim) {
                    self.reads_len -= gone.len();
                }
            }
        }
        let room = self.reads.entry(room_id.to_owned()).or_default();
        if room.insert(user_id.to_owned(), read).is_none() {
            self.reads_len += 1;
        }
    }

    /// Moves the kept read states of a message's room by a send or a deletion.
    fn apply_to_reads(&mut self, change: &Change) {
        let (message, deletion) = match change {
            Change::Message { message, .. } => (message, false),
            Change::Updated {
                message,
                kind: UpdateKind::Deletion,
                ..
            } => (message, true),
            _ => return,
        };
        let Some(room) = self.reads.get_mut(message.room_id.as_str()) else {
            return;
        };
        for (user, read) in room.iter_mut() {
            apply_read(read, user, message, deletion);
        }
    }

    /// Takes read states read from the database at stream position `at`, bringing each to the
    /// head with the kept changes after `at`. States from a snapshot ahead of the head (a
    /// commit not reported yet) are dropped: they would count it twice.
    pub fn fill_reads(&mut self, user_id: &str, at: u64, states: Vec<(String, ReadState)>) {
        if at > self.head.pos || at < self.start.pos {
            return;
        }
        let first = self.entries.partition_point(|e| e.pos() <= at);
        for (room_id, mut read) in states {
            for entry in self.entries.range(first..) {
                if entry.change.room_id() != room_id {
                    continue;
                }
                match &entry.change {
                    Change::Message { message, .. } => {
                        apply_read(&mut read, user_id, message, false)
                    }
                    Change::Updated {
                        message,
                        kind: UpdateKind::Deletion,
                        ..
                    } => apply_read(&mut read, user_id, message, true),
                    Change::Receipt {
                        user_id: reader,
                        read: r,
                        ..
                    } if **reader == *user_id => read = *r,
                    _ => {}
                }
            }
            self.set_read(&room_id, user_id, read);
        }
    }

    /// The user's read state in a room at the head, if kept.
    fn read(&self, room_id: &str, user_id: &str) -> Option<ReadState> {
        self.reads.get(room_id)?.get(user_id).copied()
    }

    /// The kept state of a message (every message a kept change is about).
    fn shown(&self, id: u64) -> &Shown {
        self.messages
            .get(&id)
            .expect("every message of a kept change has its state kept")
    }

    // ---- v1 ----

    /// What `/v1/sync` answers `user_id` for `since` with this `limit`, at the feed's head, as the
    /// database would; `None` when the feed does not hold everything after `since` (too old, or
    /// ahead of the head: the database decides then).
    pub fn answer(&self, user_id: &str, since: SyncPosition, limit: u32) -> Option<SyncBatch> {
        let rooms = self
            .select(user_id, since, limit)?
            .into_iter()
            .map(|room| {
                let messages = room.messages.iter().map(|s| s.state.v1()).collect();
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
            position: self.head.v1,
            rooms,
        })
    }

    /// The same answer as [`Feed::answer`] as the JSON body of the sync response, byte for byte
    /// what serializing that answer gives, put together from the messages' JSON rendered once:
    /// a message that 1,000 long-polls carry is serialized once, not 1,000 times.
    pub fn render(&self, user_id: &str, since: SyncPosition, limit: u32) -> Option<Rendered> {
        let rooms = self.select(user_id, since, limit)?;
        let size: usize = rooms
            .iter()
            .map(|r| {
                64 + r.room_id.len()
                    + r.messages
                        .iter()
                        .map(|s| s.v1.as_ref().map_or(0, |j| j.len() + 1))
                        .sum::<usize>()
            })
            .sum();
        let mut body = String::with_capacity(64 + size);
        body.push_str("{\"next_batch\":\"");
        body.push_str(&self.head.v1.to_string());
        body.push_str("\",\"rooms\":{");
        for (i, room) in rooms.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&serde_json::to_string(room.room_id).expect("a string serializes"));
            body.push_str(":{\"messages\":[");
            for (j, shown) in room.messages.iter().enumerate() {
                if j > 0 {
                    body.push(',');
                }
                body.push_str(shown.v1.as_deref().unwrap_or("null"));
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

    /// The rooms and messages a v1 answer carries: the feed's share of the v1 sync query.
    fn select(&self, user_id: &str, since: SyncPosition, limit: u32) -> Option<Vec<Selected<'_>>> {
        let covered = since.message_id >= self.start.v1.message_id
            && since.membership_seq >= self.start.v1.membership_seq
            && since.message_id <= self.head.v1.message_id
            && since.membership_seq <= self.head.v1.membership_seq;
        if !covered {
            return None;
        }
        // v1 positions only grow, so the changes after `since` are a suffix.
        let first = self.entries.partition_point(|e| {
            e.v1.message_id <= since.message_id && e.v1.membership_seq <= since.membership_seq
        });
        // Rooms the user joined after `since`: reported whole, like in an initial sync.
        let mut joined: BTreeMap<&str, Vec<&Shown>> = BTreeMap::new();
        let mut changed: BTreeMap<&str, Vec<&Shown>> = BTreeMap::new();
        // Messages of one room share one member list: look the user up once per list.
        let mut last_members: Option<(&Arc<[String]>, bool)> = None;
        for entry in self.entries.range(first..) {
            match &entry.change {
                Change::Room { room, seqs, .. } => {
                    if let Ok(i) = room
                        .member_ids
                        .binary_search_by(|m| m.as_str().cmp(user_id))
                    {
                        if seqs[i] > since.membership_seq {
                            joined.insert(&room.id, Vec::new());
                        }
                    }
                }
                Change::Message {
                    message, members, ..
                } => {
                    let member = match last_members {
                        Some((m, member)) if Arc::ptr_eq(m, members) => member,
                        _ => {
                            let member = is_member(members, user_id);
                            last_members = Some((members, member));
                            member
                        }
                    };
                    if !member {
                        continue;
                    }
                    // v1 shows messages as they are now, and never a deleted one.
                    let shown = self.shown(message.id);
                    if shown.state.deleted {
                        continue;
                    }
                    if let Some(list) = joined.get_mut(message.room_id.as_str()) {
                        // A joined room's messages all come after its creation, which is here.
                        list.push(shown);
                    } else if message.id > since.message_id {
                        changed.entry(&message.room_id).or_default().push(shown);
                    }
                }
                Change::Updated { .. } | Change::Receipt { .. } => {}
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

    // ---- v2 ----

    /// What the database's v2 sync answers `user_id` for `since`, `limit` and `also` at the
    /// feed's head (see [`crate::store::Store::sync_v2`]), or why the feed cannot tell.
    pub fn answer_v2(
        &self,
        user_id: &str,
        since: u64,
        limit: u32,
        also: &[String],
    ) -> Result<StreamBatch, Miss> {
        let selection = self.select_v2(user_id, since, limit, also)?;
        let rooms = selection
            .rooms
            .into_iter()
            .map(|(room_id, room)| {
                let state = |s: &&Shown| MessageState::clone(&s.state);
                (
                    room_id,
                    StreamRoom {
                        messages: room.messages.iter().map(state).collect(),
                        limited: room.limited,
                        updates: room.updates.iter().map(state).collect(),
                        receipts: room.receipts,
                        unread: room.unread,
                    },
                )
            })
            .collect();
        Ok(StreamBatch {
            pos: selection.pos,
            has_more: selection.has_more,
            rooms,
        })
    }

    /// The same answer as [`Feed::answer_v2`] as the JSON body of the v2 sync response for
    /// `user_id`, with the token `next_batch(pos)` and `typing(room)` per room: byte for byte
    /// what serializing [`StreamBatch::into_response`] gives, from the messages' JSON rendered
    /// once.
    pub fn render_v2(
        &self,
        user_id: &str,
        since: u64,
        limit: u32,
        also: &[String],
        next_batch: impl FnOnce(u64) -> String,
        mut typing: impl FnMut(&str) -> Vec<String>,
    ) -> Result<Rendered, Miss> {
        let selection = self.select_v2(user_id, since, limit, also)?;
        let json = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let mut body = String::with_capacity(
            128 + selection
                .rooms
                .values()
                .map(|r| {
                    256 + r
                        .messages
                        .iter()
                        .chain(&r.updates)
                        .map(|s| s.v2_head.len() + 64)
                        .sum::<usize>()
                })
                .sum::<usize>(),
        );
        body.push_str("{\"next_batch\":");
        body.push_str(&json(&next_batch(selection.pos)));
        body.push_str(",\"has_more\":");
        body.push_str(if selection.has_more { "true" } else { "false" });
        body.push_str(",\"rooms\":{");
        for (i, (room_id, room)) in selection.rooms.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&json(room_id));
            body.push_str(":{\"messages\":[");
            for (j, shown) in room.messages.iter().enumerate() {
                if j > 0 {
                    body.push(',');
                }
                shown.write_v2(user_id, &mut body);
            }
            body.push_str("],\"limited\":");
            body.push_str(if room.limited { "true" } else { "false" });
            body.push_str(",\"updates\":[");
            for (j, shown) in room.updates.iter().enumerate() {
                if j > 0 {
                    body.push(',');
                }
                shown.write_v2(user_id, &mut body);
            }
            body.push_str("],\"receipts\":");
            body.push_str(&serde_json::to_string(&room.receipts).expect("receipts serialize"));
            body.push_str(",\"unread\":");
            body.push_str(&room.unread.to_string());
            body.push_str(",\"typing\":");
            body.push_str(&serde_json::to_string(&typing(room_id)).expect("typing serializes"));
            body.push('}');
        }
        body.push_str("}}");
        Ok(Rendered {
            body: body.into(),
            empty: selection.rooms.is_empty(),
        })
    }

    /// The feed's share of the v2 sync query: the same walk as the database's
    /// (`store::sqlite::stream::sync`), over the kept changes.
    fn select_v2(
        &self,
        user_id: &str,
        since: u64,
        limit: u32,
        also: &[String],
    ) -> Result<V2Selection<'_>, Miss> {
        if since < self.start.pos || since > self.head.pos {
            return Err(Miss::NotCovered);
        }
        let first = self.entries.partition_point(|e| e.pos() <= since);
        let mut upto = self.head.pos;
        let mut has_more = false;
        // The first message sent after `since`, in any room: messages below it are older.
        let mut first_new: Option<u64> = None;
        let mut counted = 0usize;
        let mut joined: HashSet<&str> = HashSet::new();
        let mut sent: BTreeMap<&str, Vec<&Shown>> = BTreeMap::new();
        let mut updated: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
        let mut read: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        let mut last_members: Option<(*const [String], bool)> = None;
        for entry in self.entries.range(first..) {
            let change = &entry.change;
            if let Change::Message { message, .. } = change {
                first_new.get_or_insert(message.id);
            }
            let members = change.members();
            let member = match last_members {
                Some((m, member)) if std::ptr::eq(m, members) => member,
                _ => {
                    let member = is_member(members, user_id);
                    last_members = Some((members as *const [String], member));
                    member
                }
            };
            if !member {
                continue;
            }
            if !matches!(change, Change::Message { .. }) {
                counted += 1;
                if counted > SYNC_MAX_CHANGES {
                    upto = change.pos() - 1;
                    has_more = true;
                    break;
                }
            }
            match change {
                Change::Room { room, .. } => {
                    joined.insert(&room.id);
                }
                Change::Message { message, .. } => {
                    sent.entry(&message.room_id)
                        .or_default()
                        .push(self.shown(message.id));
                }
                Change::Updated { message, .. } => {
                    if first_new.is_none_or(|first| message.id < first) {
                        updated
                            .entry(&message.room_id)
                            .or_default()
                            .insert(message.id);
                    }
                }
                Change::Receipt {
                    room_id, user_id, ..
                } => {
                    read.entry(&**room_id).or_default().insert(&**user_id);
                }
            }
        }
        let keep = limit as usize;
        let mut rooms: BTreeMap<String, V2Room<'_>> = BTreeMap::new();
        let mut missing: Vec<String> = Vec::new();
        let mut room_ids: BTreeSet<&str> = BTreeSet::new();
        room_ids.extend(sent.keys());
        room_ids.extend(updated.keys());
        room_ids.extend(read.keys());
        room_ids.extend(joined.iter());
        for room_id in also {
            // Only someone's typing: shown once the device can know the room (rooms created
            // before the feed's start are older than `since`).
            if self.created.get(room_id).is_none_or(|pos| *pos <= upto) {
                room_ids.insert(room_id);
            }
        }
        for room_id in room_ids {
            let mut messages = sent.remove(room_id).unwrap_or_default();
            let limited = messages.len() > keep;
            if limited {
                messages.drain(..messages.len() - keep);
            }
            let (updates, receipts) = if joined.contains(room_id) {
                let receipts = self
                    .receipts
                    .get(room_id)
                    .map(|r| r.iter().map(|(u, (id, _))| (u.to_string(), *id)).collect())
                    .unwrap_or_default();
                (Vec::new(), receipts)
            } else {
                let updates = updated
                    .remove(room_id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|id| self.shown(id))
                    .collect();
                let receipts = read
                    .remove(room_id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|reader| {
                        let newest = self
                            .receipts
                            .get(room_id)
                            .and_then(|r| r.get(reader))
                            .expect("a kept receipt change has its receipt kept");
                        (reader.to_owned(), newest.0)
                    })
                    .collect();
                (updates, receipts)
            };
            let Some(state) = self.read(room_id, user_id) else {
                missing.push(room_id.to_owned());
                continue;
            };
            rooms.insert(
                room_id.to_owned(),
                V2Room {
                    messages,
                    limited,
                    updates,
                    receipts,
                    unread: state.unread,
                },
            );
        }
        if !missing.is_empty() {
            return Err(Miss::Reads(missing));
        }
        Ok(V2Selection {
            pos: upto,
            has_more,
            rooms,
        })
    }
}

/// Moves one user's read state by a send (`deletion` false) or a deletion of `message`.
fn apply_read(read: &mut ReadState, user_id: &str, message: &MessageState, deletion: bool) {
    if message.user_id == user_id || message.id <= read.read_upto {
        return;
    }
    if deletion {
        read.unread = read.unread.saturating_sub(1);
    } else {
        read.unread = read.unread.saturating_add(1);
    }
}
