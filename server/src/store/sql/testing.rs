//! The store conformance suite's backends: every test of `tests.rs` and `stream_tests.rs` runs
//! once on SQLite (a file in a temp dir) and once on PostgreSQL (a schema of its own in the
//! database at `CHATSYNC_TEST_PG_URL`, which `scripts/test.sh` starts). Without that variable the
//! PostgreSQL runs are skipped, unless `CHATSYNC_REQUIRE_PG` is set (test.sh sets it), when they
//! fail.

use std::path::PathBuf;

use super::{SqlOptions, SqlStore};

/// Which database a conformance run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL schema.
    Postgres,
}

/// The environment variable naming the test PostgreSQL database.
pub const PG_URL_VAR: &str = "CHATSYNC_TEST_PG_URL";

/// The test PostgreSQL database's URL, or `None` (skip) when there is none and none is required.
pub fn pg_url() -> Option<String> {
    match std::env::var(PG_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CHATSYNC_REQUIRE_PG").is_none(),
                "CHATSYNC_REQUIRE_PG is set but {PG_URL_VAR} is not"
            );
            eprintln!("skipped: no PostgreSQL ({PG_URL_VAR} is not set)");
            None
        }
    }
}

/// One test's database, removed when dropped.
#[derive(Debug)]
pub enum TestDb {
    /// The file's path, in a directory removed on drop.
    Sqlite {
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
    /// The server's URL and the test's schema.
    Postgres(String, String),
}

impl TestDb {
    /// A new, empty database; `None` when the backend is not available here (see the module
    /// documentation).
    pub fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("t.db");
                Some(TestDb::Sqlite { _dir: dir, path })
            }
            Backend::Postgres => {
                let url = pg_url()?;
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                client
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .unwrap();
                Some(TestDb::Postgres(url, schema))
            }
        }
    }

    /// Opens (again) a store on it.
    pub fn open(&self) -> SqlStore {
        self.open_with(SqlOptions::default())
    }

    /// Opens (again) a store on it with `options`.
    pub fn open_with(&self, options: SqlOptions) -> SqlStore {
        match self {
            TestDb::Sqlite { path, .. } => SqlStore::open_with(path, options).unwrap(),
            TestDb::Postgres(url, schema) => {
                SqlStore::open_postgres_in(url, Some(schema), options).unwrap()
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres(url, schema) = self {
            // Best effort: a schema left behind only costs the throwaway cluster some space.
            if let Ok(mut client) = postgres::Client::connect(url, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
            }
        }
    }
}
