//! The SQLite backend: one file, WAL journal, `synchronous=FULL` (an acknowledged message is on
//! disk before the client hears about it), schema versioned with `PRAGMA user_version` and migrated
//! forward at open. One connection behind a mutex: SQLite serialises writers anyway, every call is
//! short, and it makes each call one consistent snapshot (ids are committed in order, so a sync
//! position never skips a message that commits later).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chatsync_protocol::{Direction, Message, Part, Room, RoomSync, User};
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use super::{HistoryPage, HistoryQuery, NewMessage, SendOutcome, Store, StoreError, SyncBatch};
use crate::sync_token::SyncPosition;

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
];

/// Columns of a message row, in the order [`message_from_row`] reads them.
const MESSAGE_COLUMNS: &str = "id, room_id, user_id, parts, created_at, updated_at";

/// A SQLite database file holding everything the server stores.
#[derive(Debug)]
pub struct SqliteStore {
    /// `None` once closed. A std Mutex: calls run on blocking threads and never await inside.
    conn: Mutex<Option<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(journal_mode = %mode, "SQLite did not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn)?;
        Ok(SqliteStore {
            conn: Mutex::new(Some(conn)),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let conn = guard.as_mut().ok_or(StoreError::Closed)?;
        f(conn)
    }

    /// For benchmarks and tests only (no route calls it): stores `messages` in one transaction,
    /// in order, with ids from the same sequence as [`Store::send_message`], so a large history
    /// is seeded in seconds instead of one fsync per message. The rooms must exist; nobody is
    /// woken (seed before the server starts). Returns the assigned ids.
    pub fn seed_messages_for_benches(
        &self,
        messages: &[NewMessage],
    ) -> Result<Vec<u64>, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut ids = Vec::with_capacity(messages.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO messages (room_id, user_id, txn_id, parts, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                )?;
                let mut newest =
                    tx.prepare_cached("UPDATE rooms SET last_message_id = ?1 WHERE id = ?2")?;
                for new in messages {
                    let parts = serde_json::to_string(&new.parts)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    insert.execute(params![new.room_id, new.sender, new.txn_id, parts, new.now])?;
                    let id = tx.last_insert_rowid();
                    newest.execute(params![id, new.room_id])?;
                    ids.push(id as u64);
                }
            }
            tx.commit()?;
            Ok(ids)
        })
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

fn message_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Message, String)> {
    let id: i64 = row.get(0)?;
    let parts: String = row.get(3)?;
    Ok((
        Message {
            id: id as u64,
            room_id: row.get(1)?,
            user_id: row.get(2)?,
            parts: Vec::new(),
            created_at: row.get(4)?,
            updated_at: row.get(5)?,
        },
        parts,
    ))
}

/// Runs a message query and decodes the parts column.
fn query_messages(
    tx: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Message>, StoreError> {
    let mut stmt = tx.prepare_cached(sql)?;
    let rows = stmt.query_map(params, message_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        let (mut message, parts) = row?;
        message.parts = serde_json::from_str::<Vec<Part>>(&parts)
            .map_err(|e| StoreError::Corrupt(format!("parts of message {}: {e}", message.id)))?;
        out.push(message);
    }
    Ok(out)
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
    for member in &members {
        insert.execute(params![id, member])?;
    }
    Ok(Room {
        id,
        name: name.map(str::to_owned),
        member_ids: members,
        created_at: now.to_owned(),
    })
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
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 AND id <= ?3 ORDER BY id DESC LIMIT ?4"
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
    fn put_user(&self, user: &User) -> Result<User, StoreError> {
        self.with(|conn| {
            conn.prepare_cached(
                "INSERT INTO users (id, name, avatar_url) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, avatar_url = excluded.avatar_url",
            )?
            .execute(params![user.id, user.name, user.avatar_url])?;
            Ok(user.clone())
        })
    }

    fn user(&self, user_id: &str) -> Result<Option<User>, StoreError> {
        self.with(|conn| {
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

    fn create_room(
        &self,
        name: Option<&str>,
        member_ids: &[String],
        now: &str,
    ) -> Result<Room, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let room = insert_room(&tx, name, member_ids, now, None)?;
            tx.commit()?;
            Ok(room)
        })
    }

    fn direct_room(&self, a: &str, b: &str, now: &str) -> Result<(Room, bool), StoreError> {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let key = format!("{lo}\n{hi}");
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let existing: Option<String> = tx
                .prepare_cached("SELECT id FROM rooms WHERE direct_key = ?1")?
                .query_row([&key], |row| row.get(0))
                .optional()?;
            let result = match existing {
                Some(id) => {
                    let room = load_room(&tx, &id)?
                        .ok_or_else(|| StoreError::Corrupt(format!("room {id} vanished")))?;
                    (room, false)
                }
                None => (
                    insert_room(&tx, None, &[lo.to_owned(), hi.to_owned()], now, Some(&key))?,
                    true,
                ),
            };
            tx.commit()?;
            Ok(result)
        })
    }

    fn room(&self, room_id: &str) -> Result<Option<Room>, StoreError> {
        self.with(|conn| load_room(conn, room_id))
    }

    fn rooms_of(&self, user_id: &str) -> Result<Vec<Room>, StoreError> {
        self.with(|conn| {
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

    fn send_message(&self, new: NewMessage) -> Result<SendOutcome, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE user_id = ?1 AND txn_id = ?2");
            let existing = query_messages(&tx, &sql, params![new.sender, new.txn_id])?.into_iter().next();
            let (message, created) = match existing {
                Some(message) => (message, false),
                None => {
                    let parts = serde_json::to_string(&new.parts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    tx.prepare_cached(
                        "INSERT INTO messages (room_id, user_id, txn_id, parts, created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
                    )?
                    .execute(params![new.room_id, new.sender, new.txn_id, parts, new.now])?;
                    let id = tx.last_insert_rowid();
                    tx.prepare_cached("UPDATE rooms SET last_message_id = ?1 WHERE id = ?2")?.execute(params![id, new.room_id])?;
                    let message = Message {
                        id: id as u64,
                        user_id: new.sender,
                        room_id: new.room_id,
                        parts: new.parts,
                        created_at: new.now.clone(),
                        updated_at: new.now,
                    };
                    (message, true)
                }
            };
            let member_ids = room_members(&tx, &message.room_id)?;
            tx.commit()?;
            Ok(SendOutcome { message, created, member_ids })
        })
    }

    fn history(&self, room_id: &str, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        let fetch = query.limit as i64 + 1;
        self.with(|conn| {
            let mut messages = match query.direction {
                Direction::Older => {
                    let before = query.initial_id.map_or(i64::MAX, to_i64);
                    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3");
                    query_messages(conn, &sql, params![room_id, before, fetch])?
                }
                Direction::Newer => {
                    let after = query.initial_id.map_or(0, to_i64);
                    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3");
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
        self.with(|conn| {
            let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3");
            query_messages(conn, &sql, params![room_id, to_i64(after), limit as i64])
        })
    }

    fn sync(
        &self,
        user_id: &str,
        since: Option<SyncPosition>,
        limit: u32,
    ) -> Result<SyncBatch, StoreError> {
        self.with(|conn| {
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
        self.with(|conn| current_position(conn))
    }

    fn close(&self) {
        let mut guard = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(conn) = guard.take() {
            // Fold the WAL back into the main file so the next open starts clean; best effort.
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
            if let Err((_, e)) = conn.close() {
                tracing::warn!(error = %e, "closing the database failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    fn send(store: &SqliteStore, room: &str, sender: &str, txn: &str) -> SendOutcome {
        store
            .send_message(NewMessage {
                room_id: room.into(),
                sender: sender.into(),
                txn_id: txn.into(),
                parts: vec![Part::text(txn)],
                now: "2026-01-01T00:00:00.000Z".into(),
            })
            .unwrap()
    }

    #[test]
    fn ids_increase_and_resend_is_idempotent() {
        let (_d, s) = store();
        let room = s
            .create_room(None, &["alice".into(), "bob".into()], "t")
            .unwrap();
        let a = send(&s, &room.id, "alice", "t1");
        let b = send(&s, &room.id, "alice", "t2");
        let again = send(&s, &room.id, "alice", "t1");
        assert!(a.created && b.created && !again.created);
        assert!(b.message.id > a.message.id);
        assert_eq!(again.message, a.message);
        assert_eq!(a.member_ids, vec!["alice", "bob"]);
    }

    #[test]
    fn sync_reports_new_rooms_and_new_messages_only() {
        let (_d, s) = store();
        let r1 = s.create_room(None, &["alice".into()], "t").unwrap();
        send(&s, &r1.id, "alice", "a");
        let first = s.sync("alice", None, 10).unwrap();
        assert_eq!(first.rooms[&r1.id].messages.len(), 1);
        let nothing = s.sync("alice", Some(first.position), 10).unwrap();
        assert!(nothing.rooms.is_empty());
        let r2 = s
            .create_room(None, &["alice".into(), "bob".into()], "t")
            .unwrap();
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
            let room = s.create_room(Some("x"), &["alice".into()], "t").unwrap();
            send(&s, &room.id, "alice", "a");
            s.close();
            assert!(matches!(s.room(&room.id), Err(StoreError::Closed)));
            room
        };
        let s = SqliteStore::open(&path).unwrap();
        assert_eq!(s.room(&room.id).unwrap(), Some(room.clone()));
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
        let rooms: Vec<String> = (0..3)
            .map(|_| store.create_room(None, &["u".into()], "t").unwrap().id)
            .collect();
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
}
