//! Storage behind a small trait, so the routes do not know which database holds the data:
//! [`sql::SqlStore`], on SQLite (the embedded default) or on PostgreSQL (several instances on one
//! database), with one implementation of the logic for both. See
//! docs/adr/0002-sqlite-storage-trait.md, docs/adr/0012-server-group-commit-and-fan-out.md and
//! docs/adr/0017-postgresql.md.
//!
//! Two kinds of calls:
//! - **writes** return a [`Pending`] at once: the write is queued for the backend's next commit
//!   and the future resolves once that commit is durable. Concurrent writes share one transaction
//!   and one fsync (group commit); no thread waits for a write.
//! - **reads** are synchronous: the routes run them on the blocking pool, a bounded number at a
//!   time ([`crate::app::AppState::db`]). Each is one transaction, so each answer is a consistent
//!   snapshot.
//!
//! Every commit's changes are handed, in commit order, to the [`CommitSink`] (the notifier), which
//! answers parked long-polls from memory.
//!
//! **The change stream** (protocol v2, docs/adr/0015-change-stream.md): every change (a send, an
//! edit, a deletion, a reaction added or removed, a receipt moving forward, a room created) takes
//! the next position of one sequence, assigned by the backend *inside the transaction that
//! commits it*, so positions are in commit order and a reader's snapshot always holds a prefix
//! of them: a sync that answered up to position `p` can never be passed by a change that
//! commits later with a position at or below `p`. [`Head`] is where the stream (and v1's two
//! sequences) stand.

pub mod sql;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chatsync_protocol::{v2, Direction, Message, Part, Room, RoomSync, User};
use tokio::sync::oneshot;

use crate::sync_token::SyncPosition;

/// A storage failure. None of these is caused by client input: the routes validate first.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (I/O, corruption, lock timeout).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL reported an error (connection lost, constraint, I/O).
    #[error("postgres: {}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    /// A stored row could not be decoded (a corrupt parts column).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The database was written by a newer server (its schema version is unknown here).
    #[error("database schema version {found} is newer than this server supports ({supported})")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// The store has been closed (the server is shutting down).
    #[error("the store is closed")]
    Closed,
    /// The transaction a write was part of failed; the write was not stored.
    #[error("the commit failed: {0}")]
    CommitFailed(String),
}

/// A PostgreSQL error with what the database said (the client's own text is only "db error").
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}

/// A write queued for the backend's next commit. Await it (or [`Pending::wait`] off the async
/// threads): it resolves once the commit that holds the write is durable.
#[derive(Debug)]
#[must_use = "a write is only known to be stored once its Pending resolves"]
pub struct Pending<T> {
    answer: oneshot::Receiver<Result<T, StoreError>>,
}

impl<T> Pending<T> {
    /// A pending write and the sender its backend answers it with.
    pub fn channel() -> (oneshot::Sender<Result<T, StoreError>>, Pending<T>) {
        let (tx, rx) = oneshot::channel();
        (tx, Pending { answer: rx })
    }

    /// An already-answered write (a backend that refused it before queueing).
    pub fn ready(result: Result<T, StoreError>) -> Pending<T> {
        let (tx, pending) = Self::channel();
        let _ = tx.send(result);
        pending
    }

    /// Blocks the thread until the write is answered. Not on an async thread: for tests, seeding
    /// and tools.
    pub fn wait(self) -> Result<T, StoreError> {
        self.answer
            .blocking_recv()
            .unwrap_or(Err(StoreError::Closed))
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A backend that dropped the answer was closed under the write.
        Pin::new(&mut self.answer)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(StoreError::Closed)))
    }
}

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Target room (the sender is known to be a member).
    pub room_id: String,
    /// Sender's user id.
    pub sender: String,
    /// Client-chosen idempotency key, unique per sender.
    pub txn_id: String,
    /// Validated parts.
    pub parts: Vec<Part>,
    /// RFC 3339 time to stamp on a new message.
    pub now: String,
}

/// Result of a send.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    /// The stored message as it is now (for a repeated txn id: the earlier one, with whatever
    /// happened to it since).
    pub message: MessageState,
    /// False when (sender, txn id) was already stored and nothing new was written.
    pub created: bool,
}

/// A message with everything that happened to it, as stored: what every answer about it, v1 or
/// v2, for any user, is made from. (Serde: it crosses instances in commit notices, see
/// `sql::notice`.)
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MessageState {
    /// Server-assigned, strictly increasing across all rooms.
    pub id: u64,
    /// The room.
    pub room_id: String,
    /// The sender.
    pub user_id: String,
    /// The content now (empty once deleted).
    pub parts: Vec<Part>,
    /// When it was sent.
    pub created_at: String,
    /// Its last edit or deletion (reactions do not change it).
    pub updated_at: String,
    /// When its sender last edited it (cleared by a deletion).
    pub edited_at: Option<String>,
    /// Deleted by its sender: a tombstone.
    pub deleted: bool,
    /// Reactions by key, in the order first given (among the current ones), each with its
    /// reactors, sorted.
    pub reactions: Vec<(String, Vec<String>)>,
    /// The txn id the sender sent it with (shown to the sender only).
    pub txn_id: String,
}

impl MessageState {
    /// The v1 shape (v1 clients never see a deleted message; the routes leave those out).
    pub fn v1(&self) -> Message {
        Message {
            id: self.id,
            user_id: self.user_id.clone(),
            room_id: self.room_id.clone(),
            parts: self.parts.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }

    /// The v2 shape as `viewer` sees it: whether they reacted, and the txn id if they sent it.
    pub fn v2_for(&self, viewer: &str) -> v2::Message {
        v2::Message {
            id: self.id,
            user_id: self.user_id.clone(),
            room_id: self.room_id.clone(),
            parts: self.parts.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
            edited_at: self.edited_at.clone(),
            deleted: self.deleted,
            reactions: self
                .reactions
                .iter()
                .map(|(key, users)| v2::Reaction {
                    key: key.clone(),
                    count: u32::try_from(users.len()).unwrap_or(u32::MAX),
                    me: users.binary_search_by(|u| u.as_str().cmp(viewer)).is_ok(),
                })
                .collect(),
            txn_id: (self.user_id == viewer).then(|| self.txn_id.clone()),
        }
    }
}

/// A page of history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage<M = Message> {
    /// Ascending by id.
    pub messages: Vec<M>,
    /// Whether more messages exist beyond this page in the requested direction.
    pub has_more: bool,
}

/// An edit of a message (protocol v2).
#[derive(Debug, Clone)]
pub struct EditMessage {
    /// The room the message must be in.
    pub room_id: String,
    /// The message.
    pub message_id: u64,
    /// Who asks (only the sender may).
    pub user_id: String,
    /// The idempotency key (per user and kind of write).
    pub txn_id: String,
    /// The new, validated, parts.
    pub parts: Vec<Part>,
    /// RFC 3339 time of the edit.
    pub now: String,
}

/// A deletion of a message (protocol v2).
#[derive(Debug, Clone)]
pub struct DeleteMessage {
    /// The room the message must be in.
    pub room_id: String,
    /// The message.
    pub message_id: u64,
    /// Who asks (only the sender may).
    pub user_id: String,
    /// The idempotency key.
    pub txn_id: String,
    /// RFC 3339 time of the deletion.
    pub now: String,
}

/// A reaction added or removed (protocol v2).
#[derive(Debug, Clone)]
pub struct React {
    /// The room the message must be in.
    pub room_id: String,
    /// The message.
    pub message_id: u64,
    /// Who reacts (any member; the route checked membership).
    pub user_id: String,
    /// The idempotency key.
    pub txn_id: String,
    /// The validated key.
    pub key: String,
    /// Add (true) or remove.
    pub on: bool,
}

/// A read receipt (protocol v2).
#[derive(Debug, Clone)]
pub struct ReadReceipt {
    /// The room.
    pub room_id: String,
    /// The reader (a member; the route checked membership).
    pub user_id: String,
    /// The idempotency key.
    pub txn_id: String,
    /// The newest message read: a message of this room.
    pub message_id: u64,
}

/// A user's read-up-to in a room and what is left unread after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadState {
    /// The read-up-to message id (0: none).
    pub read_upto: u64,
    /// Messages from others after it, not deleted.
    pub unread: u32,
}

/// Why a v2 write was refused. Nothing was changed; the route maps each to a 4xx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No such message in this room (404; for a receipt 400: it is a body field).
    NoSuchMessage,
    /// Only the sender may edit or delete a message (403).
    NotSender,
    /// The message is deleted: no edit, no reaction (409).
    Deleted,
    /// The user already has [`v2::MAX_REACTION_KEYS_PER_USER`] keys on this message (409).
    TooManyReactions,
}

/// A v2 write's outcome: its answer, or why nothing was changed.
pub type WriteResult<T> = Result<T, Refusal>;

/// One room of a v2 sync answer before it is shaped for the user (the typing list is added by
/// the route: typing is not stored).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamRoom {
    /// New messages, ascending (tombstones included).
    pub messages: Vec<MessageState>,
    /// Older new messages were left out.
    pub limited: bool,
    /// Older messages changed since the token, ascending by id.
    pub updates: Vec<MessageState>,
    /// Members whose read-up-to moved (all members' on a room new to the device), now.
    pub receipts: BTreeMap<String, u64>,
    /// The user's unread count now.
    pub unread: u32,
}

/// A v2 sync answer before it is shaped for the user.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamBatch {
    /// The position to hand back (`next_batch`).
    pub pos: u64,
    /// Changes after `pos` are waiting (the answer was bounded).
    pub has_more: bool,
    /// The rooms with a change (every room on an initial sync).
    pub rooms: BTreeMap<String, StreamRoom>,
}

impl StreamBatch {
    /// The wire answer for `viewer`, with `typing` per room (the rooms it lists come with the
    /// typing list it gives).
    pub fn into_response(
        self,
        viewer: &str,
        next_batch: String,
        mut typing: impl FnMut(&str) -> Vec<String>,
    ) -> v2::SyncResponse {
        let rooms = self
            .rooms
            .into_iter()
            .map(|(room_id, room)| {
                let sync = v2::RoomSync {
                    messages: room.messages.iter().map(|m| m.v2_for(viewer)).collect(),
                    limited: room.limited,
                    updates: room.updates.iter().map(|m| m.v2_for(viewer)).collect(),
                    receipts: room.receipts,
                    unread: room.unread,
                    typing: typing(&room_id),
                };
                (room_id, sync)
            })
            .collect();
        v2::SyncResponse {
            next_batch,
            has_more: self.has_more,
            rooms,
        }
    }
}

/// Where the store stands: v1's two sequences and the change stream's position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Head {
    /// The v1 position (newest message id, newest membership sequence number).
    pub v1: SyncPosition,
    /// The newest position of the change stream (0: nothing yet).
    pub pos: u64,
}

/// A history request.
#[derive(Debug, Clone, Copy)]
pub struct HistoryQuery {
    /// Exclusive bound; `None` starts from the end the direction walks away from.
    pub initial_id: Option<u64>,
    /// Which way to walk.
    pub direction: Direction,
    /// Page size (already clamped).
    pub limit: u32,
}

/// A sync answer before encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncBatch {
    /// Position to hand back as `next_batch`.
    pub position: SyncPosition,
    /// Rooms with something new.
    pub rooms: BTreeMap<String, RoomSync>,
}

/// What kind of change to an existing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// Its content was replaced.
    Edit,
    /// It became a tombstone.
    Deletion,
    /// A reaction was added or removed.
    Reaction,
}

/// One committed change that a sync can report, with its position in the change stream.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new message (a repeated txn id is no change).
    Message {
        /// Its position.
        pos: u64,
        /// The stored message.
        message: Arc<MessageState>,
        /// The members of its room, sorted: the users it concerns.
        members: Arc<[String]>,
    },
    /// An edit, a deletion, or a reaction added or removed.
    Updated {
        /// Its position.
        pos: u64,
        /// Which.
        kind: UpdateKind,
        /// The message's whole state after the change.
        message: Arc<MessageState>,
        /// The members of its room, sorted.
        members: Arc<[String]>,
    },
    /// A member's read-up-to moved forward.
    Receipt {
        /// Its position.
        pos: u64,
        /// The room.
        room_id: Arc<str>,
        /// The reader.
        user_id: Arc<str>,
        /// Their read-up-to and unread count after it.
        read: ReadState,
        /// The members of its room, sorted.
        members: Arc<[String]>,
    },
    /// A new room: every member joined it.
    Room {
        /// Its position (one for the room's creation, whatever the number of members).
        pos: u64,
        /// The room (members sorted).
        room: Arc<Room>,
        /// Each member's membership sequence number, in the order of `room.member_ids`.
        seqs: Arc<[u64]>,
    },
}

impl Change {
    /// The change's position in the stream.
    pub fn pos(&self) -> u64 {
        match self {
            Change::Message { pos, .. }
            | Change::Updated { pos, .. }
            | Change::Receipt { pos, .. }
            | Change::Room { pos, .. } => *pos,
        }
    }

    /// The room it happened in.
    pub fn room_id(&self) -> &str {
        match self {
            Change::Message { message, .. } | Change::Updated { message, .. } => &message.room_id,
            Change::Receipt { room_id, .. } => room_id,
            Change::Room { room, .. } => &room.id,
        }
    }

    /// The users it concerns: the members of its room, sorted.
    pub fn members(&self) -> &[String] {
        match self {
            Change::Message { members, .. }
            | Change::Updated { members, .. }
            | Change::Receipt { members, .. } => members,
            Change::Room { room, .. } => &room.member_ids,
        }
    }
}

/// The changes of one commit, in order, and where the store stands after it.
#[derive(Debug, Clone)]
pub struct Committed {
    /// What the commit stored, in the order of their positions.
    pub changes: Vec<Change>,
    /// The head after the commit.
    pub head: Head,
}

/// Where a backend reports its commits, in commit order: each commit's changes before the
/// writes in it are answered, then [`CommitSink::answered`] once they are.
pub trait CommitSink: Send + Sync + 'static {
    /// One commit's changes. Called on the backend's writer; must not block.
    fn committed(&self, commit: Committed);
    /// The writes of the last reported commit have been answered. The notifier wakes the
    /// long-polls here, not in `committed`: the writers' answers are then scheduled before
    /// thousands of woken requests, not behind them.
    fn answered(&self) {}
}

/// A typing notice one instance accepted, for the others on the same database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TypingNotice {
    /// The room.
    pub room_id: String,
    /// Who types (or stopped).
    pub user_id: String,
    /// Started (or still) typing, or stopped.
    pub typing: bool,
}

/// Where the typing notices of other instances arrive (see [`Store::set_typing_sink`]).
pub trait TypingSink: Send + Sync + 'static {
    /// A notice another instance accepted. Called on the backend's listener; must not block.
    fn typed(&self, notice: TypingNotice);
}

/// Where the other instances' long-poll counts arrive (see [`Store::set_load_sink`]): the
/// notifier paces its wake rounds by the whole deployment's long-polls.
pub trait LoadSink: Send + Sync + 'static {
    /// The long-polls parked on the other instances, all together, by their latest counts.
    /// Called on the backend's listener; must not block.
    fn elsewhere(&self, parked: usize);
}

/// Storage of users, rooms, memberships and messages.
pub trait Store: Send + Sync + 'static {
    /// Creates or replaces a user's profile.
    fn put_user(&self, user: User) -> Pending<User>;
    /// Creates a room with these members (sorted, deduplicated by the caller).
    fn create_room(
        &self,
        name: Option<String>,
        member_ids: Vec<String>,
        now: String,
    ) -> Pending<Room>;
    /// The one-to-one room of two different users, created if missing. Resolves to the room and
    /// whether it was created now.
    fn direct_room(&self, a: String, b: String, now: String) -> Pending<(Room, bool)>;
    /// Stores a message unless (sender, txn id) is already stored (also within one commit: two
    /// sends with the same txn id store one message).
    fn send_message(&self, message: NewMessage) -> Pending<SendOutcome>;
    /// Replaces a message's parts (its sender only; not once deleted). Idempotent per (user,
    /// txn id): a repeat changes nothing and answers the message as it is now.
    fn edit_message(&self, edit: EditMessage) -> Pending<WriteResult<MessageState>>;
    /// Makes a message a tombstone (its sender only; again is a no-op). Idempotent per (user,
    /// txn id).
    fn delete_message(&self, delete: DeleteMessage) -> Pending<WriteResult<MessageState>>;
    /// Adds or removes a user's reaction (not on a deleted message; a no-op when already so).
    /// Idempotent per (user, txn id).
    fn react(&self, react: React) -> Pending<WriteResult<MessageState>>;
    /// Moves a user's read-up-to forward (never back). Idempotent per (user, txn id).
    fn read_receipt(&self, receipt: ReadReceipt) -> Pending<WriteResult<ReadState>>;

    /// A user's profile.
    fn user(&self, user_id: &str) -> Result<Option<User>, StoreError>;
    /// A room by id.
    fn room(&self, room_id: &str) -> Result<Option<Arc<Room>>, StoreError>;
    /// A room from memory when it is there (rooms never change once created), without blocking.
    fn cached_room(&self, room_id: &str) -> Option<Arc<Room>>;
    /// The rooms a user is a member of, oldest membership first.
    fn rooms_of(&self, user_id: &str) -> Result<Vec<Room>, StoreError>;
    /// A page of a room's history.
    fn history(&self, room_id: &str, query: HistoryQuery) -> Result<HistoryPage, StoreError>;
    /// The first `limit` messages of a room with ids above `after`, ascending.
    fn messages_after(
        &self,
        room_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError>;
    /// What is new for `user_id` since `since` (everything, newest `limit` per room, when `None`).
    fn sync(
        &self,
        user_id: &str,
        since: Option<SyncPosition>,
        limit: u32,
    ) -> Result<SyncBatch, StoreError>;
    /// The current position (newest message id, newest membership change).
    fn position(&self) -> Result<SyncPosition, StoreError>;
    /// Where the store stands: v1's position and the change stream's.
    fn head(&self) -> Result<Head, StoreError>;

    /// A page of a room's history in v2 state (tombstones included).
    fn history_v2(
        &self,
        room_id: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage<MessageState>, StoreError>;
    /// What happened in `user_id`'s rooms after position `since` (everything, the newest
    /// `limit` messages per room, when `None`), bounded by [`v2::SYNC_MAX_CHANGES`] changes
    /// to older messages. Rooms in `also` (the user's, where someone's typing changed) are in
    /// the answer even when nothing else happened there. A `since` ahead of the stream is
    /// answered with `pos` below it (the route refuses that).
    fn sync_v2(
        &self,
        user_id: &str,
        since: Option<u64>,
        limit: u32,
        also: &[String],
    ) -> Result<StreamBatch, StoreError>;
    /// `user_id`'s read state in each of `rooms`, and the stream position it is true at.
    fn read_states(
        &self,
        user_id: &str,
        rooms: &[String],
    ) -> Result<(u64, Vec<(String, ReadState)>), StoreError>;

    /// Reports every later commit to `sink` (one sink; set before serving).
    fn set_commit_sink(&self, sink: Arc<dyn CommitSink>);
    /// Tells the other instances on this database of an accepted typing notice (typing is not
    /// stored). Does nothing where there are no others (SQLite). Never blocks.
    fn publish_typing(&self, _notice: TypingNotice) {}
    /// Where the other instances' typing notices arrive (one sink; set before serving).
    fn set_typing_sink(&self, _sink: Arc<dyn TypingSink>) {}
    /// Tells the other instances on this database how many long-polls are parked on this one
    /// (a heartbeat: counts not repeated within a few seconds are forgotten). Does nothing where
    /// there are no others (SQLite). Never blocks.
    fn publish_load(&self, _parked: usize) {}
    /// Where the other instances' counts arrive (one sink; set before serving).
    fn set_load_sink(&self, _sink: Arc<dyn LoadSink>) {}
    /// How many reads may usefully run at once (the size of the backend's reader pool).
    fn read_parallelism(&self) -> usize;
    /// Flushes and closes the database; later calls fail with [`StoreError::Closed`].
    fn close(&self);
}
