//! The SQLite backend: one file, WAL journal, `synchronous=FULL` (an acknowledged message is on
//! disk before the client hears about it), schema versioned with `PRAGMA user_version` and migrated
//! forward at open. The one writing connection belongs to the store's one writer, so SQLite's own
//! write lock is what serializes positions with commits; reader connections read snapshots
//! beside it (WAL).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::value::{Arg, Cell, Row, Sql};
use super::{
    current_head, Change, Head, ReadConn, Reporting, RoomCache, SqlOptions, SqlStore, StoreError,
    WriteConn,
};

/// Schema migrations; index `i` moves the database from version `i` to `i + 1`.
pub(super) const MIGRATIONS: &[&str] = &[
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
        -- The position: the rowid, the previous one plus one, taken in the committing
        -- transaction (rows are never deleted, so never reused).
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
    // Version 3: a receipt's unread count as of the change, so a follower of the stream reports
    // it as the writer did (the PostgreSQL schema has it from the start).
    "ALTER TABLE changes ADD COLUMN unread INTEGER;",
];

impl SqlStore {
    /// Opens (creating if missing) and migrates the SQLite database at `path`, with default
    /// options.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, SqlOptions::default())
    }

    /// Opens (creating if missing) and migrates the SQLite database at `path`.
    pub fn open_with(path: &Path, options: SqlOptions) -> Result<Self, StoreError> {
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
        let mut readers: Vec<Box<dyn ReadConn>> = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            let reader = open_connection(path)?;
            reader.pragma_update(None, "query_only", "ON")?;
            readers.push(Box::new(SqliteReader(reader)));
        }
        Ok(SqlStore::assemble(
            Box::new(SqliteWriter(conn)),
            readers,
            head,
            options,
            Arc::new(RoomCache::default()),
            Reporting::Direct,
        ))
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

/// The writing connection: its transactions are `IMMEDIATE` (the write lock from the start).
struct SqliteWriter(Connection);

impl WriteConn for SqliteWriter {
    fn write(
        &mut self,
        head: &mut Head,
        changes: &mut Vec<Change>,
        work: &mut dyn FnMut(&dyn Sql, &mut Head, &mut Vec<Change>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tx = self
            .0
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The one writer: the head it tracks is the database's.
        work(&*tx, head, changes)?;
        tx.commit()?;
        Ok(())
    }

    fn close(self: Box<Self>) {
        // Fold the WAL back into the main file so the next open starts clean; best effort.
        let _ = self.0.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        if let Err((_, e)) = self.0.close() {
            tracing::warn!(error = %e, "closing the database failed");
        }
    }
}

/// A reading connection: each read a deferred transaction, a snapshot from its first statement.
struct SqliteReader(Connection);

impl ReadConn for SqliteReader {
    fn read(
        &mut self,
        work: &mut dyn FnMut(&dyn Sql) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tx = self.0.transaction()?;
        work(&*tx)
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Arg::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Arg::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
        })
    }
}

impl Sql for Connection {
    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let changed = self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(args.iter()))?;
        Ok(changed as u64)
    }

    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut cells = Vec::with_capacity(columns);
            for i in 0..columns {
                cells.push(match row.get_ref(i)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Text(t) => Cell::Text(
                        std::str::from_utf8(t)
                            .map_err(|e| StoreError::Corrupt(format!("text column {i}: {e}")))?
                            .to_owned(),
                    ),
                    other => {
                        return Err(StoreError::Corrupt(format!(
                            "column {i} holds a {:?}",
                            other.data_type()
                        )))
                    }
                });
            }
            out.push(Row(cells));
        }
        Ok(out)
    }
}
