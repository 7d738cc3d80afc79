//! The PostgreSQL backend, for deployments that outgrow one machine: several server instances on
//! one database behind any load balancer (docs/adr/0017-postgresql.md).
//!
//! - **Positions are serialized with commits across instances.** Every instance's writer takes a
//!   transaction-scoped advisory lock first thing in each write transaction, then reads where the
//!   stream stands and takes the next message ids, membership numbers and positions from there.
//!   PostgreSQL releases the lock only after the commit is visible, so the next writer (of any
//!   instance) sees it and continues after it: positions are in commit order and a snapshot
//!   always holds a prefix of them. A device that synced past position `p` on one instance can
//!   never be passed by a change committed later with a position at or below `p` on another.
//!   The cost is one writer at a time for the whole deployment; group commit keeps that cheap
//!   (each transaction carries every write queued on its instance).
//! - **Instances learn of each other's commits through LISTEN/NOTIFY.** Each write transaction
//!   notifies its changes (or, when they do not fit in a notification, the stream's new head);
//!   PostgreSQL delivers the notices at commit, in commit order. Each instance's [`Follower`]
//!   hands the changes to its feed (the notifier), which answers and wakes that instance's parked
//!   long-polls from memory; it reads the stream, in one snapshot, only for what a notice did
//!   not carry, or after it reconnected ([`notice`]). Its own commits go to the feed directly
//!   when nothing from elsewhere came in between.
//! - **Nothing else lives in an instance** but parked long-polls, the feed (a cache of the
//!   stream) and the room cache (rooms never change once created).
//! - Reads are `REPEATABLE READ READ ONLY` transactions: one snapshot each, like SQLite's.
//! - Text columns compare byte-wise (`COLLATE "C"`), as SQLite's do, so every ordering (members,
//!   reactions) is the same on both backends.
//! - Connections are plain TCP (`NoTls`): run the database on a private network or loopback. A URL
//!   that asks for TLS (`sslmode=require`) is refused rather than silently sent in the clear.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::{Client, NoTls, SimpleQueryMessage, SimpleQueryRow, Statement};

use super::notice::{self, Heard};
use super::value::{Arg, Cell, Row, Sql};
use super::{
    current_head, stream, CommitSink, Committed, Head, ReadConn, Reporting, RoomCache, SqlOptions,
    SqlStore, StoreError, WriteConn, HEAD_SQL,
};
use crate::store::{Change, LoadSink, TypingNotice, TypingSink};

/// Schema migrations; index `i` moves the database from version `i` to `i + 1`. Version 1 is
/// SQLite's version 3 (the same tables, columns and indexes).
const MIGRATIONS: &[&str] = &[r#"
    CREATE TABLE users (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        avatar_url TEXT
    );
    CREATE TABLE rooms (
        id TEXT COLLATE "C" PRIMARY KEY,
        name TEXT,
        created_at TEXT NOT NULL,
        last_message_id BIGINT NOT NULL DEFAULT 0,
        direct_key TEXT COLLATE "C" UNIQUE,
        last_pos BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE members (
        seq BIGINT PRIMARY KEY,
        room_id TEXT COLLATE "C" NOT NULL REFERENCES rooms(id),
        user_id TEXT COLLATE "C" NOT NULL,
        UNIQUE (room_id, user_id)
    );
    CREATE INDEX members_by_user ON members (user_id, seq);
    CREATE TABLE messages (
        id BIGINT PRIMARY KEY,
        room_id TEXT COLLATE "C" NOT NULL REFERENCES rooms(id),
        user_id TEXT COLLATE "C" NOT NULL,
        txn_id TEXT COLLATE "C" NOT NULL,
        parts TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        edited_at TEXT,
        deleted BIGINT NOT NULL DEFAULT 0,
        UNIQUE (user_id, txn_id)
    );
    CREATE INDEX messages_by_room ON messages (room_id, id);
    CREATE TABLE changes (
        pos BIGINT PRIMARY KEY,
        room_id TEXT COLLATE "C" NOT NULL,
        kind BIGINT NOT NULL,
        message_id BIGINT,
        user_id TEXT COLLATE "C",
        unread BIGINT
    );
    CREATE INDEX changes_by_room ON changes (room_id, pos) WHERE kind <> 0;
    CREATE TABLE reactions (
        message_id BIGINT NOT NULL REFERENCES messages(id),
        key TEXT COLLATE "C" NOT NULL,
        user_id TEXT COLLATE "C" NOT NULL,
        pos BIGINT NOT NULL,
        PRIMARY KEY (message_id, key, user_id)
    );
    CREATE TABLE receipts (
        room_id TEXT COLLATE "C" NOT NULL REFERENCES rooms(id),
        user_id TEXT COLLATE "C" NOT NULL,
        message_id BIGINT NOT NULL,
        pos BIGINT NOT NULL,
        PRIMARY KEY (room_id, user_id)
    );
    CREATE TABLE writes (
        user_id TEXT COLLATE "C" NOT NULL,
        kind BIGINT NOT NULL,
        txn_id TEXT COLLATE "C" NOT NULL,
        room_id TEXT COLLATE "C" NOT NULL,
        message_id BIGINT,
        PRIMARY KEY (user_id, kind, txn_id)
    );
    -- Keys every instance must share (dev mode's token key), generated by the first.
    CREATE TABLE secrets (
        name TEXT COLLATE "C" PRIMARY KEY,
        value TEXT NOT NULL
    );
"#];

/// Most changes a follower hands to the feed in one report.
const FOLLOW_CHUNK: usize = 10_000;

/// How long a connection attempt may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Notices waiting for the publisher (typing, load); more are dropped (a typing indicator or a
/// long-poll count, while the database is slow or away, is not worth unbounded memory).
const PUBLISH_BACKLOG: usize = 256;

/// How long another instance's long-poll count holds without being repeated (instances repeat
/// theirs every second, see `crate::start`): an instance that stopped is forgotten after it.
const LOAD_HOLDS: Duration = Duration::from_secs(5);

/// How long the listener waits for a notification before it looks whether it should stop.
const LISTEN_POLL: Duration = Duration::from_millis(250);

/// Where to connect and which schema to use.
#[derive(Debug, Clone)]
struct Target {
    url: String,
    /// A schema other than the user's default (tests: one per test).
    schema: Option<String>,
}

impl Target {
    fn connect(&self) -> Result<PgClient, StoreError> {
        let mut config: postgres::Config = self.url.parse()?;
        if config.get_connect_timeout().is_none() {
            // An unreachable database fails a request (and the listener retries) instead of
            // hanging it for the system's TCP timeout of minutes.
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = config.connect(NoTls)?;
        if let Some(schema) = &self.schema {
            client.batch_execute(&format!("SET search_path TO {}", quote_ident(schema)))?;
        }
        Ok(PgClient(Some(client)))
    }
}

/// A client whose drop never blocks an async thread: the postgres crate closes a connection by
/// running a runtime of its own, which panics on a thread that already runs one (a store is
/// often dropped by an async task).
struct PgClient(Option<Client>);

impl std::ops::Deref for PgClient {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.0.as_ref().expect("a client is there until dropped")
    }
}

impl std::ops::DerefMut for PgClient {
    fn deref_mut(&mut self) -> &mut Client {
        self.0.as_mut().expect("a client is there until dropped")
    }
}

impl Drop for PgClient {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("chatsync-pg-close".into())
                .spawn(move || drop(client));
        }
    }
}

/// `text` as a quoted SQL string literal: an escape string (`E'...'`), whose backslashes mean
/// the same whatever the server's `standard_conforming_strings`.
fn quote_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The advisory lock and notification channels of one schema: instances on other schemas of the
/// same database do not wait for each other. Channel names come from the schema name's hash, not
/// the name itself: PostgreSQL truncates identifiers at 63 bytes and refuses longer channel names
/// in `pg_notify`, which would fail every write on a schema with a long name.
#[derive(Debug, Clone)]
struct Names {
    lock_key: i64,
    channel: String,
    /// Where typing notices go (typing is not stored; see [`crate::typing`]).
    typing_channel: String,
    /// Where each instance's count of parked long-polls goes (see [`Follower::publish_load`]).
    load_channel: String,
}

impl Names {
    fn of(schema: &str) -> Names {
        // FNV-1a: a stable key from the schema's name.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in format!("chatsync:{schema}").bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Names {
            lock_key: hash as i64,
            channel: format!("chatsync_{hash:016x}"),
            typing_channel: format!("chatsync_typing_{hash:016x}"),
            load_channel: format!("chatsync_load_{hash:016x}"),
        }
    }
}

impl SqlStore {
    /// Connects to the PostgreSQL database at `url` (`postgres://user@host:port/db`), migrates
    /// its schema (instances starting together take turns), and opens the store, with its
    /// follower of the other instances' commits.
    pub fn open_postgres(url: &str, options: SqlOptions) -> Result<Self, StoreError> {
        Self::open_postgres_in(url, None, options)
    }

    /// [`SqlStore::open_postgres`] on a schema other than the connection's default (it must
    /// exist): tests give each store a schema of its own.
    pub fn open_postgres_in(
        url: &str,
        schema: Option<&str>,
        options: SqlOptions,
    ) -> Result<Self, StoreError> {
        let target = Target {
            url: url.to_owned(),
            schema: schema.map(str::to_owned),
        };
        let mut client = target.connect()?;
        let current: Option<String> = client.query_one("SELECT current_schema()", &[])?.get(0);
        let Some(current) = current else {
            return Err(StoreError::Corrupt(
                "no schema to use: none of the search_path's schemas exists in this database"
                    .into(),
            ));
        };
        let names = Names::of(&current);
        migrate(&mut client, &names)?;
        let mut writer = PgConn::new(client, target.clone());
        let head = writer.read(|sql| current_head(sql))?;
        let mut readers: Vec<Box<dyn ReadConn>> = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            readers.push(Box::new(PgConn::new(target.connect()?, target.clone())));
        }
        let follower = Arc::new(Follower {
            target: target.clone(),
            names: names.clone(),
            rooms: Arc::new(RoomCache::default()),
            state: Mutex::new(FollowState {
                conn: None,
                pos: head.pos,
                sink: None,
            }),
            stopped: AtomicBool::new(false),
            instance: uuid::Uuid::new_v4().simple().to_string(),
            typing_sink: Mutex::new(None),
            load_sink: Mutex::new(None),
            loads: Mutex::new(HashMap::new()),
            publisher: Mutex::new(None),
        });
        Ok(SqlStore::assemble(
            Box::new(PgWriter {
                conn: writer,
                names,
            }),
            readers,
            head,
            options,
            Arc::clone(&follower.rooms),
            Reporting::Follow(follower),
        ))
    }
}

impl SqlStore {
    /// The secret kept in a PostgreSQL database under `name`, stored as `fresh` if there is
    /// none yet: whichever instance comes first decides, the others read it.
    pub fn shared_secret(&self, name: &str, fresh: &str) -> Result<String, StoreError> {
        let Reporting::Follow(follower) = &self.reporting else {
            return Err(StoreError::Corrupt(
                "shared secrets live in PostgreSQL databases only".into(),
            ));
        };
        let mut client = follower.target.connect()?;
        client.execute(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &fresh],
        )?;
        Ok(client
            .query_one("SELECT value FROM secrets WHERE name = $1", &[&name])?
            .get(0))
    }
}

/// Creates the schema's tables or brings them up to date, under the schema's advisory lock.
fn migrate(client: &mut Client, names: &Names) -> Result<(), StoreError> {
    let supported = MIGRATIONS.len() as i64;
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&names.lock_key])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS chatsync_schema (version BIGINT NOT NULL)")?;
    let found: i64 = match tx.query_opt("SELECT version FROM chatsync_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO chatsync_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql)?;
        tx.execute(
            "UPDATE chatsync_schema SET version = $1",
            &[&(version as i64 + 1)],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// A connection with its prepared statements (by their text), reconnected when it was lost.
struct PgConn {
    client: PgClient,
    statements: RefCell<HashMap<String, Statement>>,
    target: Target,
}

impl PgConn {
    fn new(client: PgClient, target: Target) -> PgConn {
        PgConn {
            client,
            statements: RefCell::new(HashMap::new()),
            target,
        }
    }

    /// A lost connection (the database restarted, the network cut it) is replaced before use.
    fn ensure_open(&mut self) -> Result<(), StoreError> {
        if self.client.is_closed() {
            self.client = self.target.connect()?;
            self.statements.borrow_mut().clear();
        }
        Ok(())
    }

    /// Runs `work` in a read-only snapshot.
    fn read<T>(
        &mut self,
        work: impl FnOnce(&dyn Sql) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.in_transaction(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            |tx, _| work(tx),
            |_| "COMMIT".to_owned(),
        )
    }

    /// Runs `work` between `begin` and the statements `end` gives for its answer (each a
    /// simple-query batch: one round trip, statements together), rolling back when anything
    /// fails. The transaction is managed by hand rather than with the client's `Transaction`, so
    /// that taking the write lock, reading where the stream stands, notifying and committing
    /// share round trips. `work` gets the rows `begin`'s statements returned.
    fn in_transaction<T>(
        &mut self,
        begin: &str,
        work: impl FnOnce(&PgTx<'_>, &[SimpleQueryRow]) -> Result<T, StoreError>,
        end: impl FnOnce(&T) -> String,
    ) -> Result<T, StoreError> {
        self.ensure_open()?;
        let began = match self.client.simple_query(begin) {
            Ok(began) => began,
            Err(e) => {
                if !self.client.is_closed() {
                    // `begin` may have opened the transaction before its next statement failed
                    // (the write lock timed out): end it, or every later use of this connection
                    // fails.
                    let _ = self.client.batch_execute("ROLLBACK");
                    return Err(e.into());
                }
                // The connection was lost since its last use (the database restarted, a proxy
                // cut it): nothing was done yet, so once more on a new one.
                self.client = self.target.connect()?;
                self.statements.borrow_mut().clear();
                match self.client.simple_query(begin) {
                    Ok(began) => began,
                    Err(e) => {
                        if !self.client.is_closed() {
                            let _ = self.client.batch_execute("ROLLBACK");
                        }
                        return Err(e.into());
                    }
                }
            }
        };
        let rows: Vec<SimpleQueryRow> = began
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect();
        let tx = PgTx {
            client: RefCell::new(&mut self.client),
            statements: &self.statements,
            later: RefCell::new(String::new()),
        };
        let result = work(&tx, &rows).and_then(|out| {
            // The writes held for the commit go with it ([`Sql::execute_later`]).
            let end = tx.later.take() + &end(&out);
            tx.client.borrow_mut().batch_execute(&end)?;
            Ok(out)
        });
        if result.is_err() && !self.client.is_closed() {
            // Aborted, or never committed: either way nothing of it stays.
            let _ = self.client.batch_execute("ROLLBACK");
        }
        result
    }
}

impl ReadConn for PgConn {
    fn read(
        &mut self,
        work: &mut dyn FnMut(&dyn Sql) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        PgConn::read(self, work)
    }
}

/// The head from [`HEAD_SQL`]'s row, as the simple-query protocol returns it (text).
fn head_of(row: &SimpleQueryRow) -> Option<Head> {
    let number = |i: usize| row.get(i)?.parse::<u64>().ok();
    Some(Head {
        v1: crate::sync_token::SyncPosition {
            message_id: number(0)?,
            membership_seq: number(1)?,
        },
        pos: number(2)?,
    })
}

/// The writing connection of an instance.
struct PgWriter {
    conn: PgConn,
    names: Names,
}

impl WriteConn for PgWriter {
    fn write(
        &mut self,
        head: &mut Head,
        changes: &mut Vec<Change>,
        work: &mut dyn FnMut(&dyn Sql, &mut Head, &mut Vec<Change>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // The deployment's one writer at a time: the lock is held until the commit is visible.
        // Other instances may have written since this one last did: where the stream stands is
        // read once the lock is held, in the same round trip. The transaction's id comes with
        // it, to learn the outcome of a commit whose answer was lost.
        let begin = format!(
            "BEGIN; SELECT pg_advisory_xact_lock({}); {HEAD_SQL}; SELECT pg_current_xact_id()::text",
            self.names.lock_key
        );
        let channel = quote_literal(&self.names.channel);
        #[cfg(test)]
        let cut = testing_cut::take(&self.names.channel);
        let mut xid: Option<String> = None;
        let written = self.conn.in_transaction(
            &begin,
            |tx, began| {
                xid = began.last().and_then(|row| row.get(0)).map(str::to_owned);
                *head = match began.iter().rev().nth(1).map(head_of) {
                    Some(Some(found)) => found,
                    _ => current_head(tx)?,
                };
                let before = head.pos;
                work(tx, head, changes)?;
                Ok((head.pos != before).then(|| notice::payload(changes, head)))
            },
            // The others learn of it at the commit, in commit order: its changes, when they fit.
            |payload| {
                let end = match payload {
                    Some(payload) => format!(
                        "SELECT pg_notify({channel}, {}); COMMIT",
                        quote_literal(payload)
                    ),
                    None => "COMMIT".to_owned(),
                };
                #[cfg(test)]
                let end = cut.around(end);
                end
            },
        );
        match (written, xid) {
            (Ok(_), _) => Ok(()),
            // Failed, but perhaps only the answer was lost: the connection dropped while COMMIT
            // ran. Then the writes are stored, and answering them as failed would have the
            // writer do them again one by one: a room created twice (a plain room creation has no
            // key to know it again by).
            (Err(e), Some(xid)) => match self.outcome(&xid) {
                Some(Outcome::Committed) => {
                    tracing::warn!(error = %e, "a commit's answer was lost; it was stored");
                    Ok(())
                }
                _ => Err(e),
            },
            (Err(e), None) => Err(e),
        }
    }

    fn close(self: Box<Self>) {
        // Dropping closes it (off the async threads, see `PgClient`).
        drop(self);
    }
}

/// What became of a transaction whose commit's answer was lost.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Committed,
    Aborted,
}

/// How long to wait for a transaction that is still in progress on a lost connection (its
/// backend ends it when it notices, within a moment) before leaving its outcome unknown.
const OUTCOME_WAIT: Duration = Duration::from_secs(5);

impl PgWriter {
    /// What became of transaction `xid`, from the database (`pg_xact_status`, made for this):
    /// `None` when it cannot be reached or the transaction is still in progress after
    /// [`OUTCOME_WAIT`].
    fn outcome(&mut self, xid: &str) -> Option<Outcome> {
        let deadline = Instant::now() + OUTCOME_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            // The failed connection may not know it is closed yet: a fresh one when it errs.
            let status = self.conn.ensure_open().ok().and_then(|()| {
                match self
                    .conn
                    .client
                    .query_one("SELECT pg_xact_status($1::text::xid8)", &[&xid])
                {
                    Ok(row) => Some(row.get::<_, Option<String>>(0)),
                    Err(_) => {
                        self.conn.client = self.conn.target.connect().ok()?;
                        self.conn.statements.borrow_mut().clear();
                        None
                    }
                }
            });
            match status.flatten().as_deref() {
                Some("committed") => return Some(Outcome::Committed),
                Some("aborted") => return Some(Outcome::Aborted),
                _ if Instant::now() >= deadline => return None,
                _ => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
            }
        }
    }
}

/// A transaction on a [`PgConn`], as the store's logic speaks to it.
struct PgTx<'a> {
    client: RefCell<&'a mut PgClient>,
    statements: &'a RefCell<HashMap<String, Statement>>,
    /// Writes held for the commit, as statements with their values written in, each ending in
    /// `;` ([`Sql::execute_later`]).
    later: RefCell<String>,
}

impl PgTx<'_> {
    fn prepare(&self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.borrow_mut().prepare(&numbered_params(sql))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// `sql` with each `?N` replaced by `args[N - 1]` as a literal, for a simple-query batch (which
/// takes no parameters). Values are integers, text (an escape string, [`quote_literal`]) or NULL.
fn with_values(sql: &str, args: &[Arg<'_>]) -> Result<String, StoreError> {
    let mut out = String::with_capacity(sql.len() + 16 * args.len());
    let mut rest = sql;
    while let Some(at) = rest.find('?') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let arg = rest[..digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| args.get(n.checked_sub(1)?))
            .ok_or_else(|| StoreError::Corrupt(format!("no value for a parameter of {sql}")))?;
        match arg {
            Arg::Null => out.push_str("NULL"),
            Arg::Int(v) => out.push_str(&v.to_string()),
            Arg::Text(v) => out.push_str(&quote_literal(v)),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    Ok(out)
}

/// SQLite's `?1` parameters as PostgreSQL's `$1` (the statements hold no `?` otherwise).
fn numbered_params(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn params<'a>(args: &'a [Arg<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    args.iter().map(|a| a as &(dyn ToSql + Sync)).collect()
}

impl Sql for PgTx<'_> {
    fn execute(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let statement = self.prepare(sql)?;
        Ok(self
            .client
            .borrow_mut()
            .execute(&statement, &params(args))?)
    }

    fn query(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>, StoreError> {
        let statement = self.prepare(sql)?;
        let rows = self.client.borrow_mut().query(&statement, &params(args))?;
        rows.iter().map(row_cells).collect()
    }

    fn execute_later(&self, sql: &str, args: &[Arg<'_>]) -> Result<(), StoreError> {
        let statement = with_values(sql, args)?;
        let mut later = self.later.borrow_mut();
        later.push_str(&statement);
        later.push_str("; ");
        Ok(())
    }
}

fn row_cells(row: &postgres::Row) -> Result<Row, StoreError> {
    let mut cells = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let cell = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Cell::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|v| Cell::Int(v.into()))
        } else if *ty == Type::VOID {
            None
        } else if [Type::TEXT, Type::VARCHAR, Type::NAME, Type::BPCHAR].contains(ty) {
            row.try_get::<_, Option<String>>(i)?.map(Cell::Text)
        } else {
            return Err(StoreError::Corrupt(format!("column {i} has type {ty}")));
        };
        cells.push(cell.unwrap_or(Cell::Null));
    }
    Ok(Row(cells))
}

impl ToSql for Arg<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Arg::Null => Ok(IsNull::Yes),
            Arg::Text(v) => v.to_sql(ty, out),
            Arg::Int(v) => {
                if *ty == Type::INT8 {
                    v.to_sql(ty, out)
                } else if *ty == Type::INT4 {
                    i32::try_from(v)?.to_sql(ty, out)
                } else if *ty == Type::INT2 {
                    i16::try_from(v)?.to_sql(ty, out)
                } else if *ty == Type::BOOL {
                    (v != 0).to_sql(ty, out)
                } else {
                    Err(format!("an integer for a parameter of type {ty}").into())
                }
            }
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Hands every commit of the stream, whichever instance made it, to this instance's feed in
/// order, each once; and carries typing notices between the instances.
pub struct Follower {
    target: Target,
    names: Names,
    rooms: Arc<RoomCache>,
    state: Mutex<FollowState>,
    stopped: AtomicBool,
    /// This instance's id in typing notices (its own come back to it and are skipped).
    instance: String,
    /// Dropped on [`Follower::stop`]: the sink refers back to the server that owns the store.
    typing_sink: Mutex<Option<Arc<dyn TypingSink>>>,
    /// Where the other instances' long-poll counts go; dropped on [`Follower::stop`].
    load_sink: Mutex<Option<Arc<dyn LoadSink>>>,
    /// The other instances' latest long-poll counts, by instance, with when they came.
    loads: Mutex<HashMap<String, (usize, Instant)>>,
    /// The thread that sends this instance's typing notices and long-poll counts (started on the
    /// first), as (channel, payload).
    publisher: Mutex<Option<std::sync::mpsc::SyncSender<(String, String)>>>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

struct FollowState {
    /// Reads the changes of other instances' commits.
    conn: Option<PgConn>,
    /// The newest position handed to the sink.
    pos: u64,
    sink: Option<Arc<dyn CommitSink>>,
}

impl std::fmt::Debug for FollowState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowState")
            .field("pos", &self.pos)
            .finish()
    }
}

impl Follower {
    /// Starts following for `sink` (the notifier); returns the sink the writer reports to.
    pub(super) fn start(self: &Arc<Self>, sink: Arc<dyn CommitSink>) -> Arc<dyn CommitSink> {
        if self.stopped.load(Ordering::Acquire) {
            return sink;
        }
        self.lock().sink = Some(sink);
        let follower = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("chatsync-pg-listen".into())
            .spawn(move || follower.listen());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the listener of other instances' commits");
        }
        Arc::new(FollowSink(Arc::clone(self)))
    }

    /// Stops the listener (within [`LISTEN_POLL`]) and the publisher, and lets go of the
    /// sinks and the follower's connection: nothing is reported after it returns, and nothing
    /// keeps the server that owned the store alive.
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.publisher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.typing_sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.load_sink
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let mut state = self.lock();
        state.sink = None;
        state.conn = None;
    }

    /// Where other instances' typing notices go.
    pub(super) fn set_typing_sink(&self, sink: Arc<dyn TypingSink>) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut slot = self.typing_sink.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            tracing::warn!("a typing sink was set twice; the first one stays");
            return;
        }
        *slot = Some(sink);
    }

    /// Where the other instances' long-poll counts go.
    pub(super) fn set_load_sink(&self, sink: Arc<dyn LoadSink>) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        *self.load_sink.lock().unwrap_or_else(|e| e.into_inner()) = Some(sink);
    }

    /// Sends a typing notice to the other instances (never blocks the caller; a notice lost to
    /// a database outage is only a typing indicator).
    pub(super) fn publish_typing(&self, notice: &TypingNotice) {
        let Ok(json) = serde_json::to_string(notice) else {
            return;
        };
        let payload = format!("{}\n{json}", self.instance);
        self.publish(&self.names.typing_channel, payload);
    }

    /// Sends this instance's count of parked long-polls to the other instances.
    pub(super) fn publish_load(&self, parked: usize) {
        let payload = format!("{} {parked}", self.instance);
        self.publish(&self.names.load_channel, payload);
    }

    /// Sends `payload` on `channel` from the publisher's thread (started on first use).
    fn publish(&self, channel: &str, payload: String) {
        if self.stopped.load(Ordering::Acquire) {
            return;
        }
        let mut publisher = self.publisher.lock().unwrap_or_else(|e| e.into_inner());
        if publisher.is_none() {
            let (tx, rx) = std::sync::mpsc::sync_channel(PUBLISH_BACKLOG);
            let target = self.target.clone();
            let spawned = std::thread::Builder::new()
                .name("chatsync-pg-publish".into())
                .spawn(move || publish_loop(&target, &rx));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the notice publisher");
                return;
            }
            *publisher = Some(tx);
        }
        if let Some(tx) = publisher.as_ref() {
            if let Err(std::sync::mpsc::TrySendError::Full(_)) =
                tx.try_send((channel.to_owned(), payload))
            {
                tracing::debug!("notices to other instances are backing up; one was dropped");
            }
        }
    }

    /// Another instance's long-poll count, from the listener's channel.
    fn loaded_elsewhere(&self, payload: &str) {
        let Some((instance, parked)) = payload.split_once(' ') else {
            return;
        };
        let Ok(parked) = parked.parse::<usize>() else {
            return;
        };
        if instance == self.instance {
            return;
        }
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        loads.insert(instance.to_owned(), (parked, Instant::now()));
        self.report_loads(&mut loads);
    }

    /// Forgets the counts not repeated in time (stopped instances), and reports the rest's sum.
    fn report_loads(&self, loads: &mut HashMap<String, (usize, Instant)>) {
        let now = Instant::now();
        loads.retain(|_, (_, at)| now.duration_since(*at) < LOAD_HOLDS);
        let total = loads.values().map(|(parked, _)| parked).sum();
        if let Some(sink) = held(&self.load_sink) {
            sink.elsewhere(total);
        }
    }

    /// Reports again when a count has run out (called while the listener waits).
    fn expire_loads(&self) {
        let mut loads = self.loads.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if loads
            .values()
            .any(|(_, at)| now.duration_since(*at) >= LOAD_HOLDS)
        {
            self.report_loads(&mut loads);
        }
    }

    /// A typing notice from the listener's channel: another instance's goes to the sink.
    fn typed_elsewhere(&self, payload: &str) {
        let Some((instance, json)) = payload.split_once('\n') else {
            return;
        };
        if instance == self.instance {
            return;
        }
        match serde_json::from_str::<TypingNotice>(json) {
            Ok(notice) => {
                if let Some(sink) = held(&self.typing_sink) {
                    sink.typed(notice);
                }
            }
            Err(e) => tracing::warn!(error = %e, "an unreadable typing notice"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FollowState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads and reports every change after the last one reported.
    fn catch_up(&self, state: &mut FollowState) -> Result<(), StoreError> {
        let Some(sink) = state.sink.clone() else {
            return Ok(());
        };
        loop {
            let conn = match &mut state.conn {
                Some(conn) => conn,
                None => state
                    .conn
                    .insert(PgConn::new(self.target.connect()?, self.target.clone())),
            };
            let after = state.pos;
            let commit =
                conn.read(|sql| stream::changes_after(sql, &self.rooms, after, FOLLOW_CHUNK))?;
            let Some(last) = commit.changes.last().map(|c| c.pos()) else {
                return Ok(());
            };
            let done = commit.changes.len() < FOLLOW_CHUNK;
            state.pos = last;
            sink.committed(commit);
            if done {
                return Ok(());
            }
        }
    }

    /// The listener thread: waits for other instances' notifications and catches up on each;
    /// after (re)connecting, catches up on what it may have missed.
    fn listen(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(50);
        while !self.stopped.load(Ordering::Acquire) {
            match self.listen_once() {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "following other instances' commits failed; reconnecting");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// One connection's worth of listening; `Ok` once stopped.
    fn listen_once(&self) -> Result<(), StoreError> {
        let mut client = self.target.connect()?;
        client.batch_execute(&format!(
            "LISTEN {}; LISTEN {}; LISTEN {}",
            quote_ident(&self.names.channel),
            quote_ident(&self.names.typing_channel),
            quote_ident(&self.names.load_channel)
        ))?;
        self.wake()?;
        loop {
            if self.stopped.load(Ordering::Acquire) {
                return Ok(());
            }
            let mut notifications = client.notifications();
            let Some(first) = notifications.timeout_iter(LISTEN_POLL).next()? else {
                self.expire_loads();
                continue;
            };
            // Commits that came with their changes go to the feed as they are; from the first
            // that did not, one catch-up read covers it and every later one.
            let (mut taken, mut behind) = (false, false);
            let mut next = Some(first);
            while let Some(n) = next {
                if n.channel() == self.names.typing_channel {
                    self.typed_elsewhere(n.payload());
                } else if n.channel() == self.names.load_channel {
                    self.loaded_elsewhere(n.payload());
                } else {
                    match notice::hear(n.payload()) {
                        Some(heard) if !behind => match self.take(heard) {
                            Taken::Known => {}
                            Taken::Reported => taken = true,
                            Taken::Read => behind = true,
                        },
                        Some(_) => {}
                        None => {
                            tracing::warn!("an unreadable commit notice; reading the stream");
                            behind = true;
                        }
                    }
                }
                next = notifications.iter().next()?;
            }
            if behind {
                self.wake()?;
            } else if taken {
                self.answered();
            }
        }
    }

    /// Hands a commit that came with its changes to the sink, when it is the next one.
    fn take(&self, heard: Heard<'_>) -> Taken {
        let mut state = self.lock();
        if heard.head() <= state.pos {
            // This instance's own commit, or one the listener already read.
            return Taken::Known;
        }
        let Heard::Commit { first, head, json } = heard else {
            return Taken::Read;
        };
        let Some(sink) = state.sink.clone() else {
            return Taken::Known;
        };
        if first != state.pos + 1 {
            return Taken::Read;
        }
        let conn = &mut state.conn;
        match notice::commit(json, head, |room_id| self.members(conn, room_id)) {
            Ok(Some((commit, rooms))) => {
                for room in rooms {
                    self.rooms.insert(room);
                }
                state.pos = head;
                sink.committed(commit);
                Taken::Reported
            }
            Ok(None) => Taken::Read,
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable commit notice; reading the stream");
                Taken::Read
            }
        }
    }

    /// A room's members: from the room cache, else read (and cached). `None`: not found.
    fn members(&self, conn: &mut Option<PgConn>, room_id: &str) -> Option<Arc<[String]>> {
        if let Some(members) = self.rooms.members(room_id) {
            return Some(members);
        }
        let conn = match conn {
            Some(conn) => conn,
            None => conn.insert(PgConn::new(
                self.target.connect().ok()?,
                self.target.clone(),
            )),
        };
        let room = conn.read(|sql| super::load_room(sql, room_id)).ok()??;
        self.rooms.insert(Arc::new(room));
        self.rooms.members(room_id)
    }

    /// Lets the sink wake the long-polls.
    fn answered(&self) {
        let sink = self.lock().sink.clone();
        if let Some(sink) = sink {
            sink.answered();
        }
    }

    /// Catches up and lets the sink wake the long-polls.
    fn wake(&self) -> Result<(), StoreError> {
        self.catch_up(&mut self.lock())?;
        self.answered();
        Ok(())
    }
}

/// The sink in `slot`, if one is set (taken out of the lock before it is called).
fn held<T: ?Sized>(slot: &Mutex<Option<Arc<T>>>) -> Option<Arc<T>> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Tests: cut a writer's connection around its next commit, for real (the backend terminates
/// itself), to check how the writer learns what became of it.
#[cfg(test)]
pub(super) mod testing_cut {
    use std::sync::Mutex;

    /// Where the cut falls.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Cut {
        /// Nothing cut.
        None,
        /// After `COMMIT` ran: stored, but its answer is lost.
        AfterCommit,
        /// Before `COMMIT`: never stored.
        BeforeCommit,
    }

    impl Cut {
        pub fn around(self, end: String) -> String {
            const TERMINATE: &str = "SELECT pg_terminate_backend(pg_backend_pid())";
            match self {
                Cut::None => end,
                Cut::AfterCommit => format!("{end}; {TERMINATE}"),
                Cut::BeforeCommit => format!("{TERMINATE}; {end}"),
            }
        }
    }

    /// The cuts asked for, by the commit channel of the schema (each test has its own).
    static CUTS: Mutex<Vec<(String, Cut)>> = Mutex::new(Vec::new());

    /// Cuts the next commit of the writer on `channel`'s schema.
    pub fn next_commit(channel: &str, cut: Cut) {
        CUTS.lock().unwrap().push((channel.to_owned(), cut));
    }

    pub(super) fn take(channel: &str) -> Cut {
        let mut cuts = CUTS.lock().unwrap();
        match cuts.iter().position(|(c, _)| c == channel) {
            Some(i) => cuts.remove(i).1,
            None => Cut::None,
        }
    }
}

/// What became of a commit notice.
enum Taken {
    /// Its commit was reported before.
    Known,
    /// Reported from the notice.
    Reported,
    /// It needs a read: it did not carry its changes, or came after a commit not yet reported.
    Read,
}

/// The publisher's thread: sends each notice (typing, load) on its own connection until the store
/// closes.
fn publish_loop(target: &Target, notices: &std::sync::mpsc::Receiver<(String, String)>) {
    let mut client: Option<PgClient> = None;
    while let Ok((channel, payload)) = notices.recv() {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = match target.connect() {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "notices to other instances cannot reach the database");
                    continue;
                }
            };
        }
        if let Some(c) = client.as_mut() {
            if let Err(e) = c.execute("SELECT pg_notify($1, $2)", &[&channel, &payload]) {
                tracing::warn!(error = %e, "a notice to other instances was not sent");
                client = None;
            }
        }
    }
}

/// What the writer reports to on PostgreSQL: its commits reach the sink in stream order, after
/// any other instance's commits before them.
struct FollowSink(Arc<Follower>);

impl CommitSink for FollowSink {
    fn committed(&self, commit: Committed) {
        let follower = &self.0;
        let mut state = follower.lock();
        let Some(first) = commit.changes.first().map(|c| c.pos()) else {
            return;
        };
        if commit.head.pos <= state.pos {
            // The listener already reported it.
            return;
        }
        if first == state.pos + 1 {
            // Nothing from elsewhere in between: the commit as the writer made it.
            state.pos = commit.head.pos;
            if let Some(sink) = &state.sink {
                sink.committed(commit);
            }
        }
        // Else other instances committed in between, which the listener has not reported yet: it
        // reports them and this commit, in order, on its own thread, when this commit's notice
        // arrives (within a round trip), and the writer goes on with its next batch meanwhile.
        // Until then this instance's feed stands before this commit: a sync there gets it a
        // moment later, never skips it.
    }

    fn answered(&self) {
        self.0.answered();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use chatsync_protocol::Part;

    use super::*;
    use crate::store::sql::testing::{pg_url, Backend, TestDb};
    use crate::store::sql::value::args;
    use crate::store::{NewMessage, Pending, Store};

    /// Sends each reported commit's head position.
    struct Heads(Mutex<mpsc::Sender<u64>>);

    impl CommitSink for Heads {
        fn committed(&self, commit: Committed) {
            let _ = self.0.lock().unwrap().send(commit.head.pos);
        }
    }

    struct Ignore;

    impl TypingSink for Ignore {
        fn typed(&self, _: TypingNotice) {}
    }

    /// Ann's first message in `room_id`.
    fn hello(room_id: &str) -> NewMessage {
        NewMessage {
            room_id: room_id.into(),
            sender: "ann".into(),
            txn_id: "t1".into(),
            parts: vec![Part::text("hi")],
            now: "2026-01-01T00:00:00.000Z".into(),
        }
    }

    fn send_one(store: &SqlStore, members: &[&str]) -> u64 {
        let members = members.iter().map(|m| m.to_string()).collect();
        let room = store.create_room(None, members, "t".into()).wait().unwrap();
        store.send_message(hello(&room.id)).wait().unwrap();
        store.head().unwrap().pos
    }

    /// A begin batch whose second statement fails (as the write lock does when a lock timeout
    /// runs out) used to leave its connection inside an aborted transaction, failing every later
    /// write of the instance.
    #[test]
    fn a_transaction_whose_begin_fails_leaves_the_connection_usable() {
        let Some(db) = TestDb::new(Backend::Postgres) else {
            return;
        };
        let mut conn = conn_on(&db);
        let failed = conn.in_transaction("BEGIN; SELECT 1/0", |_, _| Ok(()), |_| "COMMIT".into());
        assert!(failed.is_err(), "the begin batch fails");
        let rows = conn
            .read(|sql| sql.query("SELECT 1::BIGINT", &[]))
            .expect("the next transaction on the connection works");
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn a_held_write_has_its_values_written_in() {
        let sql = "UPDATE t SET a = ?1, b = ?10, c = ?2 WHERE d = ?3";
        let mut args = vec![Arg::Int(-7), Arg::Text("it's a \\ path"), Arg::Null];
        args.extend((4..=10).map(Arg::Int));
        assert_eq!(
            with_values(sql, &args).unwrap(),
            "UPDATE t SET a = -7, b = 10, c = E'it''s a \\\\ path' WHERE d = NULL"
        );
        assert!(
            with_values("SELECT ?2", &[Arg::Int(1)]).is_err(),
            "a parameter without a value"
        );
        assert!(with_values("SELECT ?", &[Arg::Int(1)]).is_err(), "a bare ?");
    }

    /// Held writes run at the commit, in the order given, with their text intact; one that fails
    /// there fails the whole transaction and leaves nothing of it.
    #[test]
    fn held_writes_run_at_the_commit_in_order_and_fail_it_whole() {
        let Some(db) = TestDb::new(Backend::Postgres) else {
            return;
        };
        db.open().close();
        let mut conn = conn_on(&db);
        let id = "o'brien \\n";
        conn.in_transaction(
            "BEGIN",
            |tx, _| {
                tx.execute_later(
                    "INSERT INTO users (id, name) VALUES (?1, ?2)",
                    args![id, "first"],
                )?;
                tx.execute_later(
                    "UPDATE users SET name = ?1 WHERE id = ?2",
                    args!["second", id],
                )
            },
            |_| "COMMIT".into(),
        )
        .expect("committed");
        let name_of = |conn: &mut PgConn, id: &str| {
            conn.read(|sql| sql.query("SELECT name FROM users WHERE id = ?1", args![id]))
                .unwrap()
                .first()
                .map(|row| row.get::<String>(0).unwrap())
        };
        assert_eq!(name_of(&mut conn, id).as_deref(), Some("second"));

        let failed = conn.in_transaction(
            "BEGIN",
            |tx, _| {
                tx.execute("INSERT INTO users (id, name) VALUES ('other', 'x')", &[])?;
                // The same id again: fails at the commit.
                tx.execute_later(
                    "INSERT INTO users (id, name) VALUES (?1, ?2)",
                    args![id, "third"],
                )
            },
            |_| "COMMIT".into(),
        );
        assert!(failed.is_err(), "the held write's failure fails the commit");
        assert_eq!(name_of(&mut conn, "other"), None, "nothing of it stays");
        assert_eq!(name_of(&mut conn, id).as_deref(), Some("second"));
    }

    /// A connection of its own on the test's schema.
    fn conn_on(db: &TestDb) -> PgConn {
        let TestDb::Postgres(url, schema) = db else {
            unreachable!()
        };
        let target = Target {
            url: url.clone(),
            schema: Some(schema.clone()),
        };
        PgConn::new(target.connect().unwrap(), target)
    }

    /// The rooms named `name` in the test's schema.
    fn rooms_named(db: &TestDb, name: &str) -> i64 {
        conn_on(db).read(|sql| {
            sql.query_one("SELECT COUNT(*) FROM rooms WHERE name = ?1", args![name])?
                .get(0)
        })
        .unwrap()
    }

    fn create(store: &SqlStore, name: &str) -> Pending<crate::store::Room> {
        store.create_room(
            Some(name.to_owned()),
            vec!["alice".into(), "bob".into()],
            "t".into(),
        )
    }

    fn cut_next_commit(db: &TestDb, cut: testing_cut::Cut) {
        let TestDb::Postgres(_, schema) = db else {
            unreachable!()
        };
        testing_cut::next_commit(&Names::of(schema).channel, cut);
    }

    /// A commit whose answer is lost (the connection drops right after COMMIT ran) is stored:
    /// the writer must answer it as stored, once. It used to answer a lone write as failed
    /// (the app was told a room it had was not made), and to retry a group commit's writes one
    /// by one (a plain room creation, which has no key to be known again by, made twice).
    #[test]
    fn a_commit_whose_answer_was_lost_is_answered_as_stored_and_made_once() {
        let Some(db) = TestDb::new(Backend::Postgres) else {
            return;
        };
        let store = db.open();
        cut_next_commit(&db, testing_cut::Cut::AfterCommit);
        create(&store, "alone")
            .wait()
            .expect("stored, so answered as stored");
        assert_eq!(rooms_named(&db, "alone"), 1);

        // Two in one commit.
        let (release, held) = mpsc::channel();
        store.writer.push(super::super::Job::Hold(held));
        let (first, second) = (create(&store, "grouped"), create(&store, "grouped"));
        cut_next_commit(&db, testing_cut::Cut::AfterCommit);
        drop(release);
        first.wait().expect("stored");
        second.wait().expect("stored");
        assert_eq!(rooms_named(&db, "grouped"), 2, "each made once");

        // The writer goes on on a new connection.
        create(&store, "after").wait().expect("the next write");
        assert_eq!(rooms_named(&db, "after"), 1);
    }

    /// The other side: a connection cut before COMMIT ran stored nothing, and says so.
    #[test]
    fn a_commit_cut_before_it_ran_is_answered_as_failed() {
        let Some(db) = TestDb::new(Backend::Postgres) else {
            return;
        };
        let store = db.open();
        cut_next_commit(&db, testing_cut::Cut::BeforeCommit);
        assert!(create(&store, "never").wait().is_err());
        assert_eq!(rooms_named(&db, "never"), 0);
        create(&store, "after").wait().expect("the next write");
        assert_eq!(rooms_named(&db, "after"), 1);
    }

    /// Channel names over 63 bytes make `pg_notify` fail, and with it every write: a schema
    /// name of the longest length PostgreSQL allows must work, and be followed.
    #[test]
    fn a_schema_with_the_longest_name_takes_writes_and_other_instances_follow_them() {
        let Some(url) = pg_url() else { return };
        let schema = format!("t_{}{}", uuid::Uuid::new_v4().simple(), "x".repeat(29));
        assert_eq!(schema.len(), 63);
        Client::connect(&url, NoTls)
            .unwrap()
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let db = TestDb::Postgres(url, schema);
        let (writer, follower) = (db.open(), db.open());
        let (tx, rx) = mpsc::channel();
        follower.set_commit_sink(Arc::new(Heads(Mutex::new(tx))));
        let head = send_one(&writer, &["ann", "bob"]);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let pos = rx
                .recv_timeout(left)
                .expect("the other instance reports the commits");
            if pos == head {
                break;
            }
        }
    }

    /// A commit notice carries no members: an instance that started after the room was made
    /// reads them once, and the commit reaches its feed whole.
    #[test]
    fn a_room_older_than_the_instance_has_its_members_read_for_the_notices() {
        let Some(db) = TestDb::new(Backend::Postgres) else {
            return;
        };
        let writer = db.open();
        let members = vec!["ann".to_string(), "bob".to_string()];
        let room = writer
            .create_room(None, members.clone(), "t".into())
            .wait()
            .unwrap();
        let follower = db.open();
        let got = Arc::new(Mutex::new(Vec::new()));
        struct Keep(Arc<Mutex<Vec<Committed>>>, Mutex<mpsc::Sender<()>>);
        impl CommitSink for Keep {
            fn committed(&self, commit: Committed) {
                self.0.lock().unwrap().push(commit);
                let _ = self.1.lock().unwrap().send(());
            }
        }
        let (tx, rx) = mpsc::channel();
        follower.set_commit_sink(Arc::new(Keep(Arc::clone(&got), Mutex::new(tx))));
        let sent = writer.send_message(hello(&room.id)).wait().unwrap();
        let head = writer.head().unwrap();
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the other instance reports the commit");
        let got = got.lock().unwrap();
        let [commit] = &got[..] else {
            panic!("one commit: {got:?}")
        };
        assert_eq!(commit.head, head);
        let [Change::Message {
            message,
            members: to,
            ..
        }] = &commit.changes[..]
        else {
            panic!("the message: {commit:?}")
        };
        assert_eq!(**message, sent.message);
        assert_eq!(&to[..], &members[..]);
    }

    /// Each instance paces its wake rounds by every instance's long-polls: the counts cross.
    #[test]
    fn long_poll_counts_cross_instances_and_each_sums_the_others_only() {
        let Some(db) = TestDb::new(Backend::Postgres) else {
            return;
        };
        let (here, there, third) = (db.open(), db.open(), db.open());
        struct Counts(Mutex<mpsc::Sender<usize>>);
        impl LoadSink for Counts {
            fn elsewhere(&self, parked: usize) {
                let _ = self.0.lock().unwrap().send(parked);
            }
        }
        let (tx, rx) = mpsc::channel();
        here.set_load_sink(Arc::new(Counts(Mutex::new(tx))));
        let (commits, _) = mpsc::channel();
        here.set_commit_sink(Arc::new(Heads(Mutex::new(commits)))); // starts the listener
                                                                    // The listener subscribes on its own thread: repeat until the counts are heard.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        loop {
            here.publish_load(7);
            there.publish_load(500);
            third.publish_load(30);
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(total) => {
                    seen.push(total);
                    if total == 530 {
                        break;
                    }
                }
                Err(_) => assert!(std::time::Instant::now() < deadline, "heard: {seen:?}"),
            }
        }
        assert!(
            seen.iter().all(|&total| total <= 530),
            "its own count is not added: {seen:?}"
        );
    }

    /// The typing sink refers back to the server owning the store (its registry, its store):
    /// a store that kept its sinks after closing kept its whole server alive.
    #[test]
    fn a_closed_store_lets_go_of_its_sinks() {
        let Some(db) = TestDb::new(Backend::Postgres) else {
            return;
        };
        let store = db.open();
        let (tx, _rx) = mpsc::channel();
        let commits: Arc<dyn CommitSink> = Arc::new(Heads(Mutex::new(tx)));
        let typing: Arc<dyn TypingSink> = Arc::new(Ignore);
        store.set_commit_sink(Arc::clone(&commits));
        store.set_typing_sink(Arc::clone(&typing));
        let (held_commits, held_typing) = (Arc::downgrade(&commits), Arc::downgrade(&typing));
        drop((commits, typing));
        let (commits, typing) = (held_commits, held_typing);
        store.close();
        // The listener thread may hold a sink for the moment of a delivery under way.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while commits.upgrade().is_some() || typing.upgrade().is_some() {
            assert!(
                std::time::Instant::now() < deadline,
                "still held: commit sink {}, typing sink {}",
                commits.upgrade().is_some(),
                typing.upgrade().is_some()
            );
            std::thread::yield_now();
        }
    }
}
