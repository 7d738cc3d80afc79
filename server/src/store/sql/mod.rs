//! The SQL store: everything the server stores, in SQLite (one file, the default) or PostgreSQL
//! (several instances on one database), with the logic written once over [`value::Sql`] and each
//! backend ([`sqlite`], [`postgres`]) only opening connections, migrating its schema and running
//! statements.
//!
//! - **One writer per store** owns the only writing connection and takes writes from a queue. It
//!   commits whatever is queued together: one transaction and one fsync for all of it (group
//!   commit), then reports the commit's changes to the [`CommitSink`] and answers each write.
//!   Idempotency holds inside a batch: the second send of a txn id finds the first in the same
//!   transaction. If a batch fails, each of its writes is retried in a transaction of its own, so
//!   one bad write fails alone.
//!   The writer runs as a blocking task of the caller's runtime while there is something queued
//!   (and ends when the queue is empty), not as a thread of its own: a runtime on tokio's paused
//!   clock (the core's tests run the server that way) then knows work is in progress and does not
//!   jump its clock meanwhile, exactly as for the reads. It takes one blocking thread at most.
//! - **Positions are serialized with commits.** Message ids, membership sequence numbers and
//!   change-stream positions are each the previous one plus one, assigned inside the writing
//!   transaction while it holds the database's write lock (SQLite's one writer; PostgreSQL's
//!   transaction-scoped advisory lock, taken by every instance's writer before it reads where the
//!   stream stands), so they are in commit order and every snapshot a reader takes holds positions
//!   1 to its head with none missing (docs/adr/0015-change-stream.md, docs/adr/0017-postgresql.md).
//! - **A pool of reader connections**: each read is one transaction, a consistent snapshot.
//! - **Rooms are cached** in memory: they never change once created (no route adds or removes
//!   members), so a membership check costs no query.
//!
//! Measured on the 2-core machine (BENCHMARKS.md, the reference server): with 32 senders, 12,700
//! sends/s with group commit on SQLite, 1,000-2,400/s with one fsync per send.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use chatsync_protocol::{Direction, Message, Part, Room, RoomSync, User};
use tokio::sync::oneshot;

use super::{
    Change, CommitSink, Committed, DeleteMessage, EditMessage, Head, HistoryPage, HistoryQuery,
    MessageState, NewMessage, Pending, React, ReadReceipt, ReadState, SendOutcome, Store,
    StoreError, StreamBatch, SyncBatch, WriteResult,
};
use crate::sync_token::SyncPosition;

mod notice;
pub mod postgres;
pub mod sqlite;
mod stream;
#[cfg(test)]
mod testing;
pub mod value;

use stream::kind;
use value::{args, Row, Sql};

/// Columns of a message row, in the order [`message_from_row`] reads them.
const MESSAGE_COLUMNS: &str =
    "id, room_id, user_id, parts, created_at, updated_at, edited_at, deleted, txn_id";

/// Most rooms kept in memory; beyond, an arbitrary one is forgotten (and read again when needed).
const ROOM_CACHE_CAPACITY: usize = 100_000;

/// How the store runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlOptions {
    /// Commit the writes queued together in one transaction (one fsync). Off: one transaction
    /// and one fsync per write, for measuring what group commit brings.
    pub group_commit: bool,
    /// Most writes in one transaction.
    pub max_batch: usize,
    /// Reader connections.
    pub readers: usize,
}

impl Default for SqlOptions {
    fn default() -> Self {
        SqlOptions {
            group_commit: true,
            max_batch: 1024,
            readers: 4,
        }
    }
}

/// A SQLite file or a PostgreSQL database holding everything the server stores.
#[derive(Debug)]
pub struct SqlStore {
    /// The writes waiting, and the writer's connection.
    writer: Arc<Writer>,
    readers: Readers,
    rooms: Arc<RoomCache>,
    sink: Arc<OnceLock<Arc<dyn CommitSink>>>,
    /// How commits reach the sink: directly (one writer on the database), or through a follower
    /// of the database's change stream (PostgreSQL, where other instances write too).
    reporting: Reporting,
}

/// See [`SqlStore::reporting`].
#[derive(Debug)]
enum Reporting {
    Direct,
    Follow(Arc<postgres::Follower>),
}

/// The writing connection of a backend.
pub(crate) trait WriteConn: Send {
    /// Runs `work` in one write transaction and commits it when it succeeds (rolls back when it
    /// fails). `head` is where the writer believes the store stands: a backend with other writers
    /// sets it from the database once it holds the write lock, before `work` runs. `work` puts
    /// the transaction's changes in `changes` (a backend with other instances tells them).
    fn write(
        &mut self,
        head: &mut Head,
        changes: &mut Vec<Change>,
        work: &mut dyn FnMut(&dyn Sql, &mut Head, &mut Vec<Change>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Closes the connection (best effort: flushes what the backend can).
    fn close(self: Box<Self>);
}

/// A reading connection of a backend.
pub(crate) trait ReadConn: Send {
    /// Runs `work` in one read-only transaction: a consistent snapshot.
    fn read(
        &mut self,
        work: &mut dyn FnMut(&dyn Sql) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
}

/// Runs `work` once in a snapshot of `conn` and returns its answer.
fn read_with<T>(
    conn: &mut dyn ReadConn,
    work: impl FnOnce(&dyn Sql) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut work = Some(work);
    let mut out = None;
    conn.read(&mut |sql| {
        let work = work
            .take()
            .ok_or_else(|| StoreError::Corrupt("a read ran twice".into()))?;
        out = Some(work(sql)?);
        Ok(())
    })?;
    out.ok_or_else(|| StoreError::Corrupt("a read did not run".into()))
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
    options: SqlOptions,
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

impl SqlStore {
    /// A store over a backend's connections, already migrated; `head` is where the database
    /// stands.
    fn assemble(
        writer: Box<dyn WriteConn>,
        readers: Vec<Box<dyn ReadConn>>,
        head: Head,
        options: SqlOptions,
        rooms: Arc<RoomCache>,
        reporting: Reporting,
    ) -> SqlStore {
        let sink: Arc<OnceLock<Arc<dyn CommitSink>>> = Arc::new(OnceLock::new());
        let state = WriterState {
            conn: writer,
            head,
            rooms: Arc::clone(&rooms),
            sink: Arc::clone(&sink),
        };
        SqlStore {
            writer: Arc::new(Writer {
                queue: Mutex::new(Queue::default()),
                idle: Condvar::new(),
                state: Mutex::new(Some(state)),
                options,
            }),
            readers: Readers::new(readers),
            rooms,
            sink,
            reporting,
        }
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
struct Readers {
    idle: Mutex<Vec<Box<dyn ReadConn>>>,
    returned: Condvar,
    closed: AtomicBool,
    size: usize,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers").field("size", &self.size).finish()
    }
}

impl Readers {
    fn new(conns: Vec<Box<dyn ReadConn>>) -> Readers {
        Readers {
            size: conns.len(),
            idle: Mutex::new(conns),
            returned: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `f` in a snapshot on a reader connection (waiting for one if all are busy).
    fn with<T>(&self, f: impl FnOnce(&dyn Sql) -> Result<T, StoreError>) -> Result<T, StoreError> {
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
        let result = read_with(conn.as_mut(), f);
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

    /// The writes queued since a batch of `have` was taken, up to the batch size: what the
    /// writer adds to its batch once it holds the write lock. On PostgreSQL the lock may have
    /// been held by other instances' commits meanwhile; the writes that queued during that wait
    /// go into this commit instead of waiting for the lock again.
    fn take_more(&self, have: usize) -> Vec<Job> {
        if !self.options.group_commit {
            return Vec::new();
        }
        let mut queue = self.lock_queue();
        let room = self.options.max_batch.max(1).saturating_sub(have);
        let n = queue.jobs.len().min(room);
        // A test's hold stays where it is, with everything behind it.
        #[cfg(test)]
        let n = queue
            .jobs
            .iter()
            .take(n)
            .position(|job| matches!(job, Job::Hold(_)))
            .unwrap_or(n);
        queue.jobs.drain(..n).collect()
    }

    /// Commits everything queued, batch by batch, until the queue is empty.
    fn drain(&self) {
        while let Some(batch) = self.next_batch() {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match state.as_mut() {
                Some(state) => state.commit(batch, &|have| self.take_more(have)),
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
            state.conn.close();
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
    conn: Box<dyn WriteConn>,
    /// Where the store stands after the last commit.
    head: Head,
    rooms: Arc<RoomCache>,
    sink: Arc<OnceLock<Arc<dyn CommitSink>>>,
}

impl WriterState {
    /// Commits `batch`, and what `more` adds once the write lock is held, in one transaction; if
    /// that fails, each write in its own.
    fn commit(&mut self, mut batch: Vec<Job>, more: &dyn Fn(usize) -> Vec<Job>) {
        match self.try_commit(&mut batch, more) {
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
                    self.commit(vec![job], &|_| Vec::new());
                }
            }
        }
    }

    fn try_commit(
        &mut self,
        batch: &mut Vec<Job>,
        more: &dyn Fn(usize) -> Vec<Job>,
    ) -> Result<(Vec<Done>, Committed), StoreError> {
        let mut position = self.head;
        let mut changes = Vec::new();
        let mut fresh_rooms = Vec::new();
        let mut dones = Vec::with_capacity(batch.len());
        let rooms = &self.rooms;
        self.conn.write(&mut position, &mut changes, &mut |tx, position, changes| {
            changes.clear();
            fresh_rooms.clear();
            dones.clear();
            let extra = more(batch.len());
            batch.extend(extra);
            for job in batch.iter() {
                let done = match job {
                    Job::Send(new, _) => {
                        Done::Send(send(tx, new, rooms, position, changes)?)
                    }
                    Job::CreateRoom {
                        name, members, now, ..
                    } => {
                        let room = insert_room(
                            tx,
                            name.as_deref(),
                            members,
                            now,
                            None,
                            position,
                            changes,
                        )?;
                        fresh_rooms.push(room.clone());
                        Done::Room(room)
                    }
                    Job::DirectRoom { a, b, now, .. } => {
                        let (room, created) = direct_room(tx, a, b, now, position, changes)?;
                        if created {
                            fresh_rooms.push(room.clone());
                        }
                        Done::Direct(room, created)
                    }
                    Job::Edit(edit, _) => Done::Message(stream::edit(
                        tx,
                        edit,
                        rooms,
                        position,
                        changes,
                    )?),
                    Job::Delete(delete, _) => Done::Message(stream::delete(
                        tx,
                        delete,
                        rooms,
                        position,
                        changes,
                    )?),
                    Job::React(react, _) => Done::Message(stream::react(
                        tx,
                        react,
                        rooms,
                        position,
                        changes,
                    )?),
                    Job::Receipt(receipt, _) => Done::Read(stream::receipt(
                        tx,
                        receipt,
                        rooms,
                        position,
                        changes,
                    )?),
                    Job::PutUser(user, _) => {
                        tx.execute(
                            "INSERT INTO users (id, name, avatar_url) VALUES (?1, ?2, ?3)
                             ON CONFLICT (id) DO UPDATE SET name = excluded.name, avatar_url = excluded.avatar_url",
                            args![&user.id, &user.name, &user.avatar_url],
                        )?;
                        Done::User(user.clone())
                    }
                    Job::Seed(messages, _) => {
                        let mut ids = Vec::with_capacity(messages.len());
                        for new in messages {
                            ids.push(
                                send(tx, new, rooms, position, changes)?
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
            stream::touch_rooms(tx, changes)
        })?;
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
    tx: &dyn Sql,
    new: &NewMessage,
    rooms: &RoomCache,
    position: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<SendOutcome, StoreError> {
    let parts =
        serde_json::to_string(&new.parts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // The next id, taken under the write lock (see the module documentation). A repeated
    // (sender, txn id) inserts nothing: one statement either way (a round trip on PostgreSQL).
    let id = position.v1.message_id + 1;
    let inserted = tx.query_opt(
        "INSERT INTO messages (id, room_id, user_id, txn_id, parts, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (user_id, txn_id) DO NOTHING RETURNING id",
        args![to_i64(id), &new.room_id, &new.sender, &new.txn_id, parts.as_str(), &new.now],
    )?;
    if inserted.is_none() {
        let sql =
            format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = ?1 AND txn_id = ?2");
        let message = query_states(tx, &sql, args![&new.sender, &new.txn_id], true)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt(format!("txn {} vanished", new.txn_id)))?;
        return Ok(SendOutcome {
            message,
            created: false,
        });
    }
    position.v1.message_id = id;
    let pos = stream::record_change(tx, &new.room_id, kind::SEND, Some(id), None, None, position)?;
    let message = MessageState {
        id,
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
fn members_of(tx: &dyn Sql, rooms: &RoomCache, room_id: &str) -> Result<Arc<[String]>, StoreError> {
    Ok(match rooms.members(room_id) {
        Some(members) => members,
        None => room_members(tx, room_id)?.into(),
    })
}

fn direct_room(
    tx: &dyn Sql,
    a: &str,
    b: &str,
    now: &str,
    position: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<(Room, bool), StoreError> {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let key = format!("{lo}\n{hi}");
    let existing: Option<String> = tx
        .query_opt("SELECT id FROM rooms WHERE direct_key = ?1", args![&key])?
        .map(|row| row.get(0))
        .transpose()?;
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

fn to_i64(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// A row of [`MESSAGE_COLUMNS`], its parts still JSON.
fn message_from_row(row: &Row) -> Result<(MessageState, String), StoreError> {
    Ok((
        MessageState {
            id: row.get(0)?,
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
        row.get(3)?,
    ))
}

/// Runs a query of [`MESSAGE_COLUMNS`] and decodes the parts column; with `reactions`, loads
/// each message's reactions too (v1 answers do not show them).
fn query_states(
    tx: &dyn Sql,
    sql: &str,
    params: &[value::Arg<'_>],
    reactions: bool,
) -> Result<Vec<MessageState>, StoreError> {
    let mut out = Vec::new();
    for row in tx.query(sql, params)? {
        let (mut message, parts) = message_from_row(&row)?;
        message.parts = serde_json::from_str::<Vec<Part>>(&parts)
            .map_err(|e| StoreError::Corrupt(format!("parts of message {}: {e}", message.id)))?;
        out.push(message);
    }
    if reactions && !out.is_empty() {
        // The reactions of all of them in one more query (the same one, as a subquery, in the
        // same snapshot), not one per message: on PostgreSQL each query is a round trip.
        let rows = tx.query(
            &format!(
                "SELECT message_id, key, user_id, pos FROM reactions
                 WHERE message_id IN (SELECT id FROM ({sql}) AS m) ORDER BY message_id, key, user_id"
            ),
            params,
        )?;
        let mut by_message: HashMap<u64, Vec<(String, String, i64)>> = HashMap::new();
        for row in rows {
            by_message
                .entry(row.get(0)?)
                .or_default()
                .push((row.get(1)?, row.get(2)?, row.get(3)?));
        }
        for message in &mut out {
            if let Some(rows) = by_message.remove(&message.id) {
                message.reactions = stream::group_reactions(rows);
            }
        }
    }
    Ok(out)
}

/// Runs a query of [`MESSAGE_COLUMNS`] for v1: the messages' v1 shape.
fn query_messages(
    tx: &dyn Sql,
    sql: &str,
    params: &[value::Arg<'_>],
) -> Result<Vec<Message>, StoreError> {
    Ok(query_states(tx, sql, params, false)?
        .iter()
        .map(MessageState::v1)
        .collect())
}

/// One text column of every row.
fn texts(rows: Vec<Row>) -> Result<Vec<String>, StoreError> {
    rows.iter().map(|row| row.get(0)).collect()
}

fn room_members(tx: &dyn Sql, room_id: &str) -> Result<Vec<String>, StoreError> {
    texts(tx.query(
        "SELECT user_id FROM members WHERE room_id = ?1 ORDER BY user_id",
        args![room_id],
    )?)
}

fn load_room(tx: &dyn Sql, room_id: &str) -> Result<Option<Room>, StoreError> {
    let Some(row) = tx.query_opt(
        "SELECT id, name, created_at FROM rooms WHERE id = ?1",
        args![room_id],
    )?
    else {
        return Ok(None);
    };
    let id: String = row.get(0)?;
    let member_ids = room_members(tx, &id)?;
    Ok(Some(Room {
        id,
        name: row.get(1)?,
        member_ids,
        created_at: row.get(2)?,
    }))
}

fn insert_room(
    tx: &dyn Sql,
    name: Option<&str>,
    member_ids: &[String],
    now: &str,
    direct_key: Option<&str>,
    position: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<Room, StoreError> {
    let id = format!("r{}", uuid::Uuid::new_v4().simple());
    tx.execute(
        "INSERT INTO rooms (id, name, created_at, direct_key) VALUES (?1, ?2, ?3, ?4)",
        args![&id, name, now, direct_key],
    )?;
    let mut members: Vec<String> = member_ids.to_vec();
    members.sort();
    members.dedup();
    let mut seqs = Vec::with_capacity(members.len());
    for member in &members {
        let seq = position.v1.membership_seq + 1;
        tx.execute(
            "INSERT INTO members (seq, room_id, user_id) VALUES (?1, ?2, ?3)",
            args![to_i64(seq), &id, member],
        )?;
        position.v1.membership_seq = seq;
        seqs.push(seq);
    }
    let room = Room {
        id,
        name: name.map(str::to_owned),
        member_ids: members,
        created_at: now.to_owned(),
    };
    let pos = stream::record_change(tx, &room.id, kind::ROOM, None, None, None, position)?;
    changes.push(Change::Room {
        pos,
        room: Arc::new(room.clone()),
        seqs: seqs.into(),
    });
    Ok(room)
}

fn current_position(tx: &dyn Sql) -> Result<SyncPosition, StoreError> {
    let row = tx.query_one(
        "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages), (SELECT COALESCE(MAX(seq), 0) FROM members)",
        &[],
    )?;
    Ok(SyncPosition {
        message_id: row.get(0)?,
        membership_seq: row.get(1)?,
    })
}

/// Where the stream and v1's two sequences stand: the newest message id, membership sequence
/// number and position (from their indexes).
const HEAD_SQL: &str = "SELECT (SELECT COALESCE(MAX(id), 0) FROM messages), (SELECT COALESCE(MAX(seq), 0) FROM members),
        (SELECT COALESCE(MAX(pos), 0) FROM changes)";

/// v1's position and the change stream's, in one snapshot (one statement).
fn current_head(tx: &dyn Sql) -> Result<Head, StoreError> {
    let row = tx.query_one(HEAD_SQL, &[])?;
    Ok(Head {
        v1: SyncPosition {
            message_id: row.get(0)?,
            membership_seq: row.get(1)?,
        },
        pos: row.get(2)?,
    })
}

/// The newest `limit` messages of a room with `after < id <= upto`, ascending, and whether older
/// ones in that range were left out.
fn newest_in_range(
    tx: &dyn Sql,
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
        args![room_id, to_i64(after), to_i64(upto), limit as i64 + 1],
    )?;
    let limited = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    messages.reverse();
    Ok(RoomSync { messages, limited })
}

impl Store for SqlStore {
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
        self.readers.with(|tx| {
            tx.query_opt(
                "SELECT id, name, avatar_url FROM users WHERE id = ?1",
                args![user_id],
            )?
            .map(|row| {
                Ok(User {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    avatar_url: row.get(2)?,
                })
            })
            .transpose()
        })
    }

    fn room(&self, room_id: &str) -> Result<Option<Arc<Room>>, StoreError> {
        if let Some(room) = self.rooms.get(room_id) {
            return Ok(Some(room));
        }
        let room = self.readers.with(|tx| load_room(tx, room_id))?;
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
        self.readers.with(|tx| {
            let ids = texts(tx.query(
                "SELECT room_id FROM members WHERE user_id = ?1 ORDER BY seq",
                args![user_id],
            )?)?;
            let mut rooms = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(room) = load_room(tx, &id)? {
                    rooms.push(room);
                }
            }
            Ok(rooms)
        })
    }

    fn history(&self, room_id: &str, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        let fetch = query.limit as i64 + 1;
        self.readers.with(|tx| {
            let mut messages = match query.direction {
                Direction::Older => {
                    let before = query.initial_id.map_or(i64::MAX, to_i64);
                    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id < ?2 AND deleted = 0 ORDER BY id DESC LIMIT ?3");
                    query_messages(tx, &sql, args![room_id, before, fetch])?
                }
                Direction::Newer => {
                    let after = query.initial_id.map_or(0, to_i64);
                    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 AND deleted = 0 ORDER BY id ASC LIMIT ?3");
                    query_messages(tx, &sql, args![room_id, after, fetch])?
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
        self.readers.with(|tx| {
            let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 AND deleted = 0 ORDER BY id ASC LIMIT ?3");
            query_messages(tx, &sql, args![room_id, to_i64(after), limit as i64])
        })
    }

    fn sync(
        &self,
        user_id: &str,
        since: Option<SyncPosition>,
        limit: u32,
    ) -> Result<SyncBatch, StoreError> {
        self.readers.with(|tx| {
            let position = current_position(tx)?;
            let mut rooms = BTreeMap::new();
            match since {
                None => {
                    let ids = texts(tx.query(
                        "SELECT room_id FROM members WHERE user_id = ?1 AND seq <= ?2",
                        args![user_id, to_i64(position.membership_seq)],
                    )?)?;
                    for id in ids {
                        let room = newest_in_range(tx, &id, 0, position.message_id, limit)?;
                        rooms.insert(id, room);
                    }
                }
                Some(since) => {
                    // Rooms joined since the token: reported like an initial sync of that room.
                    let joined = texts(tx.query(
                        "SELECT room_id FROM members WHERE user_id = ?1 AND seq > ?2 AND seq <= ?3",
                        args![
                            user_id,
                            to_i64(since.membership_seq),
                            to_i64(position.membership_seq)
                        ],
                    )?)?;
                    for id in joined {
                        let room = newest_in_range(tx, &id, 0, position.message_id, limit)?;
                        rooms.insert(id, room);
                    }
                    let changed = texts(tx.query(
                        "SELECT r.id FROM members m JOIN rooms r ON r.id = m.room_id
                         WHERE m.user_id = ?1 AND m.seq <= ?2 AND r.last_message_id > ?3",
                        args![
                            user_id,
                            to_i64(since.membership_seq),
                            to_i64(since.message_id)
                        ],
                    )?)?;
                    for id in changed {
                        let room =
                            newest_in_range(tx, &id, since.message_id, position.message_id, limit)?;
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
        self.readers.with(current_position)
    }

    fn head(&self) -> Result<Head, StoreError> {
        self.readers.with(current_head)
    }

    fn history_v2(
        &self,
        room_id: &str,
        query: HistoryQuery,
    ) -> Result<HistoryPage<MessageState>, StoreError> {
        self.readers.with(|tx| stream::history(tx, room_id, query))
    }

    fn sync_v2(
        &self,
        user_id: &str,
        since: Option<u64>,
        limit: u32,
        also: &[String],
    ) -> Result<StreamBatch, StoreError> {
        self.readers
            .with(|tx| stream::sync(tx, user_id, since, limit, also))
    }

    fn read_states(
        &self,
        user_id: &str,
        rooms: &[String],
    ) -> Result<(u64, Vec<(String, ReadState)>), StoreError> {
        self.readers.with(|tx| {
            let pos = stream::stream_head(tx)?;
            let states = rooms
                .iter()
                .map(|room| Ok((room.clone(), stream::read_state(tx, room, user_id)?)))
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((pos, states))
        })
    }

    fn set_commit_sink(&self, sink: Arc<dyn CommitSink>) {
        let sink = match &self.reporting {
            Reporting::Direct => sink,
            Reporting::Follow(follower) => follower.start(sink),
        };
        if self.sink.set(sink).is_err() {
            tracing::warn!("a commit sink was set twice; the first one stays");
        }
    }

    fn publish_typing(&self, notice: super::TypingNotice) {
        if let Reporting::Follow(follower) = &self.reporting {
            follower.publish_typing(&notice);
        }
    }

    fn set_typing_sink(&self, sink: Arc<dyn super::TypingSink>) {
        if let Reporting::Follow(follower) = &self.reporting {
            follower.set_typing_sink(sink);
        }
    }

    fn publish_load(&self, parked: usize) {
        if let Reporting::Follow(follower) = &self.reporting {
            follower.publish_load(parked);
        }
    }

    fn set_load_sink(&self, sink: Arc<dyn super::LoadSink>) {
        if let Reporting::Follow(follower) = &self.reporting {
            follower.set_load_sink(sink);
        }
    }

    fn read_parallelism(&self) -> usize {
        self.readers.size
    }

    fn close(&self) {
        if let Reporting::Follow(follower) = &self.reporting {
            follower.stop();
        }
        self.readers.close();
        self.writer.close();
    }
}

impl Drop for SqlStore {
    fn drop(&mut self) {
        self.close();
    }
}

// The store conformance suite: the same tests on each backend (see `testing.rs`).
#[cfg(test)]
mod on_postgres;
#[cfg(test)]
mod on_sqlite;
