//! The SQLite backend: one file, WAL journal, `synchronous=FULL` (an acknowledged message is on
//! disk before the client hears about it), schema versioned with `PRAGMA user_version` and migrated
//! forward at open.
//!
//! - **One writer** owns the only writing connection and takes writes from a queue. It commits
//!   whatever is queued together: one transaction and one fsync for all of it (group commit), then
//!   reports the commit's changes to the [`CommitSink`] and answers each write. A single writer
//!   commits ids in order, so a sync position never skips a message that commits later, and the
//!   sink sees commits in order. Idempotency holds inside a batch: the second send of a txn id
//!   finds the first in the same transaction. If a batch fails, each of its writes is retried in a
//!   transaction of its own, so one bad write fails alone.
//!   The writer runs as a blocking task of the caller's runtime while there is something queued
//!   (and ends when the queue is empty), not as a thread of its own: a runtime on tokio's paused
//!   clock (the core's tests run the server that way) then knows work is in progress and does not
//!   jump its clock meanwhile, exactly as for the reads. It takes one blocking thread at most.
//! - **A pool of reader connections** (WAL lets them read while the writer writes): each read is
//!   one transaction, a consistent snapshot.
//! - **Rooms are cached** in memory: they never change once created (no route adds or removes
//!   members), so a membership check costs no query.
//! - **The change stream** (protocol v2; [`stream`]): every change writes a row of `changes`
//!   whose `pos` (the rowid) SQLite assigns inside the transaction that commits it, so positions
//!   are in commit order and every snapshot a reader takes holds positions 1 to its head with
//!   none missing (docs/adr/0015-change-stream.md).
//!
//! Measured on the 2-core machine (BENCHMARKS.md, the reference server): with 32 senders, 12,700
//! sends/s with group commit, 1,000-2,400/s with one fsync per send.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chatsync_protocol::{Direction, Message, Part, Room, RoomSync, User};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use tokio::sync::oneshot;

use super::{
    Change, CommitSink, Committed, DeleteMessage, EditMessage, Head, HistoryPage, HistoryQuery,
    MessageState, NewMessage, Pending, React, ReadReceipt, ReadState, SendOutcome, Store,
    StoreError, StreamBatch, SyncBatch, WriteResult,
};
use crate::sync_token::SyncPosition;

mod stream;
#[cfg(test)]
mod stream_tests;

use stream::kind;

/// Schema migrations; index `i` moves the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // Version 1: users, rooms, memberships (with a global change sequence), messages.
    "CREATE TABLE users (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        avatar_url TEXT
    );
    CREATE TABLE rooms (
        id TEXT PRIMARY KEY,
        name TEXT,
        created_at TEXT NOT NULL,
        -- Newest message id in the room (0: none): lets a sync find changed rooms without a scan.
        last_message_id INTEGER NOT NULL DEFAULT 0,
        -- The two sorted user ids joined by a newline for one-to-one rooms, NULL otherwise.
        direct_key TEXT UNIQUE
    );
    CREATE TABLE members (
        -- Global membership-change sequence: the second half of a sync position.
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id TEXT NOT NULL REFERENCES rooms(id),
        user_id TEXT NOT NULL,
        UNIQUE (room_id, user_id)
    );
    CREATE INDEX members_by_user ON members (user_id, seq);
    CREATE TABLE messages (
        -- AUTOINCREMENT: ids strictly increase and are never reused.
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        room_id TEXT NOT NULL REFERENCES rooms(id),
        user_id TEXT NOT NULL,
        txn_id TEXT NOT NULL,
        parts TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (user_id, txn_id)
    );
    CREATE INDEX messages_by_room ON messages (room_id, id);",
    // Version 2 (protocol v2): the change stream, edits, deletions, reactions, receipts, and the
    // idempotency records of writes other than sends. In place: v1 data stays as it is; the
    // stream starts at position 0 (no v2 token existed before it).
    "ALTER TABLE messages ADD COLUMN edited_at TEXT;
    -- A tombstone: parts '[]', no reactions.
    ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
    -- The position of the room's newest change: lets a v2 sync find changed rooms without a scan.
    ALTER TABLE rooms ADD COLUMN last_pos INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE changes (
        -- The position: the rowid, assigned by SQLite inside the committing transaction (the
        -- largest so far plus one; rows are never deleted, so never reused).
        pos INTEGER PRIMARY KEY,
        room_id TEXT NOT NULL,
        -- 0 send, 1 edit, 2 deletion, 3 reaction added or removed, 4 receipt, 5 room created.
        kind INTEGER NOT NULL,
        -- The message sent, edited, deleted or reacted to; a receipt's read-up-to.
        message_id INTEGER,
        -- A reaction's or a receipt's user.
        user_id TEXT
    );
    -- The changes of a room other than sends (sends are found through messages_by_room).
    CREATE INDEX changes_by_room ON changes (room_id, pos) WHERE kind <> 0;
    CREATE TABLE reactions (
        message_id INTEGER NOT NULL REFERENCES messages(id),
        key TEXT NOT NULL,
        user_id TEXT NOT NULL,
        -- When it was given: keys are listed in the order first given.
        pos INTEGER NOT NULL,
        PRIMARY KEY (message_id, key, user_id)
    ) WITHOUT ROWID;
    CREATE TABLE receipts (
        room_id TEXT NOT NULL REFERENCES rooms(id),
        user_id TEXT NOT NULL,
        message_id INTEGER NOT NULL,
        pos INTEGER NOT NULL,
        PRIMARY KEY (room_id, user_id)
    ) WITHOUT ROWID;
    -- What a txn id of a write other than a send did, so a repeat changes nothing.
    CREATE TABLE writes (
        user_id TEXT NOT NULL,
        -- The kind of change (1 edit, 2 deletion, 3 reaction, 4 receipt): txn ids are per kind.
        kind INTEGER NOT NULL,
        txn_id TEXT NOT NULL,
        room_id TEXT NOT NULL,
        message_id INTEGER,
        PRIMARY KEY (user_id, kind, txn_id)
    ) WITHOUT ROWID;",
];

/// Columns of a message row, in the order [`message_from_row`] reads them.
const MESSAGE_COLUMNS: &str =
    "id, room_id, user_id, parts, created_at, updated_at, edited_at, deleted, txn_id";

/// Most rooms kept in memory; beyond, an arbitrary one is forgotten (and read again when needed).
const ROOM_CACHE_CAPACITY: usize = 100_000;

/// How the store runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Commit the writes queued together in one transaction (one fsync). Off: one transaction
    /// and one fsync per write, for measuring what group commit brings.
    pub group_commit: bool,
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Reader connections.
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            group_commit: true,
            max_batch: 1024,
            readers: 4,
        }
    }
}

/// A SQLite database file holding everything the server stores.
#[derive(Debug)]
pub struct SqliteStore {
    /// The writes waiting, and the writer's connection.
    writer: Arc<Writer>,
    readers: Readers,
    rooms: Arc<RoomCache>,
    sink: Arc<OnceLock<Arc<dyn CommitSink>>>,
}

impl std::fmt::Debug for dyn CommitSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitSink")
    }
}

/// The write queue and the writer's state. Std Mutexes and a Condvar: used from the routes for a
/// push, and from the writer (a blocking thread); never held across `.await`.
struct Writer {
    queue: Mutex<Queue>,
    /// Signalled when a writer run ends.
    idle: Condvar,
    /// The writing connection; `None` once closed. Locked by the one writer run at a time.
    state: Mutex<Option<WriterState>>,
    options: SqliteOptions,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

#[derive(Default)]
struct Queue {
    jobs: std::collections::VecDeque<Job>,
    /// A writer run is scheduled or running; it ends when it finds the queue empty.
    running: bool,
    closed: bool,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write waiting for the writer.
enum Job {
    Send(NewMessage, Reply<SendOutcome>),
    CreateRoom {
        name: Option<String>,
        members: Vec<String>,
        now: String,
        reply: Reply<Room>,
    },
    DirectRoom {
        a: String,
        b: String,
        now: String,
        reply: Reply<(Room, bool)>,
    },
    PutUser(User, Reply<User>),
    Edit(EditMessage, Reply<WriteResult<MessageState>>),
    Delete(DeleteMessage, Reply<WriteResult<MessageState>>),
    React(React, Reply<WriteResult<MessageState>>),
    Receipt(ReadReceipt, Reply<WriteResult<ReadState>>),
    Seed(Vec<NewMessage>, Reply<Vec<u64>>),
    /// Tests: the writer waits until this is answered (or dropped), then commits everything
    /// queued meanwhile together; makes a batch deterministic.
    #[cfg(test)]
    Hold(std::sync::mpsc::Receiver<()>),
}

/// What a write produced, before its commit.
enum Done {
    Send(SendOutcome),
    Room(Room),
    Direct(Room, bool),
    User(User),
    Message(WriteResult<MessageState>),
    Read(WriteResult<ReadState>),
    Seed(Vec<u64>),
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `path`, with default options.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if missing) and migrates the database at `path`.
    pub fn open_with(path: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        let mut conn = open_connection(path)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "SQLite did not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        let head = current_head(&conn)?;
        let mut readers = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            let reader = open_connection(path)?;
            reader.pragma_update(None, "query_only", "ON")?;
            readers.push(reader);
        }
        let rooms = Arc::new(RoomCache::default());
        let sink: Arc<OnceLock<Arc<dyn CommitSink>>> = Arc::new(OnceLock::new());
        let state = WriterState {
            conn,
            head,
            rooms: Arc::clone(&rooms),
            sink: Arc::clone(&sink),
        };
        Ok(SqliteStore {
            writer: Arc::new(Writer {
                queue: Mutex::new(Queue::default()),
                idle: Condvar::new(),
                state: Mutex::new(Some(state)),
                options,
            }),
            readers: Readers::new(readers),
            rooms,
            sink,
        })
    }

    /// Queues a write (starting a writer run if none is on), or answers it with
    /// [`StoreError::Closed`].
    fn submit<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Pending<T> {
        let (reply, pending) = Pending::channel();
        self.writer.push(job(reply));
        pending
    }

    /// For benchmarks and tests only (no route calls it): stores `messages` in one transaction,
    /// in order, with ids from the same sequence as [`Store::send_message`], so a large history
    /// is seeded in seconds instead of one fsync per message. The rooms must exist. Returns the
    /// assigned ids. Blocks: call it off the async threads.
    pub fn seed_messages_for_benches(
        &self,
        messages: &[NewMessage],
    ) -> Result<Vec<u64>, StoreError> {
        self.submit(|reply| Job::Seed(messages.to_vec(), reply))
            .wait()
    }
}

fn open_connection(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Rooms by id. A std RwLock: lookups from any thread, never held across `.await`.
#[derive(Debug, Default)]
struct RoomCache {
    rooms: RwLock<HashMap<String, CachedRoom>>,
}

/// A room with its member list as one shared slice: every message of the room reports that same
/// list, so the feed checks a user against it once per run of messages.
type CachedRoom = (Arc<Room>, Arc<[String]>);

impl RoomCache {
    fn get(&self, id: &str) -> Option<Arc<Room>> {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|(room, _)| Arc::clone(room))
    }

    fn members(&self, id: &str) -> Option<Arc<[String]>> {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|(_, members)| Arc::clone(members))
    }

    fn insert(&self, room: Arc<Room>) {
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        if rooms.len() >= ROOM_CACHE_CAPACITY && !rooms.contains_key(&room.id) {
            if let Some(old) = rooms.keys().next().cloned() {
                rooms.remove(&old);
            }
        }
        let members = room.member_ids.clone().into();
        rooms.insert(room.id.clone(), (room, members));
    }
}

/// The reader connections. A std Mutex and Condvar: readers are used from blocking threads only.
#[derive(Debug)]
struct Readers {
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
    closed: AtomicBool,
    size: usize,
}

impl Readers {
    fn new(conns: Vec<Connection>) -> Readers {
        Readers {
            size: conns.len(),
            idle: Mutex::new(conns),
            returned: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `f` on a reader connection (waiting for one if all are busy).
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if self.closed.load(Ordering::Acquire) {
                    return Err(StoreError::Closed);
                }
                if let Some(conn) = idle.pop() {
                    break conn;
                }
                idle = self.returned.wait(idle).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = f(&mut conn);
        if !self.closed.load(Ordering::Acquire) {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
            self.returned.notify_one();
        }
        result
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.returned.notify_all();
    }
}

impl Writer {
    fn lock_queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(self: &Arc<Self>, job: Job) {
        let mut queue = self.lock_queue();
        if queue.closed {
            drop(queue);
            answer(job, Err(StoreError::Closed));
            return;
        }
        queue.jobs.push_back(job);
        if queue.running {
            return;
        }
        queue.running = true;
        drop(queue);
        let run = WriterRun {
            writer: Arc::clone(self),
            finished: false,
        };
        // On the runtime's blocking pool when there is a runtime (see the module documentation),
        // else on a thread of its own (tools and tests without a runtime).
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || run.run())),
            Err(_) => drop(std::thread::spawn(move || run.run())),
        }
    }

    /// The next batch, or `None` (and the run ends) when the queue is empty.
    fn next_batch(&self) -> Option<Vec<Job>> {
        let mut queue = self.lock_queue();
        #[cfg(test)]
        if matches!(queue.jobs.front(), Some(Job::Hold(_))) {
            let Some(Job::Hold(release)) = queue.jobs.pop_front() else {
                unreachable!()
            };
            drop(queue);
            let _ = release.recv();
            queue = self.lock_queue();
        }
        if queue.jobs.is_empty() {
            queue.running = false;
            self.idle.notify_all();
            return None;
        }
        let take = if self.options.group_commit {
            self.options.max_batch.max(1)
        } else {
            1
        };
        let n = queue.jobs.len().min(take);
        Some(queue.jobs.drain(..n).collect())
    }

    /// Commits everything queued, batch by batch, until the queue is empty.
    fn drain(&self) {
        while let Some(batch) = self.next_batch() {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match state.as_mut() {
                Some(state) => state.commit(batch),
                None => batch
                    .into_iter()
                    .for_each(|job| answer(job, Err(StoreError::Closed))),
            }
        }
    }

    /// Refuses new writes, lets the writes queued before finish, then closes the connection.
    fn close(&self) {
        let mut queue = self.lock_queue();
        queue.closed = true;
        while queue.running {
            queue = self.idle.wait(queue).unwrap_or_else(|e| e.into_inner());
        }
        drop(queue);
        // A run that was never started (its runtime shut down first) left its writes here.
        self.drain();
        if let Some(state) = self.state.lock().unwrap_or_else(|e| e.into_inner()).take() {
            // Fold the WAL back into the main file so the next open starts clean; best effort.
            let _ = state.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
            if let Err((_, e)) = state.conn.close() {
                tracing::warn!(error = %e, "closing the database failed");
            }
        }
    }
}

/// One writer run: drains the queue. If it is dropped without running (its runtime shut down
/// first), it marks the run over, so [`Writer::close`] commits what it left.
struct WriterRun {
    writer: Arc<Writer>,
    /// Set once the run found the queue empty (and cleared `running` itself): after that,
    /// `running` belongs to the next run.
    finished: bool,
}

impl WriterRun {
    fn run(mut self) {
        self.writer.drain();
        self.finished = true;
    }
}

impl Drop for WriterRun {
    fn drop(&mut self) {
        if !self.finished {
            let mut queue = self.writer.lock_queue();
            queue.running = false;
            self.writer.idle.notify_all();
        }
    }
}

/// The writer's connection and what it tracks.
struct WriterState {
    conn: Connection,
    /// Where the store stands after the last commit.
    head: Head,
    rooms: Arc<RoomCache>,
    sink: Arc<OnceLock<Arc<dyn CommitSink>>>,
}

impl WriterState {
    /// Commits `batch` in one transaction; if that fails, each write in its own.
    fn commit(&mut self, batch: Vec<Job>) {
        match self.try_commit(&batch) {
            Ok((dones, commit)) => {
                let sink = self.sink.get().filter(|_| !commit.changes.is_empty());
                if let Some(sink) = sink {
                    sink.committed(commit);
                }
                for (job, done) in batch.into_iter().zip(dones) {
                    answer(job, Ok(done));
                }
                if let Some(sink) = sink {
                    sink.answered();
                }
            }
            Err(e) if batch.len() == 1 => {
                tracing::error!(error = %e, "a write failed");
                if let Some(job) = batch.into_iter().next() {
                    answer(job, Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, writes = batch.len(), "a group commit failed; retrying its writes one by one");
                for job in batch {
                    self.commit(vec![job]);
                }
            }
        }
    }

    fn try_commit(&mut self, batch: &[Job]) -> Result<(Vec<Done>, Committed), StoreError> {
        let mut position = self.head;
        let mut changes = Vec::new();
        let mut fresh_rooms = Vec::new();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut dones = Vec::with_capacity(batch.len());
        for job in batch {
            let done = match job {
                Job::Send(new, _) => {
                    Done::Send(send(&tx, new, &self.rooms, &mut position, &mut changes)?)
                }
                Job::CreateRoom {
                    name, members, now, ..
                } => {
                    let room = insert_room(
                        &tx,
                        name.as_deref(),
                        members,
                        now,
                        None,
                        &mut position,
                        &mut changes,
                    )?;
                    fresh_rooms.push(room.clone());
                    Done::Room(room)
                }
                Job::DirectRoom { a, b, now, .. } => {
                    let (room, created) = direct_room(&tx, a, b, now, &mut position, &mut changes)?;
                    if created {
                        fresh_rooms.push(room.clone());
                    }
                    Done::Direct(room, created)
                }
                Job::Edit(edit, _) => Done::Message(stream::edit(
                    &tx,
                    edit,
                    &self.rooms,
                    &mut position,
                    &mut changes,
                )?),
                Job::Delete(delete, _) => Done::Message(stream::delete(
                    &tx,
                    delete,
                    &self.rooms,
                    &mut position,
                    &mut changes,
                )?),
                Job::React(react, _) => Done::Message(stream::react(
                    &tx,
                    react,
                    &self.rooms,
                    &mut position,
                    &mut changes,
                )?),
                Job::Receipt(receipt, _) => Done::Read(stream::receipt(
                    &tx,
                    receipt,
                    &self.rooms,
                    &mut position,
                    &mut changes,
                )?),
                Job::PutUser(user, _) => {
                    tx.prepare_cached(
                        "INSERT INTO users (id, name, avatar_url) VALUES (?1, ?2, ?3)
                         ON CONFLICT (id) DO UPDATE SET name = excluded.name, avatar_url = excluded.avatar_url",
                    )?
                    .execute(params![user.id, user.name, user.avatar_url])?;
                    Done::User(user.clone())
                }
                Job::Seed(messages, _) => {
                    let mut ids = Vec::with_capacity(messages.len());
                    for new in messages {
                        ids.push(
                            send(&tx, new, &self.rooms, &mut position, &mut changes)?
                                .message
                                .id,
                        );
                    }
                    Done::Seed(ids)
                }
                #[cfg(test)]
                Job::Hold(_) => unreachable!("Hold never joins a batch"),
            };
            dones.push(done);
        }
        tx.commit()?;
        // Only now: a room of a transaction that failed must not be cached.
        for room in fresh_rooms {
            self.rooms.insert(Arc::new(room));
        }
        self.head = position;
        Ok((
            dones,
            Committed {
                changes,
                head: position,
            },
        ))
    }
}

fn answer(job: Job, result: Result<Done, StoreError>) {
    // A dropped receiver (the client went away) is fine: the write is stored either way.
    match (job, result) {
        (Job::Send(_, reply), Ok(Done::Send(o))) => drop(reply.send(Ok(o))),
        (Job::CreateRoom { reply, .. }, Ok(Done::Room(r))) => drop(reply.send(Ok(r))),
        (Job::DirectRoom { reply, .. }, Ok(Done::Direct(r, c))) => drop(reply.send(Ok((r, c)))),
        (Job::PutUser(_, reply), Ok(Done::User(u))) => drop(reply.send(Ok(u))),
        (Job::Seed(_, reply), Ok(Done::Seed(ids))) => drop(reply.send(Ok(ids))),
        (Job::Edit(_, reply), Ok(Done::Message(m))) => drop(reply.send(Ok(m))),
        (Job::Delete(_, reply), Ok(Done::Message(m))) => drop(reply.send(Ok(m))),
        (Job::React(_, reply), Ok(Done::Message(m))) => drop(reply.send(Ok(m))),
        (Job::Receipt(_, reply), Ok(Done::Read(r))) => drop(reply.send(Ok(r))),
        (Job::Edit(_, reply), Err(e)) => drop(reply.send(Err(e))),
        (Job::Delete(_, reply), Err(e)) => drop(reply.send(Err(e))),
        (Job::React(_, reply), Err(e)) => drop(reply.send(Err(e))),
        (Job::Receipt(_, reply), Err(e)) => drop(reply.send(Err(e))),
        (Job::Send(_, reply), Err(e)) => drop(reply.send(Err(e))),
        (Job::CreateRoom { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
        (Job::DirectRoom { reply, .. }, Err(e)) => drop(reply.send(Err(e))),
        (Job::PutUser(_, reply), Err(e)) => drop(reply.send(Err(e))),
        (Job::Seed(_, reply), Err(e)) => drop(reply.send(Err(e))),
        #[cfg(test)]
        (Job::Hold(_), _) => {}
        _ => unreachable!("every write's outcome has its kind"),
    }
}

/// Stores one message unless (sender, txn id) is stored already (also earlier in this
/// transaction).
fn send(
    tx: &Transaction<'_>,
    new: &NewMessage,
    rooms: &RoomCache,
    position: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<SendOutcome, StoreError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = ?1 AND txn_id = ?2");
    if let Some(message) = query_states(tx, &sql, params![new.sender, new.txn_id], true)?
        .into_iter()
        .next()
    {
        return Ok(SendOutcome {
            message,
            created: false,
        });
    }
    let parts =
        serde_json::to_string(&new.parts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO messages (room_id, user_id, txn_id, parts, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![new.room_id, new.sender, new.txn_id, parts, new.now])?;
    let id = tx.last_insert_rowid();
    let pos = stream::record_change(
        tx,
        &new.room_id,
        kind::SEND,
        Some(id as u64),
        None,
        position,
    )?;
    tx.prepare_cached("UPDATE rooms SET last_message_id = ?1, last_pos = ?2 WHERE id = ?3")?
        .execute(params![id, to_i64(pos), new.room_id])?;
    let message = MessageState {
        id: id as u64,
        user_id: new.sender.clone(),
        room_id: new.room_id.clone(),
        parts: new.parts.clone(),
        created_at: new.now.clone(),
        updated_at: new.now.clone(),
        edited_at: None,
        deleted: false,
        reactions: Vec::new(),
        txn_id: new.txn_id.clone(),
    };
    let members = members_of(tx, rooms, &new.room_id)?;
    position.v1.message_id = message.id;
    changes.push(Change::Message {
        pos,
        message: Arc::new(message.clone()),
        members,
    });
    Ok(SendOutcome {
        message,
        created: true,
    })
}

/// The members of a room, sorted: from the cache, else the database.
fn members_of(
    tx: &Connection,
    rooms: &RoomCache,
    room_id: &str,
) -> Result<Arc<[String]>, StoreError> {
    Ok(match rooms.members(room_id) {
        Some(members) => members,
        None => room_members(tx, room_id)?.into(),
    })
}

fn direct_room(
    tx: &Transaction<'_>,
    a: &str,
    b: &str,
    now: &str,
    position: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<(Room, bool), StoreError> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let key = format!("{lo}\n{hi}");
    let existing: Option<String> = tx
        .prepare_cached("SELECT id FROM rooms WHERE direct_key = ?1")?
        .query_row([&key], |row| row.get(0))
        .optional()?;
    match existing {
        Some(id) => {
            let room = load_room(tx, &id)?
                .ok_or_else(|| StoreError::Corrupt(format!("room {id} vanished")))?;
            Ok((room, false))
        }
        None => Ok((
            insert_room(
                tx,
                None,
                &[lo.to_owned(), hi.to_owned()],
                now,
                Some(&key),
                position,
                changes,
            )?,
            true,
        )),
    }
}

/// Brings the schema up to the newest version, one transaction per step.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", version as i64 + 1)?;
        tx.commit()?;
    }
    Ok(())
}

fn to_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(MessageState, String)> {
    let id: i64 = row.get(0)?;
    let parts: String = row.get(3)?;
    Ok((
        MessageState {
            id: id as u64,
            room_id: row.get(1)?,
            user_id: row.get(2)?,
            parts: Vec::new(),
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
            edited_at: row.get(6)?,
            deleted: row.get(7)?,
            reactions: Vec::new(),
            txn_id: row.get(8)?,
        },
        parts,
    ))
}

/// Runs a query of [`MESSAGE_COLUMNS`] and decodes the parts column; with `reactions`, loads
/// each message's reactions too (v1 answers do not show them).
fn query_states(
    tx: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    reactions: bool,
) -> Result<Vec<MessageState>, StoreError> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map(params, message_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        let (mut message, parts) = row?;
        message.parts = serde_json::from_str::<Vec<Part>>(&parts)
            .map_err(|e| StoreError::Corrupt(format!("parts of message {}: {e}", message.id)))?;
        out.push(message);
    }
    drop(stmt);
    if reactions {
        for message in &mut out {
            message.reactions = stream::reactions_of(tx, message.id)?;
        }
    }
    Ok(out)
}

/// Runs a query of [`MESSAGE_COLUMNS`] for v1: the messages' v1 shape.
fn query_messages(
    tx: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Message>, StoreError> {
    Ok(query_states(tx, sql, params, false)?
        .iter()
        .map(MessageState::v1)
        .collect())
}

fn room_members(tx: &Connection, room_id: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt =
        tx.prepare_cached("SELECT user_id FROM members WHERE room_id = ?1 ORDER BY user_id")?;
    let members = stmt
        .query_map([room_id], |row| row.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(members)
}

fn load_room(tx: &Connection, room_id: &str) -> Result<Option<Room>, StoreError> {
    let row = tx
        .prepare_cached("SELECT id, name, created_at FROM rooms WHERE id = ?1")?
        .query_row([room_id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    match row {
        None => Ok(None),
        Some((id, name, created_at)) => {
            let member_ids = room_members(tx, &id)?;
            Ok(Some(Room {
                id,
                name,
                member_ids,
                created_at,
            }))
        }
    }
}

fn insert_room(
    tx: &Transaction<'_>,
    name: Option<&str>,
    member_ids: &[String],
    now: &str,
    direct_key: Option<&str>,
    position: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<Room, StoreError> {
    let id = format!("r{}", uuid::Uuid::new_v4().simple());
    tx.prepare_cached(
        "INSERT INTO rooms (id, name, created_at, direct_key) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, name, now, direct_key])?;
    let mut members: Vec<String> = member_ids.to_vec();
    members.sort();
    members.dedup();
    let mut insert = tx.prepare_cached("INSERT INTO members (room_id, user_id) VALUES (?1, ?2)")?;
    let mut seqs = Vec::with_capacity(members.len());
    for member in &members {
        insert.execute(params![id, member])?;
        seqs.push(tx.last_insert_rowid() as u64);
    }
    let room = Room {
        id,
        name: name.map(str::to_owned),
        member_ids: members,
        created_at: now.to_owned(),
    };
    if let Some(last) = seqs.last() {
        position.v1.membership_seq = *last;
    }
    let pos = stream::record_change(tx, &room.id, kind::ROOM, None, None, position)?;
    tx.prepare_cached("UPDATE rooms SET last_pos = ?1 WHERE id = ?2")?
        .execute(params![to_i64(pos), room.id])?;
    changes.push(Change::Room {
        pos,
        room: Arc::new(room.clone()),
        seqs: seqs.into(),
    });
    Ok(room)
}

fn current_position(tx: &Connection) -> Result<SyncPosition, StoreError> {
    let (m, j): (i64, i64) = tx.query_row(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages), (SELECT COALESCE(MAX(seq), 0) FROM members)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(SyncPosition {
        message_id: m as u64,
        membership_seq: j as u64,
    })
}

/// v1's position and the change stream's, in one snapshot.
fn current_head(tx: &Connection) -> Result<Head, StoreError> {
    Ok(Head {
        v1: current_position(tx)?,
        pos: stream::stream_head(tx)?,
    })
}

/// The newest `limit` messages of a room with `after < id <= upto`, ascending, and whether older
/// ones in that range were left out.
fn newest_in_range(
    tx: &Connection,
    room_id: &str,
    after: u64,
    upto: u64,
    limit: u32,
) -> Result<RoomSync, StoreError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 AND id <= ?3 AND deleted = 0 ORDER BY id DESC LIMIT ?4"
    );
    let mut messages = query_messages(
        tx,
        &sql,
        params![room_id, to_i64(after), to_i64(upto), limit as i64 + 1],
    )?;
    let limited = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    messages.reverse();
    Ok(RoomSync { messages, limited })
}

impl Store for SqliteStore {
    fn put_user(&self, user: User) -> Pending<User> {
        self.submit(|reply| Job::PutUser(user, reply))
    }

    fn create_room(
        &self,
        name: Option<String>,
        member_ids: Vec<String>,
        now: String,
    ) -> Pending<Room> {
        self.submit(|reply| Job::CreateRoom {
            name,
            members: member_ids,
            now,
            reply,
        })
    }

    fn direct_room(&self, a: String, b: String, now: String) -> Pending<(Room, bool)> {
        self.submit(|reply| Job::DirectRoom { a, b, now, reply })
    }

    fn send_message(&self, message: NewMessage) -> Pending<SendOutcome> {
        self.submit(|reply| Job::Send(message, reply))
    }

    fn edit_message(&self, edit: EditMessage) -> Pending<WriteResult<MessageState>> {
        self.submit(|reply| Job::Edit(edit, reply))
    }

    fn delete_message(&self, delete: DeleteMessage) -> Pending<WriteResult<MessageState>> {
        self.submit(|reply| Job::Delete(delete, reply))
    }

    fn react(&self, react: React) -> Pending<WriteResult<MessageState>> {
        self.submit(|reply| Job::React(react, reply))
    }

    fn read_receipt(&self, receipt: ReadReceipt) -> Pending<WriteResult<ReadState>> {
        self.submit(|reply| Job::Receipt(receipt, reply))
    }

    fn user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.readers.with(|conn| {
            Ok(conn
                .prepare_cached("SELECT id, name, avatar_url FROM users WHERE id = ?1")?
                .query_row([user_id], |row| {
                    Ok(User {
                        id: row.get(0)?,
                        name: row.get(1)?,
                        avatar_url: row.get(2)?,
                    })
                })
                .optional()?)
        })
    }

    fn room(&self, room_id: &str) -> Result<Option<Arc<Room>>, StoreError> {
        if let Some(room) = self.rooms.get(room_id) {
            return Ok(Some(room));
        }
        let room = self.readers.with(|conn| {
            let tx = conn.transaction()?;
            load_room(&tx, room_id)
        })?;
        Ok(room.map(|room| {
            let room = Arc::new(room);
            self.rooms.insert(Arc::clone(&room));
            room
        }))
    }

    fn cached_room(&self, room_id: &str) -> Option<Arc<Room>> {
        self.rooms.get(room_id)
    }

    fn rooms_of(&self, user_id: &str) -> Result<Vec<Room>, StoreError> {
        self.readers.with(|conn| {
            let tx = conn.transaction()?;
            let ids = tx
                .prepare_cached("SELECT room_id FROM members WHERE user_id = ?1 ORDER BY seq")?
                .query_map([user_id], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut rooms = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(room) = load_room(&tx, &id)? {
                    rooms.push(room);
                }
            }
            Ok(rooms)
        })
    }

    fn history(&self, room_id: &str, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        let fetch = query.limit as i64 + 1;
        self.readers.with(|conn| {
            let mut messages = match query.direction {
                Direction::Older => {
                    let before = query.initial_id.map_or(i64::MAX, to_i64);
                    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id < ?2 AND deleted = 0 ORDER BY id DESC LIMIT ?3");
                    query_messages(conn, &sql, params![room_id, before, fetch])?
                }
                Direction::Newer => {
                    let after = query.initial_id.map_or(0, to_i64);
                    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 AND deleted = 0 ORDER BY id ASC LIMIT ?3");
                    query_messages(conn, &sql, params![room_id, after, fetch])?
                }
            };
            let has_more = messages.len() > query.limit as usize;
            messages.truncate(query.limit as usize);
            if query.direction == Direction::Older {
                messages.reverse();
            }
            Ok(HistoryPage { messages, has_more })
        })
    }

    fn messages_after(
        &self,
        room_id: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        self.readers.with(|conn| {
            let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 AND deleted = 0 ORDER BY id ASC LIMIT ?3");
            query_messages(conn, &sql, params![room_id, to_i64(after), limit as i64])
        })
    }

    fn sync(
        &self,
        user_id: &str,
        since: Option<SyncPosition>,
        limit: u32,
    ) -> Result<SyncBatch, StoreError> {
        self.readers.with(|conn| {
            let tx = conn.transaction()?;
            let position = current_position(&tx)?;
            let mut rooms = BTreeMap::new();
            match since {
                None => {
                    let ids = tx
                        .prepare_cached("SELECT room_id FROM members WHERE user_id = ?1 AND seq <= ?2")?
                        .query_map(params![user_id, to_i64(position.membership_seq)], |row| row.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()?;
                    for id in ids {
                        let room = newest_in_range(&tx, &id, 0, position.message_id, limit)?;
                        rooms.insert(id, room);
                    }
                }
                Some(since) => {
                    // Rooms joined since the token: reported like an initial sync of that room.
                    let joined = tx
                        .prepare_cached("SELECT room_id FROM members WHERE user_id = ?1 AND seq > ?2 AND seq <= ?3")?
                        .query_map(params![user_id, to_i64(since.membership_seq), to_i64(position.membership_seq)], |row| {
                            row.get::<_, String>(0)
                        })?
                        .collect::<Result<Vec<_>, _>>()?;
                    for id in joined {
                        let room = newest_in_range(&tx, &id, 0, position.message_id, limit)?;
                        rooms.insert(id, room);
                    }
                    let changed = tx
                        .prepare_cached(
                            "SELECT r.id FROM members m JOIN rooms r ON r.id = m.room_id
                             WHERE m.user_id = ?1 AND m.seq <= ?2 AND r.last_message_id > ?3",
                        )?
                        .query_map(params![user_id, to_i64(since.membership_seq), to_i64(since.message_id)], |row| {
                            row.get::<_, String>(0)
                        })?
                        .collect::<Result<Vec<_>, _>>()?;
                    for id in changed {
                        let room = newest_in_range(&tx, &id, since.message_id, position.message_id, limit)?;
                        if !room.messages.is_empty() {
                            rooms.insert(id, room);
                        }
                    }
                }
            }
            Ok(SyncBatch { position, rooms })
        })
    }

    fn position(&self) -> Result<SyncPosition, StoreError> {
        self.readers.with(|conn| current_position(conn))
    }

    fn head(&self) -> Result<Head, StoreError> {
        self.readers.with(|conn| {
            let tx = conn.transaction()?;
            current_head(&tx)
        })
    }

    fn history_v2(
        &self,
        room_id: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage<MessageState>, StoreError> {
        self.readers.with(|conn| {
            let tx = conn.transaction()?;
            stream::history(&tx, room_id, query)
        })
    }

    fn sync_v2(
        &self,
        user_id: &str,
        since: Option<u64>,
        limit: u32,
        also: &[String],
    ) -> Result<StreamBatch, StoreError> {
        self.readers.with(|conn| {
            let tx = conn.transaction()?;
            stream::sync(&tx, user_id, since, limit, also)
        })
    }

    fn read_states(
        &self,
        user_id: &str,
        rooms: &[String],
    ) -> Result<(u64, Vec<(String, ReadState)>), StoreError> {
        self.readers.with(|conn| {
            let tx = conn.transaction()?;
            let pos = stream::stream_head(&tx)?;
            let states = rooms
                .iter()
                .map(|room| Ok((room.clone(), stream::read_state(&tx, room, user_id)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((pos, states))
        })
    }

    fn set_commit_sink(&self, sink: Arc<dyn CommitSink>) {
        if self.sink.set(sink).is_err() {
            tracing::warn!("a commit sink was set twice; the first one stays");
        }
    }

    fn read_parallelism(&self) -> usize {
        self.readers.size
    }

    fn close(&self) {
        self.readers.close();
        self.writer.close();
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    pub(super) fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    pub(super) fn new_message(room: &str, sender: &str, txn: &str) -> NewMessage {
        NewMessage {
            room_id: room.into(),
            sender: sender.into(),
            txn_id: txn.into(),
            // Quotes, a backslash and non-ASCII: what JSON must escape or keep.
            parts: vec![Part::text(format!("{txn} \"q\" \\ é 🎉"))],
            now: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    pub(super) fn send(store: &SqliteStore, room: &str, sender: &str, txn: &str) -> SendOutcome {
        store
            .send_message(new_message(room, sender, txn))
            .wait()
            .unwrap()
    }

    pub(super) fn room(store: &SqliteStore, name: Option<&str>, members: &[&str]) -> Room {
        let members = members.iter().map(|m| m.to_string()).collect();
        store
            .create_room(name.map(str::to_owned), members, "t".into())
            .wait()
            .unwrap()
    }

    /// Holds the writer: everything queued until the returned sender is dropped is committed in
    /// one transaction.
    pub(super) fn hold(store: &SqliteStore) -> mpsc::Sender<()> {
        let (release, held) = mpsc::channel();
        store.writer.push(Job::Hold(held));
        release
    }

    /// Counts the commits the store reports.
    #[derive(Default)]
    pub(super) struct Commits(pub(super) Mutex<Vec<Committed>>);

    impl CommitSink for Commits {
        fn committed(&self, commit: Committed) {
            self.0.lock().unwrap().push(commit);
        }
    }

    #[test]
    fn ids_increase_and_resend_is_idempotent() {
        let (_d, s) = store();
        let room = room(&s, None, &["alice", "bob"]);
        let a = send(&s, &room.id, "alice", "t1");
        let b = send(&s, &room.id, "alice", "t2");
        let again = send(&s, &room.id, "alice", "t1");
        assert!(a.created && b.created && !again.created);
        assert!(b.message.id > a.message.id);
        assert_eq!(again.message, a.message);
    }

    #[test]
    fn sync_reports_new_rooms_and_new_messages_only() {
        let (_d, s) = store();
        let r1 = room(&s, None, &["alice"]);
        send(&s, &r1.id, "alice", "a");
        let first = s.sync("alice", None, 10).unwrap();
        assert_eq!(first.rooms[&r1.id].messages.len(), 1);
        let nothing = s.sync("alice", Some(first.position), 10).unwrap();
        assert!(nothing.rooms.is_empty());
        let r2 = room(&s, None, &["alice", "bob"]);
        let joined = s.sync("alice", Some(first.position), 10).unwrap();
        assert_eq!(joined.rooms.keys().collect::<Vec<_>>(), vec![&r2.id]);
        assert!(joined.rooms[&r2.id].messages.is_empty());
    }

    #[test]
    fn reopening_keeps_data_and_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let room = {
            let s = SqliteStore::open(&path).unwrap();
            let room = room(&s, Some("x"), &["alice"]);
            send(&s, &room.id, "alice", "a");
            s.close();
            assert!(matches!(s.user("alice"), Err(StoreError::Closed)));
            assert!(matches!(
                s.send_message(new_message(&room.id, "alice", "b")).wait(),
                Err(StoreError::Closed)
            ));
            room
        };
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.room(&room.id).unwrap().as_deref(), Some(&room));
        assert_eq!(s.position().unwrap().message_id, 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    /// Random sends, history pages and syncs agree with a plain in-memory model, across a reopen.
    #[test]
    fn history_and_sync_agree_with_a_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut rng = fastrand::Rng::with_seed(7);
        let mut store = SqliteStore::open(&path).unwrap();
        let rooms: Vec<String> = (0..3).map(|_| room(&store, None, &["u"]).id).collect();
        // The model: every message id per room, ascending.
        let mut model: BTreeMap<String, Vec<u64>> =
            rooms.iter().map(|r| (r.clone(), Vec::new())).collect();
        let mut positions = vec![store.sync("u", None, 1).unwrap().position];
        for step in 0..400 {
            if step == 200 {
                store.close();
                store = SqliteStore::open(&path).unwrap();
            }
            let room = &rooms[rng.usize(..rooms.len())];
            match rng.u8(..4) {
                0 | 1 => {
                    let id = send(&store, room, "u", &format!("t{step}")).message.id;
                    model.get_mut(room).unwrap().push(id);
                    positions.push(store.position().unwrap());
                }
                2 => {
                    let all = &model[room];
                    let limit = rng.u32(1..6);
                    let initial_id = if rng.bool() || all.is_empty() {
                        None
                    } else {
                        Some(all[rng.usize(..all.len())] + rng.u64(0..2))
                    };
                    let direction = if rng.bool() {
                        Direction::Older
                    } else {
                        Direction::Newer
                    };
                    let page = store
                        .history(
                            room,
                            HistoryQuery {
                                initial_id,
                                direction,
                                limit,
                            },
                        )
                        .unwrap();
                    let candidates: Vec<u64> = match direction {
                        Direction::Older => all
                            .iter()
                            .copied()
                            .filter(|id| initial_id.is_none_or(|i| *id < i))
                            .collect(),
                        Direction::Newer => all
                            .iter()
                            .copied()
                            .filter(|id| initial_id.is_none_or(|i| *id > i))
                            .collect(),
                    };
                    let expected: Vec<u64> = match direction {
                        Direction::Older => {
                            candidates[candidates.len().saturating_sub(limit as usize)..].to_vec()
                        }
                        Direction::Newer => {
                            candidates.iter().copied().take(limit as usize).collect()
                        }
                    };
                    let got: Vec<u64> = page.messages.iter().map(|m| m.id).collect();
                    assert_eq!(
                        got, expected,
                        "{direction:?} from {initial_id:?} limit {limit}"
                    );
                    assert_eq!(page.has_more, candidates.len() > limit as usize);
                }
                _ => {
                    let since = positions[rng.usize(..positions.len())];
                    let limit = rng.u32(1..6);
                    let batch = store.sync("u", Some(since), limit).unwrap();
                    for (room, all) in &model {
                        let new: Vec<u64> = all
                            .iter()
                            .copied()
                            .filter(|id| *id > since.message_id)
                            .collect();
                        match batch.rooms.get(room) {
                            None => assert!(new.is_empty()),
                            Some(sync) => {
                                let got: Vec<u64> = sync.messages.iter().map(|m| m.id).collect();
                                assert_eq!(
                                    got,
                                    new[new.len().saturating_sub(limit as usize)..].to_vec()
                                );
                                assert_eq!(sync.limited, new.len() > limit as usize);
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn concurrent_sends_share_one_commit_and_all_land_with_distinct_ids() {
        let (_d, s) = store();
        let commits = Arc::new(Commits::default());
        s.set_commit_sink(commits.clone());
        let r = room(&s, None, &["alice", "bob"]);
        let release = hold(&s);
        // 200 sends queued while the writer is held, as 200 concurrent requests would be.
        let pending: Vec<_> = (0..200)
            .map(|i| {
                s.send_message(new_message(
                    &r.id,
                    if i % 2 == 0 { "alice" } else { "bob" },
                    &format!("t{i}"),
                ))
            })
            .collect();
        drop(release);
        let outcomes: Vec<SendOutcome> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
        assert!(outcomes.iter().all(|o| o.created));
        let mut ids: Vec<u64> = outcomes.iter().map(|o| o.message.id).collect();
        // Answered in the order they were queued, ids in that order too.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        ids.dedup();
        assert_eq!(ids.len(), 200);
        let commits = commits.0.lock().unwrap();
        // The room's commit, then one commit for all 200 sends.
        assert_eq!(commits.len(), 2, "one transaction for the batch");
        assert_eq!(commits[1].changes.len(), 200);
        assert_eq!(commits[1].head.v1.message_id, *ids.last().unwrap());
        assert_eq!(s.head().unwrap(), commits[1].head);
        // One position per send, in the order of their ids.
        let positions: Vec<u64> = commits[1].changes.iter().map(Change::pos).collect();
        assert_eq!(positions, (2..=201).collect::<Vec<u64>>());
        assert_eq!(
            s.history(
                &r.id,
                HistoryQuery {
                    initial_id: None,
                    direction: Direction::Newer,
                    limit: 100
                }
            )
            .unwrap()
            .messages
            .len(),
            100
        );
    }

    #[test]
    fn the_same_txn_id_twice_in_one_commit_stores_one_message() {
        for group_commit in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let s = SqliteStore::open_with(
                &dir.path().join("t.db"),
                SqliteOptions {
                    group_commit,
                    ..SqliteOptions::default()
                },
            )
            .unwrap();
            let r = room(&s, None, &["alice"]);
            let release = hold(&s);
            let first = s.send_message(new_message(&r.id, "alice", "same"));
            let mut other = new_message(&r.id, "alice", "same");
            other.parts = vec![Part::text("a retry with other content")];
            let second = s.send_message(other);
            let bob = s.send_message(new_message(&r.id, "bob", "same"));
            drop(release);
            let (first, second, bob) = (
                first.wait().unwrap(),
                second.wait().unwrap(),
                bob.wait().unwrap(),
            );
            assert!(
                first.created && !second.created,
                "group commit {group_commit}"
            );
            assert_eq!(second.message, first.message, "the first one stays");
            assert!(
                bob.created && bob.message.id > first.message.id,
                "txn ids are per sender"
            );
            let stored = s
                .history(
                    &r.id,
                    HistoryQuery {
                        initial_id: None,
                        direction: Direction::Newer,
                        limit: 10,
                    },
                )
                .unwrap()
                .messages;
            assert_eq!(stored.len(), 2);
        }
    }

    #[test]
    fn a_bad_write_fails_alone_and_the_rest_of_its_batch_commits() {
        let (_d, s) = store();
        let commits = Arc::new(Commits::default());
        s.set_commit_sink(commits.clone());
        let r = room(&s, None, &["alice"]);
        let release = hold(&s);
        let good = s.send_message(new_message(&r.id, "alice", "good"));
        // A room that does not exist: the foreign key refuses it (the routes check first).
        let bad = s.send_message(new_message("r-missing", "alice", "bad"));
        let after = s.send_message(new_message(&r.id, "alice", "after"));
        drop(release);
        assert!(good.wait().unwrap().created);
        assert!(matches!(bad.wait(), Err(StoreError::Sqlite(_))));
        assert!(after.wait().unwrap().created);
        // Every change reported was committed, in order.
        let reported: Vec<u64> = commits
            .0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|c| c.changes.iter())
            .filter_map(|c| match c {
                Change::Message { message, .. } => Some(message.id),
                _ => None,
            })
            .collect();
        let stored: Vec<u64> = s
            .history(
                &r.id,
                HistoryQuery {
                    initial_id: None,
                    direction: Direction::Newer,
                    limit: 10,
                },
            )
            .unwrap()
            .messages
            .iter()
            .map(|m| m.id)
            .collect();
        assert_eq!(reported, stored);
    }
}
