//! Storage behind a small trait, so the routes do not know which database holds the data. SQLite
//! ([`sqlite::SqliteStore`]) is the embedded default; a PostgreSQL backend for deployments that
//! outgrow one machine implements the same trait. See docs/adr/0002-sqlite-storage-trait.md and
//! docs/adr/0012-server-group-commit-and-fan-out.md.
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

pub mod sqlite;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use chatsync_protocol::{Direction, Message, Part, Room, RoomSync, User};
use tokio::sync::oneshot;

use crate::sync_token::SyncPosition;

/// A storage failure. None of these is caused by client input: the routes validate first.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error (I/O, corruption, lock timeout).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
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
    /// The stored message (the earlier one for a repeated txn id).
    pub message: Message,
    /// False when (sender, txn id) was already stored and nothing new was written.
    pub created: bool,
}

/// A page of history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// Ascending by id.
    pub messages: Vec<Message>,
    /// Whether more messages exist beyond this page in the requested direction.
    pub has_more: bool,
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

/// One committed change that a sync can report.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new message (a repeated txn id is no change).
    Message {
        /// The stored message.
        message: Arc<Message>,
        /// The members of its room, sorted: the users it concerns.
        members: Arc<[String]>,
    },
    /// A new room: every member joined it.
    Room {
        /// The room (members sorted).
        room: Arc<Room>,
        /// Each member's membership sequence number, in the order of `room.member_ids`.
        seqs: Arc<[u64]>,
    },
}

/// The changes of one commit, in order, and the position after it.
#[derive(Debug, Clone)]
pub struct Committed {
    /// What the commit stored, in the order of their positions.
    pub changes: Vec<Change>,
    /// The position after the commit (newest message id, newest membership seq).
    pub position: SyncPosition,
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

    /// Reports every later commit to `sink` (one sink; set before serving).
    fn set_commit_sink(&self, sink: Arc<dyn CommitSink>);
    /// How many reads may usefully run at once (the size of the backend's reader pool).
    fn read_parallelism(&self) -> usize;
    /// Flushes and closes the database; later calls fail with [`StoreError::Closed`].
    fn close(&self);
}
