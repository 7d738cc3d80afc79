//! The on-device store: sled trees with explicit key encodings and a format version.
//!
//! One submodule per tree ([`meta`], [`messages`], [`rooms`], [`outbox`], [`users`]); the
//! operations that must change several trees at once (a sync batch, a confirmed send, an
//! eviction) live here as single multi-tree transactions, so a crash leaves either all of a
//! change or none of it. Callers `flush` before telling the app that something is saved.
//!
//! Opening reads only the `meta` tree: its cost does not grow with the number of messages
//! (beyond sled's own page table, see docs/adr/0003-device-store.md).

pub(crate) mod journal;
pub(crate) mod keys;
pub(crate) mod messages;
pub(crate) mod meta;
pub(crate) mod open;
pub(crate) mod outbox;
pub(crate) mod rooms;
pub(crate) mod salvage;
pub(crate) mod users;

#[cfg(test)]
mod measure;
#[cfg(test)]
mod model_tests;

use std::collections::BTreeMap;
use std::path::Path;

use chatsync_protocol::v2;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use self::keys::{message_key, outbox_key};
use self::messages::{MessagesTree, StoredMessage};
use self::meta::MetaTree;
use self::outbox::{OutboxRecord, OutboxTree};
use self::rooms::{RoomInfo, RoomRecord};
use self::users::UsersTree;
use crate::error::ChatError;

/// A file beside sled's own, written once the store exists. When it is there but sled finds no
/// data (its log was damaged beyond recovery), opening fails instead of silently starting empty.
pub(crate) const MARKER_FILE: &str = "chatsync-store";

/// Version of the on-disk format written by this build. Bump it (and add a migration) whenever a
/// key encoding or a value's shape changes incompatibly.
///
/// - 1: the first build (protocol v1).
/// - 2: protocol v2 state: edits, deletions and reactions on stored messages, receipts and
///   unread counts on room records, kinds of queued changes. Every added field is absent when
///   unset, so format 1 values read as they are; the v1 sync token means nothing to a v2 server
///   and is dropped (the next sync starts over; held history stays). See `migrate`.
pub(crate) const FORMAT_VERSION: u32 = 2;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// Another process (or another client in this one) holds the store's file lock.
    #[error("the store at {0} is held by another client")]
    Busy(String),
    /// sled failed: I/O (a full or read-only disk says so in plain words) or a damaged log.
    #[error("{}", describe_sled(.0))]
    Sled(#[from] sled::Error),
    /// A value or key that does not decode: the store is damaged or was written by a stranger.
    #[error("store is corrupt: {0}")]
    Corrupt(String),
    #[error("store format version {found} is newer than this build supports ({supported}); update the app")]
    NewerFormat { found: u32, supported: u32 },
    #[error("store has an unknown format version record ({0})")]
    UnknownFormat(String),
}

/// What a sled error means for the user, in plain words, with what to do about it.
fn describe_sled(e: &sled::Error) -> String {
    match e {
        sled::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::StorageFull => {
                "the disk is full (no space left on the device); free some space and try again: everything saved before is kept".into()
            }
            std::io::ErrorKind::ReadOnlyFilesystem => {
                "the store's disk is read-only; everything saved before is kept, and readable once it is writable again".into()
            }
            _ => format!("I/O error: {io}"),
        },
        sled::Error::Corruption { .. } => {
            "the store's files are damaged (sled read corrupted data); recover it (ChatClient::recover, `chatsync doctor`)".into()
        }
        other => format!("sled: {other}"),
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Busy(m) => ChatError::Busy(m),
            other => ChatError::Storage(other.to_string()),
        }
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

/// JSON encoding of stored values (small, self-describing, easy to migrate).
pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("cannot encode value: {e}")))
}

/// Decodes a stored value; a value that does not decode is corruption, never a panic.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes)
        .map_err(|e| StoreError::Corrupt(format!("undecodable value: {e}")))
}

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn tx_get<T: DeserializeOwned>(
    tree: &TransactionalTree,
    key: &[u8],
) -> Result<Option<T>, ConflictableTransactionError<StoreError>> {
    match tree.get(key)? {
        None => Ok(None),
        Some(v) => decode(&v).map(Some).map_err(abort),
    }
}

fn tx_put<T: Serialize>(
    tree: &TransactionalTree,
    key: &[u8],
    value: &T,
) -> Result<Option<sled::IVec>, ConflictableTransactionError<StoreError>> {
    Ok(tree.insert(key, encode(value).map_err(abort)?)?)
}

/// What [`tx_put_message`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Put {
    /// The message was not held: stored.
    New,
    /// A message with that id was held with other content (parts, timestamps, ...): replaced.
    Replaced,
    /// The same message was already held: nothing written.
    Same,
}

/// Inserts a message (its v2 state), keeping the `local_id` an earlier copy carried.
fn tx_put_message(
    tree: &TransactionalTree,
    message: &v2::Message,
    local_id: Option<&str>,
) -> Result<Put, ConflictableTransactionError<StoreError>> {
    let key = message_key(&message.room_id, message.id);
    let existing: Option<StoredMessage> = tx_get(tree, &key)?;
    let local_id = local_id
        .map(str::to_owned)
        .or_else(|| existing.as_ref().and_then(|e| e.local_id.clone()));
    let stored = StoredMessage::from_v2(message, local_id);
    if existing.as_ref() == Some(&stored) {
        return Ok(Put::Same);
    }
    tx_put(tree, &key, &stored)?;
    Ok(if existing.is_none() {
        Put::New
    } else {
        Put::Replaced
    })
}

/// What a sync batch changed, per room: `apply_sync`'s result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SyncApplied {
    /// Ids not held before: stored.
    pub new: BTreeMap<String, Vec<u64>>,
    /// Ids held before with other content or state: replaced (the screen must show it anew).
    pub replaced: BTreeMap<String, Vec<u64>>,
    /// Rooms whose receipts or unread count changed.
    pub read_state: Vec<String>,
    /// Queued sends the batch showed had reached the server (their own message came back with
    /// their txn id): completed, out of the outbox. And queued edits and reactions the batch
    /// made moot (their message came back deleted): dropped, out of the outbox.
    pub completed: Vec<String>,
}

/// The store as the services share it: the open [`Store`] until `shutdown()` closes it. Every
/// operation takes a clone for its duration, so once the services let go and the calls in
/// flight end, sled closes and the directory's lock is released (a reopen is not `Busy`).
#[derive(Clone)]
pub(crate) struct SharedStore(std::sync::Arc<std::sync::RwLock<Option<Store>>>);

impl SharedStore {
    pub fn new(store: Store) -> SharedStore {
        SharedStore(std::sync::Arc::new(std::sync::RwLock::new(Some(store))))
    }

    /// The open store, or `None` after [`SharedStore::close`].
    pub fn get(&self) -> Option<Store> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Lets go of the store; it closes once no call in flight holds a clone.
    pub fn close(&self) -> Option<Store> {
        self.0.write().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The device store. Cloning shares the same open database.
#[derive(Clone)]
pub(crate) struct Store {
    db: sled::Db,
    pub meta: MetaTree,
    pub messages: MessagesTree,
    pub rooms: sled::Tree,
    pub outbox: OutboxTree,
    pub users: UsersTree,
    /// Where it lives.
    dir: std::path::PathBuf,
    /// The outbox's second copy, outside sled (see `journal`).
    journal: std::sync::Arc<journal::OutboxJournal>,
    /// Held for as long as any clone of the store lives; declared last so sled closes first.
    _lock: std::sync::Arc<open::StoreLock>,
}

impl Store {
    /// Opens or creates the store in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        // A recovery interrupted between its renames left the fresh store beside `dir`.
        crate::recovery::finish_interrupted_recovery(dir)?;
        // The lock first, then the repairs, then sled: see `open`'s module docs.
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Sled(sled::Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot create {}: {e}", dir.display()),
            )))
        })?;
        let lock = open::StoreLock::acquire(dir)?;
        open::repair_leftovers(dir)?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            // Every promise to the app is flushed explicitly; no periodic flusher wakeups.
            .flush_every_ms(None);
        // sled 0.34 can panic on some damaged files; a damaged store must be an error, not a crash.
        let open_sled = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
        let mut opened = open_sled();
        if matches!(&opened, Ok(Err(sled::Error::Io(e))) if e.kind() == std::io::ErrorKind::StorageFull)
            && open::release_reserve(dir)
        {
            // A full disk: the reserve makes room for the snapshot sled writes while opening.
            tracing::warn!(
                "store {}: the disk is full; opening on the reserve",
                dir.display()
            );
            let _ = open::repair_leftovers(dir);
            opened = open_sled();
        }
        let db = match opened {
            Ok(Ok(db)) => db,
            // sled's own lock on `db`: a handle of this process still closing (its I/O threads
            // let go a moment after the last `Db` is dropped).
            Ok(Err(sled::Error::Io(e))) if e.to_string().contains("could not acquire lock") => {
                return Err(StoreError::Busy(dir.display().to_string()))
            }
            Ok(Err(e)) => {
                // A failed open may itself have left a half-written snapshot (a full disk):
                // remove it now, so the store opens as soon as the cause is gone.
                let _ = open::repair_leftovers(dir);
                return Err(e.into());
            }
            Err(_) => {
                let _ = open::repair_leftovers(dir);
                return Err(StoreError::Corrupt(format!(
                    "sled could not read the store at {}",
                    dir.display()
                )));
            }
        };
        let store = Store {
            meta: MetaTree(db.open_tree("meta")?),
            messages: MessagesTree(db.open_tree("messages")?),
            rooms: db.open_tree("rooms")?,
            outbox: OutboxTree(db.open_tree("outbox")?),
            users: UsersTree(db.open_tree("users")?),
            db,
            dir: dir.to_owned(),
            journal: std::sync::Arc::new(journal::OutboxJournal::open(dir, None)),
            _lock: std::sync::Arc::new(lock),
        };
        store.check_format_version(&dir.join(MARKER_FILE))?;
        open::ensure_reserve(dir);
        // Now that the data is known good: a journal of a store from before journals gets the
        // login too.
        let session = store.meta.session()?;
        let store = Store {
            journal: std::sync::Arc::new(journal::OutboxJournal::open(dir, session.as_ref())),
            ..store
        };
        Ok(store)
    }

    fn check_format_version(&self, marker: &Path) -> Result<(), StoreError> {
        let write_marker = || -> Result<(), StoreError> {
            let io = |e: std::io::Error| StoreError::Sled(sled::Error::Io(e));
            let file = std::fs::File::create(marker).map_err(io)?;
            std::io::Write::write_all(
                &mut &file,
                format!("chatsync store, format {FORMAT_VERSION}\n").as_bytes(),
            )
            .map_err(io)?;
            file.sync_all().map_err(io)
        };
        match self.meta.0.get(meta::FORMAT_VERSION_KEY)? {
            Some(v) => {
                let bytes: [u8; 4] = v
                    .as_ref()
                    .try_into()
                    .map_err(|_| StoreError::UnknownFormat(format!("{} bytes", v.len())))?;
                let found = u32::from_be_bytes(bytes);
                if found > FORMAT_VERSION {
                    return Err(StoreError::NewerFormat {
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                if found == 0 {
                    return Err(StoreError::UnknownFormat("version 0".into()));
                }
                if found < FORMAT_VERSION {
                    self.migrate(found)?;
                }
                if !marker.exists() {
                    write_marker()?;
                }
                Ok(())
            }
            None => {
                if marker.exists() {
                    return Err(StoreError::Corrupt(
                        "the store's data could not be read back (damaged files); refusing to start empty".into(),
                    ));
                }
                let empty = self.meta.0.is_empty()
                    && self.messages.0.is_empty()
                    && self.rooms.is_empty()
                    && self.outbox.0.is_empty();
                if !empty {
                    return Err(StoreError::UnknownFormat(
                        "data without a version record".into(),
                    ));
                }
                self.meta
                    .0
                    .insert(meta::FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes())?;
                self.db.flush()?;
                write_marker()
            }
        }
    }

    /// Moves a store of format `from` to [`FORMAT_VERSION`], in place. Crash-safe: the whole
    /// migration is one transaction on the `meta` tree, flushed before the store is used, so a
    /// kill at any instruction leaves either the old format (migrated again at the next open) or
    /// the new one. Nothing is rewritten but the meta records: format 2's new fields are absent
    /// from format 1 values and read as unset.
    fn migrate(&self, from: u32) -> Result<(), StoreError> {
        tracing::info!("migrating the store from format {from} to {FORMAT_VERSION}");
        self.meta.0.transaction(|meta| {
            // 1 -> 2: a v1 sync token means nothing to a v2 server: the next sync starts over
            // (held history stays; the initial page joins it or opens a gap to fill).
            meta.remove(meta::SYNC_TOKEN_KEY)?;
            meta.insert(meta::FORMAT_VERSION_KEY, &FORMAT_VERSION.to_be_bytes())?;
            Ok::<(), ConflictableTransactionError<StoreError>>(())
        })?;
        self.db.flush()?;
        Ok(())
    }

    /// Reads every value of every tree back and decodes it: the check `recover` makes before
    /// deciding a store is healthy. Its cost grows with the store (a full scan).
    pub fn verify_readable(&self) -> Result<(), StoreError> {
        fn all<T: DeserializeOwned>(tree: &sled::Tree, what: &str) -> Result<(), StoreError> {
            for item in tree.iter() {
                let (key, value) = item?;
                decode::<T>(&value).map_err(|e| {
                    StoreError::Corrupt(format!("{what} {:?}: {e}", String::from_utf8_lossy(&key)))
                })?;
            }
            Ok(())
        }
        self.meta.session()?;
        self.meta.sync_token()?;
        all::<StoredMessage>(&self.messages.0, "message")?;
        all::<RoomRecord>(&self.rooms, "room")?;
        self.outbox.entries()?;
        all::<chatsync_protocol::User>(&self.users.0, "user")?;
        Ok(())
    }

    /// A handle that is alive while any clone of this store is (the client waits on it).
    pub fn lock_handle(&self) -> std::sync::Weak<open::StoreLock> {
        std::sync::Arc::downgrade(&self._lock)
    }

    /// The directory it lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes every write so far durable.
    pub async fn flush(&self) -> Result<(), StoreError> {
        // On tokio's blocking pool rather than sled's `flush_async` thread: the same cost, but a
        // paused-clock test runtime knows a blocking task is running and does not jump time
        // ahead while the disk works (issue 5's scheduler tests count requests per interval).
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| {
                StoreError::Sled(sled::Error::Io(std::io::Error::other(format!(
                    "flush task failed: {e}"
                ))))
            })??;
        Ok(())
    }

    /// [`Store::flush`] on the calling thread (outside any runtime: recovery).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// A new outbox sequence number, larger than every earlier one (also across restarts).
    pub fn next_seq(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()?)
    }

    /// Stores the session (and journals it, so a recovery can carry the login over).
    pub fn put_session(&self, session: &meta::StoredSession) -> Result<(), StoreError> {
        self.meta.put_session(session)?;
        self.journal.session(session);
        Ok(())
    }

    // --- rooms ---

    pub fn room(&self, room_id: &str) -> Result<Option<RoomRecord>, StoreError> {
        self.rooms
            .get(room_id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every room with its record, in room id order.
    pub fn rooms(&self) -> Result<Vec<(String, RoomRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.rooms.iter() {
            let (key, value) = item?;
            let id = String::from_utf8(key.to_vec())
                .map_err(|_| StoreError::Corrupt("room id is not UTF-8".into()))?;
            out.push((id, decode(&value)?));
        }
        Ok(out)
    }

    /// The user's unread count of a room as this device shows it: the server's count, or 0 once
    /// the room was marked read here up to its newest held message (a receipt still queued is
    /// ahead of the server). One rule for the room list, the badge total and its events.
    pub fn unread_shown(&self, room_id: &str, record: &RoomRecord) -> Result<u32, StoreError> {
        let read_here = self.outbox.entries()?.into_iter().any(|(_, r)| {
            r.room_id == room_id
                && matches!(r.op, outbox::Op::Receipt { message_id } if Some(message_id) >= record.newest_held)
        });
        Ok(if read_here { 0 } else { record.unread })
    }

    /// The badge: [`Store::unread_shown`] summed over every room.
    pub fn unread_total(&self) -> Result<u32, StoreError> {
        // The queued receipts once, not once per room.
        let mut read_here = BTreeMap::new();
        for (_, r) in self.outbox.entries()? {
            if let outbox::Op::Receipt { message_id } = r.op {
                let upto = read_here.entry(r.room_id).or_insert(message_id);
                *upto = (*upto).max(message_id);
            }
        }
        let mut total = 0u32;
        for (id, record) in self.rooms()? {
            let read = read_here.get(&id).is_some_and(|m| Some(*m) >= record.newest_held);
            total = total.saturating_add(if read { 0 } else { record.unread });
        }
        Ok(total)
    }

    /// Records a room's metadata, creating its record when it is new.
    pub fn put_room_info(&self, room_id: &str, info: RoomInfo) -> Result<(), StoreError> {
        self.rooms.transaction(|rooms| {
            let mut rec: RoomRecord =
                tx_get(rooms, room_id.as_bytes())?.unwrap_or_else(RoomRecord::first_seen);
            if rec.info.as_ref() != Some(&info) {
                rec.info = Some(info.clone());
                tx_put(rooms, room_id.as_bytes(), &rec)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    // --- sync and history ---

    /// Applies one `/v2/sync` answer: every room's new messages, the state of the older ones it
    /// updates (only those held: the others come with their current state when paged in), the
    /// receipts and unread counts, and the new token, as one transaction. Idempotent. The token
    /// moves only if it is still `since` (the token the request was made from), so a batch that
    /// lost a race never moves it backwards. A message of this user that comes back with the
    /// txn id of a send still queued completes that send (a device that crashed between the
    /// server's accept and its own record shows the message once, not twice).
    pub fn apply_sync(
        &self,
        response: &v2::SyncResponse,
        since: Option<&str>,
    ) -> Result<SyncApplied, StoreError> {
        // Reads that need range scans happen before the transaction; they are only used to
        // decide whether unsynced messages lie below a page, which nothing else changes
        // concurrently (the sync service applies one batch at a time).
        let mut below = BTreeMap::new();
        for (room_id, room) in &response.rooms {
            let first = room.messages.first().map_or(u64::MAX, |m| m.id);
            below.insert(room_id.clone(), self.messages.any_below(room_id, first)?);
        }
        let queued_sends: BTreeMap<String, u64> = self
            .outbox
            .entries()?
            .into_iter()
            .filter(|(_, r)| r.op.is_send())
            .map(|(seq, r)| (r.local_id, seq))
            .collect();
        // Edits and reactions queued (pending or failed) about a held message, by room and
        // message: a tombstone in the batch drops them. Its sender deleted it (on any device):
        // the server would refuse them for good (409), and a failed reaction kept on a tombstone
        // would stay in the outbox and show on the message forever, on this device only (the
        // convergence soak found it: a reaction made offline to a message deleted meanwhile).
        let mut queued_changes: BTreeMap<(String, u64), Vec<(u64, String)>> = BTreeMap::new();
        for (seq, r) in self.outbox.entries()? {
            if let outbox::Op::Edit { target } | outbox::Op::React { target, .. } = &r.op {
                if let Some(id) = target.server_id {
                    queued_changes
                        .entry((r.room_id.clone(), id))
                        .or_default()
                        .push((seq, r.local_id.clone()));
                }
            }
        }
        let result = (&self.messages.0, &self.rooms, &self.meta.0, &self.outbox.0).transaction(
            |(messages, rooms, meta, outbox)| {
                let mut applied = SyncApplied::default();
                // Another answer from the same token was applied first (a long-poll and an
                // explicit sync raced): it may be newer than this one, so this one only adds
                // messages not held; the state of held messages, receipts and unread counts
                // stay as the newer answer left them.
                let current = meta.get(meta::SYNC_TOKEN_KEY)?.as_deref() == since.map(str::as_bytes);
                for (room_id, room) in &response.rooms {
                    let held: Option<RoomRecord> = tx_get(rooms, room_id.as_bytes())?;
                    let known_at_token = since.is_some() && held.is_some();
                    let mut rec = held.unwrap_or_else(RoomRecord::first_seen);
                    let mut ids = Vec::new();
                    let mut replaced = Vec::new();
                    for m in &room.messages {
                        let put = if current
                            || tx_get::<StoredMessage>(messages, &message_key(room_id, m.id))?
                                .is_none()
                        {
                            tx_put_message(messages, m, None)?
                        } else {
                            Put::Same
                        };
                        rec.note_held(m.id, put == Put::New);
                        match put {
                            Put::New => ids.push(m.id),
                            Put::Replaced => replaced.push(m.id),
                            Put::Same => {}
                        }
                        if let Some(seq) = m.txn_id.as_ref().and_then(|t| queued_sends.get(t)) {
                            if outbox.remove(&outbox_key(*seq))?.is_some() {
                                applied.completed.push(m.txn_id.clone().unwrap_or_default());
                            }
                        }
                    }
                    for m in room
                        .messages
                        .iter()
                        .chain(&room.updates)
                        .filter(|m| m.deleted)
                    {
                        let moot = queued_changes.get(&(room_id.clone(), m.id));
                        for (seq, local_id) in moot.into_iter().flatten() {
                            if outbox.remove(&outbox_key(*seq))?.is_some() {
                                applied.completed.push(local_id.clone());
                            }
                        }
                    }
                    for m in room.updates.iter().filter(|_| current) {
                        let key = message_key(room_id, m.id);
                        if tx_get::<StoredMessage>(messages, &key)?.is_some()
                            && tx_put_message(messages, m, None)? == Put::Replaced
                        {
                            replaced.push(m.id);
                        }
                    }
                    rec.note_sync_page(
                        room.messages.first().map(|m| m.id),
                        room.messages.last().map(|m| m.id),
                        room.limited,
                        below[room_id],
                        known_at_token,
                    );
                    let read_before = (rec.unread, rec.receipts.clone());
                    if current {
                        rec.note_receipts(&room.receipts);
                        rec.unread = room.unread;
                    }
                    if read_before != (rec.unread, rec.receipts.clone()) {
                        applied.read_state.push(room_id.clone());
                    }
                    tx_put(rooms, room_id.as_bytes(), &rec)?;
                    applied.new.insert(room_id.clone(), ids);
                    if !replaced.is_empty() {
                        applied.replaced.insert(room_id.clone(), replaced);
                    }
                }
                if current {
                    meta.insert(meta::SYNC_TOKEN_KEY, response.next_batch.as_bytes())?;
                }
                Ok(applied)
            },
        )?;
        for local_id in &result.completed {
            self.journal_removed(local_id);
        }
        Ok(result)
    }

    /// Applies a history page read going older from `before` (exclusive). Returns the new ids.
    pub fn apply_older_page(
        &self,
        room_id: &str,
        before: u64,
        page: &v2::HistoryResponse,
    ) -> Result<Vec<u64>, StoreError> {
        let result = (&self.messages.0, &self.rooms).transaction(|(messages, rooms)| {
            let mut rec: RoomRecord =
                tx_get(rooms, room_id.as_bytes())?.unwrap_or_else(RoomRecord::first_seen);
            let mut ids = Vec::new();
            for m in &page.messages {
                let new = tx_put_message(messages, m, None)? == Put::New;
                rec.note_held(m.id, new);
                if new {
                    ids.push(m.id);
                }
            }
            rec.note_older_page(
                before,
                page.messages.first().map(|m| m.id),
                page.messages.last().map(|m| m.id),
                page.has_more,
            );
            tx_put(rooms, room_id.as_bytes(), &rec)?;
            Ok(ids)
        })?;
        Ok(result)
    }

    /// The user's own receipt in `room_id` moved to `message_id` (only forward), with the
    /// unread count the server answered when it is still current (`None`: a sync has counted
    /// since; the next one brings the count).
    pub fn apply_own_receipt(
        &self,
        room_id: &str,
        user_id: &str,
        message_id: u64,
        unread: Option<u32>,
    ) -> Result<(), StoreError> {
        self.rooms.transaction(|rooms| {
            let mut rec: RoomRecord =
                tx_get(rooms, room_id.as_bytes())?.unwrap_or_else(RoomRecord::first_seen);
            rec.note_receipts([(&user_id.to_owned(), &message_id)]);
            if let Some(unread) = unread {
                rec.unread = unread;
            }
            tx_put(rooms, room_id.as_bytes(), &rec)?;
            Ok(())
        })?;
        Ok(())
    }

    /// Evicts the oldest messages of `room_id` beyond `cap`. Returns how many were removed.
    pub fn evict(&self, room_id: &str, cap: u64) -> Result<u64, StoreError> {
        let Some(rec) = self.room(room_id)? else {
            return Ok(0);
        };
        if rec.count <= cap {
            return Ok(0);
        }
        let excess = usize::try_from(rec.count - cap).unwrap_or(usize::MAX);
        let (keys, next_oldest) = self.messages.oldest_keys(room_id, excess)?;
        let removed = (&self.messages.0, &self.rooms).transaction(|(messages, rooms)| {
            let mut removed = 0u64;
            for key in &keys {
                if messages.remove(key.as_ref())?.is_some() {
                    removed += 1;
                }
            }
            let mut rec: RoomRecord =
                tx_get(rooms, room_id.as_bytes())?.unwrap_or_else(RoomRecord::first_seen);
            rec.note_evicted(removed, next_oldest);
            tx_put(rooms, room_id.as_bytes(), &rec)?;
            Ok(removed)
        })?;
        Ok(removed)
    }

    // --- outbox ---

    /// Queues `record`; returns its sequence number.
    pub fn enqueue(&self, record: &OutboxRecord) -> Result<u64, StoreError> {
        let seq = self.next_seq()?;
        self.outbox.0.insert(outbox_key(seq), encode(record)?)?;
        self.journal.put(record);
        Ok(seq)
    }

    /// Replaces the entry `seq` (if still queued) with `f(entry)`.
    pub fn update_outbox(
        &self,
        seq: u64,
        f: impl Fn(&mut OutboxRecord),
    ) -> Result<Option<OutboxRecord>, StoreError> {
        let result = self.outbox.0.transaction(|outbox| {
            let Some(mut rec): Option<OutboxRecord> = tx_get(outbox, &outbox_key(seq))? else {
                return Ok(None);
            };
            f(&mut rec);
            tx_put(outbox, &outbox_key(seq), &rec)?;
            Ok(Some(rec))
        })?;
        if let Some(rec) = &result {
            self.journal.put(rec);
        }
        Ok(result)
    }

    /// Removes the entry `seq`; returns it when it was there.
    pub fn remove_outbox(&self, seq: u64) -> Result<Option<OutboxRecord>, StoreError> {
        let removed: Option<OutboxRecord> = self
            .outbox
            .0
            .remove(outbox_key(seq))?
            .map(|v| decode(&v))
            .transpose()?;
        if let Some(rec) = &removed {
            self.journal_removed(&rec.local_id);
        }
        Ok(removed)
    }

    /// Marks an entry gone in the journal only: it was queued in memory, but the flush that
    /// would have made it durable failed and the app was told so.
    pub fn journal_forget(&self, local_id: &str) {
        self.journal.remove(local_id);
    }

    /// Journals a removal and keeps the journal small (emptied with the outbox).
    fn journal_removed(&self, local_id: &str) {
        self.journal.remove(local_id);
        let live = || {
            self.outbox
                .entries()
                .ok()
                .map(|e| e.into_iter().map(|(_, r)| r).collect())
        };
        self.journal.compact(live, self.outbox.0.is_empty());
    }

    /// The server accepted the entry `seq` as `message`: drop it from the outbox and hold the
    /// message, in one transaction. Returns false when the message was already held: a sync
    /// stored it first, with a state at least as new as this answer's (a reaction may already
    /// be on it), so only its local id is added.
    pub fn complete_send(
        &self,
        seq: u64,
        local_id: &str,
        message: &v2::Message,
    ) -> Result<bool, StoreError> {
        let result = (&self.outbox.0, &self.messages.0, &self.rooms).transaction(
            |(outbox, messages, rooms)| {
                outbox.remove(&outbox_key(seq))?;
                let key = message_key(&message.room_id, message.id);
                let new = match tx_get::<StoredMessage>(messages, &key)? {
                    Some(mut held) => {
                        if held.local_id.is_none() {
                            held.local_id = Some(local_id.to_owned());
                            tx_put(messages, &key, &held)?;
                        }
                        false
                    }
                    None => tx_put_message(messages, message, Some(local_id))? == Put::New,
                };
                let mut rec: RoomRecord = tx_get(rooms, message.room_id.as_bytes())?
                    .unwrap_or_else(RoomRecord::first_seen);
                rec.note_held(message.id, new);
                tx_put(rooms, message.room_id.as_bytes(), &rec)?;
                Ok(new)
            },
        )?;
        self.journal_removed(local_id);
        Ok(result)
    }

    /// The server accepted a queued change (not a send): drop the entry and store the state the
    /// answer gives, in one transaction.
    pub fn complete_change(
        &self,
        seq: u64,
        local_id: &str,
        message: Option<&v2::Message>,
    ) -> Result<(), StoreError> {
        (&self.outbox.0, &self.messages.0).transaction(|(outbox, messages)| {
            outbox.remove(&outbox_key(seq))?;
            if let Some(m) = message {
                let key = message_key(&m.room_id, m.id);
                if tx_get::<StoredMessage>(messages, &key)?.is_some() {
                    tx_put_message(messages, m, None)?;
                }
            }
            Ok(())
        })?;
        self.journal_removed(local_id);
        Ok(())
    }

    /// The server id of the message this device sent with txn id `local_id` in `room_id`, when
    /// it is held (a room scan: only for changes queued against a message still queued then).
    pub fn server_id_of(&self, room_id: &str, local_id: &str) -> Result<Option<u64>, StoreError> {
        for item in self.messages.0.scan_prefix(keys::room_prefix(room_id)).rev() {
            let (_, value) = item?;
            let stored: StoredMessage = decode(&value)?;
            if stored.local_id.as_deref() == Some(local_id) {
                return Ok(Some(stored.message.id));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reopens, waiting while sled's I/O threads still hold the lock of a dropped handle.
    pub(crate) fn reopen(dir: &Path) -> Store {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(dir, 1 << 20) {
                Err(StoreError::Busy(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                other => return other.unwrap(),
            }
        }
    }

    /// The on-disk value shapes are a format: a change here needs a FORMAT_VERSION bump and a
    /// migration, never an accident.
    #[test]
    fn stored_values_have_a_pinned_shape() {
        use crate::model::MessageState;
        let room = RoomRecord {
            info: Some(RoomInfo {
                name: None,
                member_ids: vec!["alice".into(), "bob".into()],
            }),
            count: 2,
            newest_held: Some(9),
            oldest_held: Some(3),
            synced_newest: Some(9),
            older_exists: true,
            gaps: vec![rooms::Gap {
                after: 3,
                before: 7,
            }],
            unread: 0,
            receipts: Default::default(),
        };
        assert_eq!(
            String::from_utf8(encode(&room).unwrap()).unwrap(),
            r#"{"info":{"name":null,"member_ids":["alice","bob"]},"count":2,"newest_held":9,"oldest_held":3,"synced_newest":9,"older_exists":true,"gaps":[{"after":3,"before":7}]}"#
        );
        let entry = OutboxRecord {
            local_id: "t1".into(),
            room_id: "r".into(),
            parts: vec![chatsync_protocol::Part::text("hi")],
            created_at: "2026-11-25T06:00:00.000Z".into(),
            state: MessageState::Failed,
            attempts: 1,
            failure_reason: Some("no".into()),
            after_id: Some(5),
            op: outbox::Op::Send,
            maybe_sent: false,
        };
        assert_eq!(
            String::from_utf8(encode(&entry).unwrap()).unwrap(),
            r#"{"local_id":"t1","room_id":"r","parts":[{"type":"text/plain","content":"hi"}],"created_at":"2026-11-25T06:00:00.000Z","state":"failed","attempts":1,"failure_reason":"no","after_id":5}"#
        );
        let stored = StoredMessage {
            message: chatsync_protocol::Message {
                id: 5,
                user_id: "bob".into(),
                room_id: "r".into(),
                parts: vec![chatsync_protocol::Part::text("yo")],
                created_at: "c".into(),
                updated_at: "u".into(),
            },
            local_id: Some("t0".into()),
            edited_at: None,
            deleted: false,
            reactions: vec![],
        };
        assert_eq!(
            String::from_utf8(encode(&stored).unwrap()).unwrap(),
            r#"{"message":{"id":5,"user_id":"bob","room_id":"r","parts":[{"type":"text/plain","content":"yo"}],"created_at":"c","updated_at":"u"},"local_id":"t0"}"#
        );
        let session = meta::StoredSession {
            user: meta::StoredUser {
                id: "alice".into(),
                name: "Alice".into(),
                avatar: None,
            },
            friend_id: Some("bob".into()),
            room_id: None,
        };
        assert_eq!(
            String::from_utf8(encode(&session).unwrap()).unwrap(),
            r#"{"user":{"_id":"alice","name":"Alice"},"friend_id":"bob","room_id":null}"#
        );
        assert_eq!(
            keys::message_key("r", 5),
            [0, 1, b'r', 0, 0, 0, 0, 0, 0, 0, 5]
        );
    }

    #[test]
    fn a_fresh_store_records_the_format_version() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            assert_eq!(
                store
                    .meta
                    .0
                    .get(meta::FORMAT_VERSION_KEY)
                    .unwrap()
                    .unwrap()
                    .as_ref(),
                &FORMAT_VERSION.to_be_bytes()
            );
        }
        reopen(dir.path());
    }

    #[test]
    fn a_sync_repeating_a_held_id_reports_it_replaced_only_when_its_content_changed() {
        use chatsync_protocol::v2::{RoomSync, SyncResponse};
        use chatsync_protocol::Part;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        let message = |id: u64, text: &str, updated_at: &str| chatsync_protocol::Message {
            id,
            user_id: "bob".into(),
            room_id: "r".into(),
            parts: vec![Part::text(text)],
            created_at: "2026-11-25T06:00:00.000Z".into(),
            updated_at: updated_at.into(),
        };
        let batch = |next: &str, messages: Vec<chatsync_protocol::Message>| SyncResponse {
            next_batch: next.into(),
            has_more: false,
            rooms: [(
                "r".to_owned(),
                RoomSync {
                    messages: messages.into_iter().map(Into::into).collect(),
                    ..Default::default()
                },
            )]
            .into(),
        };
        let t0 = "2026-11-25T06:00:00.000Z";
        let first = batch("s2", vec![message(1, "one", t0), message(2, "two", t0)]);
        let applied = store.apply_sync(&first, None).unwrap();
        assert_eq!(applied.new, BTreeMap::from([("r".to_owned(), vec![1, 2])]));
        assert!(applied.replaced.is_empty());
        // The message sent by this device (1) keeps its local id through a replacement.
        let ack = message(1, "one", t0).into();
        store.complete_send(0, "local-1", &ack).unwrap();

        // The same batch again, from either token: nothing new, nothing replaced.
        for since in [None, Some("s2")] {
            let again = store.apply_sync(&first, since).unwrap();
            assert!(again.new.values().all(Vec::is_empty), "{again:?}");
            assert!(again.replaced.is_empty(), "{again:?}");
        }

        // Message 1 edited (new parts and updated_at), message 2 repeated as it was, 3 new.
        let t1 = "2026-11-25T07:00:00.000Z";
        let edited = batch(
            "s3",
            vec![
                message(1, "one, edited", t1),
                message(2, "two", t0),
                message(3, "three", t0),
            ],
        );
        let applied = store.apply_sync(&edited, Some("s2")).unwrap();
        assert_eq!(applied.new, BTreeMap::from([("r".to_owned(), vec![3])]));
        assert_eq!(
            applied.replaced,
            BTreeMap::from([("r".to_owned(), vec![1])])
        );
        let held = store.messages.get("r", 1).unwrap().unwrap();
        assert_eq!(held.message, message(1, "one, edited", t1));
        assert_eq!(held.local_id.as_deref(), Some("local-1"));
        assert_eq!(store.room("r").unwrap().unwrap().count, 3);

        // Only updated_at changed: still a replacement. Then the same again: no change.
        let touched = batch("s4", vec![message(2, "two", t1)]);
        let applied = store.apply_sync(&touched, Some("s3")).unwrap();
        assert_eq!(
            applied.replaced,
            BTreeMap::from([("r".to_owned(), vec![2])])
        );
        let again = store.apply_sync(&touched, Some("s4")).unwrap();
        assert!(again.replaced.is_empty() && again.new.values().all(Vec::is_empty));
    }

    #[test]
    fn a_second_open_of_the_same_store_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path(), 1 << 20).unwrap();
        match Store::open(dir.path(), 1 << 20) {
            Err(StoreError::Busy(_)) => {}
            Err(e) => panic!("expected Busy, got {e}"),
            Ok(_) => panic!("expected Busy, got a second handle"),
        }
    }
}
