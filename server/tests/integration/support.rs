//! Test harness: starts a server on a temp database and wraps the HTTP calls the tests make.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chatsync_protocol::{Message, Part, Room, SendMessageRequest};
use chatsync_server::{RunningServer, ServerConfig};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A running server plus its database directory (kept alive as long as the harness).
pub struct TestServer {
    pub server: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    pub url: String,
    pub http: reqwest::Client,
}

impl TestServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, |_| {}).await
    }

    pub async fn start_in(
        dir: tempfile::TempDir,
        configure: impl FnOnce(&mut ServerConfig),
    ) -> Self {
        let mut config = ServerConfig::for_tests(dir.path().join("chat.db"));
        configure(&mut config);
        let server = chatsync_server::start(config).await.unwrap();
        let url = server.url();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .unwrap();
        TestServer {
            server: Some(server),
            dir,
            url,
            http,
        }
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().unwrap()
    }

    /// A dev-mode token for `user`.
    pub async fn token(&self, user: &str) -> String {
        let r = self
            .http
            .post(format!("{}/v1/token", self.url))
            .json(&json!({"user_id": user}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// A client acting as `user`.
    pub async fn user(&self, user: &str) -> Client {
        Client {
            url: self.url.clone(),
            http: self.http.clone(),
            token: self.token(user).await,
            spread: Spread::default(),
        }
    }
}

/// Several server instances on one PostgreSQL database (a schema of its own), as behind a load
/// balancer; or one instance on SQLite. `None` from [`Cluster::postgres`]: no PostgreSQL here
/// (see `chatsync_server::store::sql::testing`): skip.
pub struct Cluster {
    pub servers: Vec<Option<RunningServer>>,
    pub urls: Vec<String>,
    /// The database: a SQLite file, or a URL whose `options` select the schema.
    pub db: String,
    /// SQLite's directory, removed with the cluster.
    _dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// The PostgreSQL server and schema, dropped with the cluster.
    pg: Option<(String, String)>,
}

/// The PostgreSQL server tests use, or `None` (skip; a failure when `CHATSYNC_REQUIRE_PG` is set).
pub fn pg_url() -> Option<String> {
    match std::env::var("CHATSYNC_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => Some(url),
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

impl Cluster {
    /// One instance on a SQLite file.
    pub async fn sqlite() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("chat.db").display().to_string();
        Self::start(dir, db, 1, None).await
    }

    /// `n` instances on a new schema of the test PostgreSQL database.
    pub async fn postgres(n: usize) -> Option<Cluster> {
        let url = pg_url()?;
        let schema = format!("it_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE SCHEMA {schema}");
        let admin = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            client.batch_execute(&create).unwrap();
        })
        .await
        .unwrap();
        let sep = if url.contains('?') { '&' } else { '?' };
        let db = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        let dir = tempfile::tempdir().unwrap();
        Some(Self::start(dir, db, n, Some((url, schema))).await)
    }

    async fn start(
        dir: tempfile::TempDir,
        db: String,
        n: usize,
        pg: Option<(String, String)>,
    ) -> Cluster {
        let mut servers = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..n {
            let server = chatsync_server::start(ServerConfig::for_tests(&db)).await.unwrap();
            urls.push(server.url());
            servers.push(Some(server));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()
            .unwrap();
        Cluster {
            servers,
            urls,
            db,
            _dir: dir,
            http,
            pg,
        }
    }

    /// Starts instance `i` again (after a kill), on a new port.
    pub async fn restart(&mut self, i: usize) {
        let server = chatsync_server::start(ServerConfig::for_tests(&self.db)).await.unwrap();
        self.urls[i] = server.url();
        self.servers[i] = Some(server);
    }

    /// A client acting as `user` whose requests go to each instance in turn.
    pub async fn user(&self, user: &str) -> Client {
        let r = self
            .http
            .post(format!("{}/v1/token", self.urls[self.urls.len() - 1]))
            .json(&json!({"user_id": user}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        Client {
            url: self.urls[0].clone(),
            http: self.http.clone(),
            token: body["access_token"].as_str().unwrap().to_owned(),
            spread: Spread {
                urls: Arc::new(self.urls.clone()),
                turn: Arc::default(),
            },
        }
    }

    /// Runs `query` on the database (either kind) and returns its rows as text or integers.
    pub async fn query(&self, query: &str) -> Vec<Vec<Value>> {
        let query = query.to_owned();
        let db = self.db.clone();
        let postgres = self.pg.is_some();
        tokio::task::spawn_blocking(move || {
            if postgres {
                let mut client = postgres::Client::connect(&db, postgres::NoTls).unwrap();
                client
                    .query(&query, &[])
                    .unwrap()
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| {
                                if let Ok(v) = row.try_get::<_, Option<i64>>(i) {
                                    json!(v)
                                } else {
                                    json!(row.get::<_, Option<String>>(i))
                                }
                            })
                            .collect()
                    })
                    .collect()
            } else {
                let conn = rusqlite::Connection::open(&db).unwrap();
                let mut stmt = conn.prepare(&query).unwrap();
                let columns = stmt.column_count();
                stmt.query_map([], |row| {
                    Ok((0..columns)
                        .map(|i| match row.get_ref(i).unwrap() {
                            rusqlite::types::ValueRef::Integer(v) => json!(v),
                            rusqlite::types::ValueRef::Text(t) => {
                                json!(String::from_utf8_lossy(t))
                            }
                            _ => Value::Null,
                        })
                        .collect())
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
            }
        })
        .await
        .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some((url, schema)) = self.pg.take() {
            // Best effort, off the async threads: a schema left behind only costs space.
            let _ = std::thread::spawn(move || {
                if let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) {
                    let _ = client.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
                }
            })
            .join();
        }
    }
}

/// The instances a client's requests go to, in turn (empty: its `url` only).
#[derive(Clone, Default)]
pub struct Spread {
    urls: Arc<Vec<String>>,
    turn: Arc<AtomicUsize>,
}

/// An authenticated caller.
#[derive(Clone)]
pub struct Client {
    pub url: String,
    pub http: reqwest::Client,
    pub token: String,
    pub spread: Spread,
}

impl Client {
    /// How many instances its requests go to.
    pub fn instances(&self) -> usize {
        self.spread.urls.len().max(1)
    }

    /// The instance the next request goes to.
    fn base(&self) -> &str {
        if self.spread.urls.is_empty() {
            return &self.url;
        }
        let turn = self.spread.turn.fetch_add(1, Ordering::Relaxed);
        &self.spread.urls[turn % self.spread.urls.len()]
    }
}

/// Status plus JSON body (Null when the body is empty or not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// Asserts the protocol's error shape with this status and code.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.body["error"], code, "body: {}", self.body);
        assert!(
            self.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "body: {}",
            self.body
        );
        assert_eq!(
            self.body.as_object().unwrap().len(),
            2,
            "exactly error + error_description: {}",
            self.body
        );
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(
            self.status.is_success(),
            "status {} body {}",
            self.status,
            self.body
        );
        self.body
    }
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer { status, body }
}

impl Client {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base(), path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub async fn create_room(&self, members: &[&str]) -> Room {
        let body = self
            .call(
                Method::POST,
                "/v1/rooms",
                Some(json!({"name": "test room", "member_ids": members})),
            )
            .await
            .ok();
        serde_json::from_value(body).unwrap()
    }

    pub async fn send_raw(&self, room: &str, txn: &str, body: Value) -> Answer {
        self.call(
            Method::PUT,
            &format!("/v1/rooms/{room}/messages/{txn}"),
            Some(body),
        )
        .await
    }

    pub async fn send(&self, room: &str, txn: &str, text: &str) -> Message {
        let body = serde_json::to_value(SendMessageRequest {
            parts: vec![Part::text(text)],
        })
        .unwrap();
        serde_json::from_value(self.send_raw(room, txn, body).await.ok()).unwrap()
    }

    /// Sends `n` messages with txn ids `{prefix}{i}` and texts `m{i}`; returns them in order.
    pub async fn send_many(&self, room: &str, prefix: &str, n: usize) -> Vec<Message> {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(
                self.send(room, &format!("{prefix}{i}"), &format!("m{i}"))
                    .await,
            );
        }
        out
    }
}

pub fn ids(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect()
}

/// Raises this process's open-file soft limit to at least `wanted` (bounded by the hard limit), so
/// tests with many sockets do not depend on the shell's `ulimit -n`.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 everywhere
pub fn raise_fd_limit(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0
            && limit.rlim_cur < wanted as libc::rlim_t
        {
            limit.rlim_cur = (wanted as libc::rlim_t).min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// Protocol v2 calls, answers as JSON (the wire is what the tests pin).
impl Client {
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// `PUT /v2/rooms/{room}/messages/{txn}` with one text part.
    pub async fn send_v2(&self, room: &str, txn: &str, text: &str) -> Value {
        self.put(
            &format!("/v2/rooms/{room}/messages/{txn}"),
            json!({"parts": [{"type": "text/plain", "content": text}]}),
        )
        .await
        .ok()
    }

    pub async fn edit(&self, room: &str, id: u64, txn: &str, text: &str) -> Answer {
        self.put(
            &format!("/v2/rooms/{room}/messages/{id}/edits/{txn}"),
            json!({"parts": [{"type": "text/plain", "content": text}]}),
        )
        .await
    }

    pub async fn delete(&self, room: &str, id: u64, txn: &str) -> Answer {
        self.call(
            Method::PUT,
            &format!("/v2/rooms/{room}/messages/{id}/deletion/{txn}"),
            None,
        )
        .await
    }

    pub async fn react(&self, room: &str, id: u64, txn: &str, key: &str, on: bool) -> Answer {
        self.put(
            &format!("/v2/rooms/{room}/messages/{id}/reactions/{txn}"),
            json!({"key": key, "on": on}),
        )
        .await
    }

    pub async fn receipt(&self, room: &str, txn: &str, id: u64) -> Answer {
        self.put(
            &format!("/v2/rooms/{room}/receipt/{txn}"),
            json!({"message_id": id}),
        )
        .await
    }

    pub async fn typing(&self, room: &str, typing: bool) -> Answer {
        self.put(&format!("/v2/rooms/{room}/typing"), json!({"typing": typing}))
            .await
    }

    /// `GET /v2/sync?{query}`, which must succeed.
    pub async fn sync_v2(&self, query: &str) -> Value {
        self.get(&format!("/v2/sync?{query}")).await.ok()
    }

    /// Every message of a room in v2 state, oldest first (v2 history, newer direction).
    pub async fn history_v2(&self, room: &str) -> Vec<Value> {
        let mut out: Vec<Value> = Vec::new();
        loop {
            let after = out.last().map_or(0, |m| m["id"].as_u64().unwrap());
            let page = self
                .get(&format!(
                    "/v2/rooms/{room}/messages?direction=newer&limit=100&initial_id={after}"
                ))
                .await
                .ok();
            out.extend(page["messages"].as_array().unwrap().iter().cloned());
            if page["has_more"] != true {
                return out;
            }
        }
    }
}

/// The text of a v2 message's first part.
pub fn text(message: &Value) -> &str {
    message["parts"][0]["content"].as_str().unwrap_or("")
}
