//! Storage behind a small trait, so the routes do not know which database holds the data. SQLite
//! ([`sqlite::SqliteStore`]) is the embedded default; a PostgreSQL backend for deployments that
//! outgrow one machine implements the same trait. See docs/adr/0002-sqlite-storage-trait.md.
//!
//! The trait is synchronous: the routes call it through `spawn_blocking`
//! ([`crate::app::AppState::db`]), which suits an embedded database and keeps the trait object
//! simple. Every method is one transaction, so each answer is a consistent snapshot.

pub mod sqlite;

use std::collections::BTreeMap;

use chatsync_protocol::{Direction, Message, Part, Room, RoomSync, User};

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
    /// Members of the room the message is in: the users to wake.
    pub member_ids: Vec<String>,
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

/// Storage of users, rooms, memberships and messages.
pub trait Store: Send + Sync + 'static {
    /// Creates or replaces a user's profile.
    fn put_user(&self, user: &User) -> Result<User, StoreError>;
    /// A user's profile.
    fn user(&self, user_id: &str) -> Result<Option<User>, StoreError>;
    /// Creates a room with these members (sorted, deduplicated by the caller).
    fn create_room(
        &self,
        name: Option<&str>,
        member_ids: &[String],
        now: &str,
    ) -> Result<Room, StoreError>;
    /// The one-to-one room of two different users, created if missing. Returns the room and
    /// whether it was created now.
    fn direct_room(&self, a: &str, b: &str, now: &str) -> Result<(Room, bool), StoreError>;
    /// A room by id.
    fn room(&self, room_id: &str) -> Result<Option<Room>, StoreError>;
    /// The rooms a user is a member of, oldest membership first.
    fn rooms_of(&self, user_id: &str) -> Result<Vec<Room>, StoreError>;
    /// Stores a message unless (sender, txn id) is already stored.
    fn send_message(&self, message: NewMessage) -> Result<SendOutcome, StoreError>;
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
    /// Flushes and closes the database; later calls fail with [`StoreError::Closed`].
    fn close(&self);
}
