//! A schema of its own in the test PostgreSQL database, for runs with several server instances on
//! one database. The database is `CHATSYNC_TEST_PG_URL` (`scripts/test.sh` starts a throwaway
//! cluster and sets it); without it a run that needs one is skipped, unless `CHATSYNC_REQUIRE_PG`
//! is set, when it fails.

/// An empty schema, dropped with this value.
#[derive(Debug)]
pub struct Schema {
    admin_url: String,
    name: String,
    /// The server's `--db`: the database's URL with the schema as its search path.
    pub url: String,
}

impl Schema {
    /// A new schema in the database at `admin_url`.
    pub fn create_in(admin_url: &str) -> Result<Schema, postgres::Error> {
        let name = format!("soak_{}", uuid::Uuid::new_v4().simple());
        let mut client = postgres::Client::connect(admin_url, postgres::NoTls)?;
        client.batch_execute(&format!("CREATE SCHEMA {name}"))?;
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        Ok(Schema {
            url: format!("{admin_url}{sep}options=-c%20search_path%3D{name}"),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// A new schema in the test database, or `None` (skip) when there is none and none is
    /// required. Blocks: call it off the async threads.
    pub fn for_tests() -> Option<Schema> {
        match std::env::var("CHATSYNC_TEST_PG_URL") {
            Ok(url) if !url.is_empty() => Some(Schema::create_in(&url).expect("create a schema")),
            _ => {
                assert!(
                    std::env::var_os("CHATSYNC_REQUIRE_PG").is_none(),
                    "CHATSYNC_REQUIRE_PG is set but CHATSYNC_TEST_PG_URL is not"
                );
                eprintln!("skipped: no PostgreSQL (CHATSYNC_TEST_PG_URL is not set)");
                None
            }
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Off any async thread (the client runs a runtime of its own); best effort.
        let _ = std::thread::spawn(move || {
            if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = client.batch_execute(&format!("DROP SCHEMA {name} CASCADE"));
            }
        })
        .join();
    }
}
