//! The two baselines chatsync is measured against, on the same messages:
//!
//! - [`ReduxPersist`]: what the original app did. Its whole message state (room -> array of
//!   messages) lives in memory and is serialized to JSON and written out after every change;
//!   a cold start reads and parses all of it. The write goes to a temporary file renamed over
//!   the old one (what AsyncStorage does on iOS: `writeToFile:atomically:`), without fsync by
//!   default, as AsyncStorage does not fsync either; `fsync: true` measures the durable variant.
//!   The JSON is encoded once (redux-persist encodes each reducer key and then the whole state
//!   again, so the real thing costs a little more).
//! - [`SqliteBaseline`]: one row per message in SQLite (bundled, WAL, `synchronous=FULL` so a
//!   committed message survives power loss, as chatsync's flushed one does), an index on
//!   (room, id) for the newest-first page.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chatsync_protocol::{Message, Part};
use rusqlite::{params, Connection};

/// Whole-state JSON persistence, as redux-persist did it for the original app.
pub struct ReduxPersist {
    /// The persisted file.
    path: PathBuf,
    /// The in-memory state: room id -> messages, oldest first.
    pub state: BTreeMap<String, Vec<Message>>,
    /// Whether each write is fsynced before the rename.
    fsync: bool,
}

impl ReduxPersist {
    /// An empty state persisted at `path`.
    pub fn new(path: &Path, fsync: bool) -> ReduxPersist {
        ReduxPersist {
            path: path.to_owned(),
            state: BTreeMap::new(),
            fsync,
        }
    }

    /// Adds messages to the in-memory state without writing (seeding).
    pub fn extend(&mut self, messages: impl IntoIterator<Item = Message>) {
        for m in messages {
            self.state.entry(m.room_id.clone()).or_default().push(m);
        }
    }

    /// One received message: added to the state, then the whole state written out.
    pub fn persist_one(&mut self, message: Message) -> std::io::Result<()> {
        self.extend([message]);
        self.write()
    }

    /// Serializes the whole state and replaces the file with it.
    pub fn write(&self) -> std::io::Result<()> {
        let json = serde_json::to_vec(&self.state)?;
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        if self.fsync {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&tmp, &self.path)
    }

    /// Cold start: reads and parses the whole file, as a rehydrate does.
    pub fn load(path: &Path) -> std::io::Result<BTreeMap<String, Vec<Message>>> {
        let bytes = std::fs::read(path)?;
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// One row per message in SQLite.
pub struct SqliteBaseline {
    conn: Connection,
}

impl SqliteBaseline {
    /// Opens or creates the database at `path`: WAL, `synchronous=FULL`.
    pub fn open(path: &Path) -> rusqlite::Result<SqliteBaseline> {
        let conn = Connection::open(path)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS messages (
                id INTEGER PRIMARY KEY,
                room_id TEXT NOT NULL,
                user_id TEXT NOT NULL,
                parts TEXT NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room_id, id);",
        )?;
        Ok(SqliteBaseline { conn })
    }

    /// Inserts many messages in one transaction (seeding).
    pub fn insert_many(
        &mut self,
        messages: impl IntoIterator<Item = Message>,
    ) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for m in messages {
                insert.execute(row(&m))?;
            }
        }
        tx.commit()
    }

    /// One received message, in its own committed transaction.
    pub fn persist_one(&self, m: &Message) -> rusqlite::Result<()> {
        self.conn.prepare_cached(INSERT)?.execute(row(m))?;
        Ok(())
    }

    /// The newest `limit` messages of `room_id`, newest first.
    pub fn newest(&self, room_id: &str, limit: u32) -> rusqlite::Result<Vec<Message>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, room_id, user_id, parts, created_at, updated_at FROM messages
             WHERE room_id = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![room_id, limit], |r| {
            let parts: String = r.get(3)?;
            let parts: Vec<Part> = serde_json::from_str(&parts).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    3,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?;
            Ok(Message {
                id: r.get::<_, i64>(0)? as u64,
                room_id: r.get(1)?,
                user_id: r.get(2)?,
                parts,
                created_at: r.get(4)?,
                updated_at: r.get(5)?,
            })
        })?;
        rows.collect()
    }

    /// Number of stored messages.
    pub fn count(&self) -> rusqlite::Result<u64> {
        self.conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
    }
}

const INSERT: &str = "INSERT INTO messages (id, room_id, user_id, parts, created_at, updated_at)
                      VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

fn row(m: &Message) -> (i64, &str, &str, String, &str, &str) {
    (
        m.id as i64,
        &m.room_id,
        &m.user_id,
        serde_json::to_string(&m.parts).expect("parts encode"),
        &m.created_at,
        &m.updated_at,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{message, room_id};

    #[test]
    fn redux_persist_round_trips_the_whole_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut redux = ReduxPersist::new(&path, true);
        redux.extend((1..=10).map(|i| message(&room_id(0), i)));
        redux.persist_one(message(&room_id(1), 11)).unwrap();
        let loaded = ReduxPersist::load(&path).unwrap();
        assert_eq!(loaded, redux.state);
        assert_eq!(loaded[&room_id(0)].len(), 10);
    }

    #[test]
    fn sqlite_reads_the_newest_page_of_one_room() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = SqliteBaseline::open(&dir.path().join("m.db")).unwrap();
        db.insert_many((1..=100).map(|i| message(&room_id((i % 2) as usize), i)))
            .unwrap();
        db.persist_one(&message(&room_id(0), 102)).unwrap();
        let page = db.newest(&room_id(0), 3).unwrap();
        assert_eq!(
            page.iter().map(|m| m.id).collect::<Vec<_>>(),
            vec![102, 100, 98]
        );
        assert_eq!(page[0], message(&room_id(0), 102));
        assert_eq!(db.count().unwrap(), 101);
    }
}
