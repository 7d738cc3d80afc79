//! The chatsync reference server: sync protocols v1 and v2 (docs/protocol.md) over HTTP, storage
//! in SQLite.
//!
//! Modules, in the order a request meets them:
//! - [`serve`]: the listening socket and the connection tasks; the connection cap, accept
//!   back-off, graceful and abrupt stops.
//! - `front`: each connection's front door: request heads checked before hyper sees them,
//!   the header and idle timeouts, JSON answers to malformed heads.
//! - [`clock`]: the clock the connection guards run on.
//! - [`app`]: the router, its layers (body limit and deadline), the error-mapping extractors,
//!   the OpenAPI document.
//! - [`auth`]: HS256 bearer tokens; dev mode's own key kept beside the database.
//! - [`routes`]: one module per resource (health, token, users, rooms, messages, sync, compat),
//!   and protocol v2's (`routes::v2`: writes, history, sync).
//! - [`validate`]: checks on client input, so bad input is a 400/413 and never a 500.
//! - [`store`]: the storage trait and its SQLite backend (group commit, reader pool, room cache,
//!   the change stream of protocol v2).
//! - [`notify`]: the parked long-polls, woken by commits and typing, paced under fan-out.
//! - [`feed`]: the latest commits in memory, which answer incremental syncs (v1 and v2).
//! - [`typing`]: who is typing where: in memory only, expiring, rate-limited.
//! - [`sync_token`]: the opaque `next_batch` tokens of v1 and v2.
//! - [`error`]: start-up errors and the protocol's JSON error answers.
//!
//! Library use (the tests of every other crate run the real server this way):
//! ```no_run
//! # async fn demo() -> Result<(), chatsync_server::ServerError> {
//! let server = chatsync_server::start(chatsync_server::ServerConfig::for_tests("/tmp/t.db")).await?;
//! println!("{}", server.url());
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod app;
pub mod auth;
pub mod clock;
pub mod error;
pub mod feed;
mod front;
pub mod notify;
pub mod routes;
pub mod serve;
pub mod store;
pub mod sync_token;
pub mod typing;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use app::openapi;
pub use clock::GuardClock;
pub use error::{ApiError, ServerError};
pub use serve::{ConnectionLimits, RunningServer};

use crate::auth::TokenKeys;
use crate::notify::Notifier;
use crate::store::sql::{SqlOptions, SqlStore};
use crate::store::{Store, StoreError};

/// Default lifetime of issued tokens, in seconds (one hour).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

/// Shortest and longest header, body and idle timeout.
const MIN_GUARD_TIMEOUT: Duration = Duration::from_millis(1);
const MAX_GUARD_TIMEOUT: Duration = Duration::from_secs(3600);

/// The flag that lets dev auth listen on a non-loopback address. Its name is the warning.
pub const DEV_ON_PUBLIC_ADDRESS_FLAG: &str =
    "--dev-mode-on-public-address-gives-anyone-any-account";

/// How clients get tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// `POST /v1/token` hands a token to anyone who asks (quick start, tests). The default.
    Dev,
    /// `POST /v1/token` is off; the app's own backend signs tokens with the shared secret.
    Secret,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free one.
    pub addr: SocketAddr,
    /// SQLite database file (created if missing; its directory must exist), or a
    /// `postgres://` URL ([`Database`]).
    pub db_path: PathBuf,
    /// Token mode.
    pub auth: AuthMode,
    /// Secret mode's HS256 secret (required there, refused in dev mode, which generates a secret
    /// of its own beside the database: the two modes never share a key).
    pub token_secret: Option<String>,
    /// Lifetime of tokens issued by `POST /v1/token`, in seconds (1 to
    /// [`auth::MAX_TOKEN_TTL_SECS`]).
    pub token_ttl_secs: u64,
    /// Lets dev auth (anyone gets a token for any user) listen on a non-loopback address.
    /// Without it such a start is refused.
    pub dev_auth_on_public_address: bool,
    /// Header, body and idle timeouts and the connection cap.
    pub limits: ConnectionLimits,
    /// The clock those timeouts run on ([`GuardClock`]).
    pub guard_clock: GuardClock,
    /// Commit concurrent writes together (one transaction, one fsync). Off: one of each per
    /// write, for measuring what group commit brings.
    pub group_commit: bool,
}

impl ServerConfig {
    /// 127.0.0.1:0, dev auth, the given database file, default limits. The connection guards run
    /// on the wall clock ([`GuardClock::Wall`]): tests that embed the server may pause their
    /// runtime's clock to fast-forward a client, and that must not fire the server's timeouts
    /// (long-poll holds still follow the runtime's clock). Tests of the timeouts themselves set
    /// [`GuardClock::Runtime`] and pause time to be exact.
    pub fn for_tests(db_path: impl Into<PathBuf>) -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path: db_path.into(),
            auth: AuthMode::Dev,
            token_secret: None,
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            dev_auth_on_public_address: false,
            limits: ConnectionLimits::default(),
            guard_clock: GuardClock::Wall,
            group_commit: true,
        }
    }
}

/// The command-line flags of `chatsync-server` (and of `chatsync serve`), each also read from the
/// environment.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "CHATSYNC_ADDR", default_value = "127.0.0.1:5000")]
    pub addr: SocketAddr,
    /// SQLite database file (created if missing), or a PostgreSQL database as
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME for several instances on one database
    /// (prefer the CHATSYNC_DB variable to a password on the command line).
    #[arg(
        long,
        env = "CHATSYNC_DB",
        default_value = "./chatsync.db",
        hide_env_values = true
    )]
    pub db: PathBuf,
    /// `dev`: anyone gets a token from POST /v1/token (loopback addresses only). `secret`: tokens
    /// come from your backend, signed with --token-secret.
    #[arg(long, env = "CHATSYNC_AUTH", value_enum, default_value_t = AuthMode::Dev)]
    pub auth: AuthMode,
    /// HS256 secret your backend signs tokens with (required with --auth secret, refused in dev
    /// mode, whose own key is generated once and kept beside the database as DB.dev-token-secret).
    #[arg(long, env = "CHATSYNC_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Lifetime of issued tokens, in seconds (1 to 31536000, a year).
    #[arg(long, env = "CHATSYNC_TOKEN_TTL", default_value_t = DEFAULT_TOKEN_TTL_SECS,
          value_parser = clap::value_parser!(u64).range(1..=auth::MAX_TOKEN_TTL_SECS))]
    pub token_ttl: u64,
    /// Lets dev auth listen on a non-loopback address, where anyone who reaches it gets a token for
    /// any account. Without it such a start is refused.
    #[arg(
        long = "dev-mode-on-public-address-gives-anyone-any-account",
        env = "CHATSYNC_DEV_MODE_ON_PUBLIC_ADDRESS_GIVES_ANYONE_ANY_ACCOUNT"
    )]
    pub dev_mode_on_public_address_gives_anyone_any_account: bool,
    /// Time from the first byte of a request head to its end (then 408). E.g. 10s, 500ms.
    #[arg(long, env = "CHATSYNC_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: Duration,
    /// Time from a request head to the end of its body (then 408).
    #[arg(long, env = "CHATSYNC_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: Duration,
    /// How long a connection with no request in progress stays open.
    #[arg(long, env = "CHATSYNC_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// Most open connections; at the cap an idle one is closed to make room, else the newcomer
    /// gets a 503 [default: the open-file limit (ulimit -n) less 64].
    #[arg(long, env = "CHATSYNC_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: Option<u64>,
    /// Commit concurrent writes in one transaction and one fsync (each answered once its
    /// commit is durable). false: one of each per write, to measure the difference.
    #[arg(long, env = "CHATSYNC_GROUP_COMMIT", default_value_t = true, action = clap::ArgAction::Set)]
    pub group_commit: bool,
}

impl From<ServeArgs> for ServerConfig {
    fn from(args: ServeArgs) -> Self {
        ServerConfig {
            addr: args.addr,
            db_path: args.db,
            auth: args.auth,
            token_secret: args.token_secret,
            token_ttl_secs: args.token_ttl,
            dev_auth_on_public_address: args.dev_mode_on_public_address_gives_anyone_any_account,
            limits: ConnectionLimits {
                header_timeout: args.header_timeout,
                body_timeout: args.body_timeout,
                idle_timeout: args.idle_timeout,
                max_connections: args
                    .max_connections
                    .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            },
            guard_clock: GuardClock::Runtime,
            group_commit: args.group_commit,
        }
    }
}

/// Where the server keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file: one instance.
    Sqlite(PathBuf),
    /// A PostgreSQL database (a `postgres://` or `postgresql://` URL): any number of instances.
    Postgres(String),
}

impl Database {
    /// What `--db` names.
    pub fn of(db: &std::path::Path) -> Database {
        let text = db.to_string_lossy();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Database::Postgres(text.into_owned())
        } else {
            Database::Sqlite(db.to_owned())
        }
    }

    /// For logs and errors: a URL without its password (neither `user:password@` nor a
    /// `password=` parameter).
    pub fn shown(&self) -> String {
        match self {
            Database::Sqlite(path) => path.display().to_string(),
            Database::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let (main, query) = match rest.split_once('?') {
                    Some((main, query)) => (main, Some(query)),
                    None => (rest, None),
                };
                let main = match main.rsplit_once('@') {
                    Some((userinfo, host)) => {
                        let user = userinfo.split(':').next().unwrap_or_default();
                        format!("{user}@{host}")
                    }
                    None => main.to_owned(),
                };
                let mut shown = format!("{scheme}://{main}");
                let kept: Vec<&str> = query
                    .into_iter()
                    .flat_map(|q| q.split('&'))
                    .filter(|param| {
                        let key = param.split('=').next().unwrap_or_default();
                        !key.eq_ignore_ascii_case("password")
                    })
                    .collect();
                if !kept.is_empty() {
                    shown.push('?');
                    shown.push_str(&kept.join("&"));
                }
                shown
            }
        }
    }

    /// Whether `--db` holds a libpq `key=value` connection string (`host=db password=...`): not
    /// taken (only URLs are), and never echoed, since it may hold a password.
    fn is_connection_string(db: &std::path::Path) -> bool {
        const KEYS: &[&str] = &[
            "host",
            "hostaddr",
            "port",
            "user",
            "password",
            "dbname",
            "sslmode",
            "options",
            "application_name",
            "connect_timeout",
        ];
        db.to_string_lossy().split_whitespace().any(|word| {
            word.split_once('=')
                .is_some_and(|(key, _)| KEYS.contains(&key))
        })
    }
}

/// How often an instance on PostgreSQL tells the others how many long-polls it holds.
const LOAD_SHARE_INTERVAL: Duration = Duration::from_secs(1);

/// Several instances on one database: each paces its wake rounds by every instance's long-polls
/// (see `Notifier::round`), so each tells the others its count every second, and takes theirs.
/// The task ends with the server (it holds neither the store nor the notifier).
fn share_load(store: &Arc<dyn Store>, notifier: &Arc<Notifier>) {
    store.set_load_sink(Arc::clone(notifier) as Arc<dyn store::LoadSink>);
    let (store, notifier) = (Arc::downgrade(store), Arc::downgrade(notifier));
    tokio::spawn(async move {
        let mut every = tokio::time::interval(LOAD_SHARE_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            let (Some(store), Some(notifier)) = (store.upgrade(), notifier.upgrade()) else {
                return;
            };
            if notifier.is_shutting_down() {
                return;
            }
            store.publish_load(notifier.subscriptions());
        }
    });
}

/// Whether `addr` only reaches this machine (127.0.0.0/8, ::1, and ::ffff:127.0.0.0/104).
fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Refuses configurations that are unsafe or cannot work, before anything is opened.
fn check_config(config: &ServerConfig) -> Result<(), ServerError> {
    let bad = |m: String| Err(ServerError::Config(m));
    if !(1..=auth::MAX_TOKEN_TTL_SECS).contains(&config.token_ttl_secs) {
        return bad(format!(
            "--token-ttl must be between 1 and {} seconds (a year), got {}",
            auth::MAX_TOKEN_TTL_SECS,
            config.token_ttl_secs
        ));
    }
    match (config.auth, config.token_secret.as_deref()) {
        (_, Some("")) => return bad("--token-secret must not be empty".into()),
        (AuthMode::Secret, None) => {
            return bad(
                "--auth secret needs --token-secret (or CHATSYNC_TOKEN_SECRET): the secret your backend signs tokens with"
                    .into(),
            )
        }
        (AuthMode::Dev, Some(_)) => {
            // Named by where it is, but never by a database URL (which may hold a password).
            let kept = match Database::of(&config.db_path) {
                Database::Sqlite(path) => auth::dev_secret_file_path(&path).display().to_string(),
                Database::Postgres(_) => "kept in the database".to_owned(),
            };
            return bad(format!(
                "--token-secret is for --auth secret; dev mode signs with a key of its own ({kept}), never shared with secret mode"
            ));
        }
        _ => {}
    }
    if Database::is_connection_string(&config.db_path) {
        return bad(
            "--db takes a SQLite file or a postgres:// URL, not a key=value connection string (not repeated here: it may hold a password)"
                .into(),
        );
    }
    let limits = &config.limits;
    for (flag, value) in [
        ("--header-timeout", limits.header_timeout),
        ("--body-timeout", limits.body_timeout),
        ("--idle-timeout", limits.idle_timeout),
    ] {
        if !(MIN_GUARD_TIMEOUT..=MAX_GUARD_TIMEOUT).contains(&value) {
            return bad(format!(
                "{flag} must be between 1ms and 1h, got {}",
                humantime::format_duration(value)
            ));
        }
    }
    if limits.max_connections == Some(0) {
        return bad("--max-connections must be at least 1".into());
    }
    if config.auth == AuthMode::Dev
        && !is_loopback(&config.addr)
        && !config.dev_auth_on_public_address
    {
        return bad(format!(
            "dev auth on {} would give anyone who reaches it a token for any account; use a loopback --addr, --auth secret, or {DEV_ON_PUBLIC_ADDRESS_FLAG}",
            config.addr
        ));
    }
    Ok(())
}

/// Binds, runs the server on the current tokio runtime, returns once it accepts connections.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    check_config(&config)?;
    let database = Database::of(&config.db_path);
    let options = SqlOptions {
        group_commit: config.group_commit,
        ..SqlOptions::default()
    };
    let opened = database.clone();
    let (store, head, shared_dev_secret) = run_blocking(move || {
        let (store, dev_secret) = match &opened {
            Database::Sqlite(path) => (SqlStore::open_with(path, options)?, None),
            Database::Postgres(url) => {
                let store = SqlStore::open_postgres(url, options)?;
                // Every instance signs dev tokens with the same key, kept in the database.
                let secret = auth::new_secret().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let secret = store.shared_secret("dev-token-secret", &secret)?;
                (store, Some(secret))
            }
        };
        let head = store.head()?;
        Ok((store, head, dev_secret))
    })
    .await
    .map_err(|source| ServerError::Database {
        path: database.shown().into(),
        source,
    })?;
    let store: Arc<dyn Store> = Arc::new(store);
    // Every commit from now on reaches the feed that answers long-polls, in commit order.
    let notifier = Notifier::new(head);
    store.set_commit_sink(Arc::new(Arc::clone(&notifier)));
    if matches!(database, Database::Postgres(_)) {
        share_load(&store, &notifier);
    }
    let keys = match (config.auth, &config.token_secret) {
        (AuthMode::Secret, Some(secret)) => TokenKeys::new(secret.clone(), config.token_ttl_secs),
        _ if shared_dev_secret.is_some() => {
            TokenKeys::dev(shared_dev_secret.unwrap_or_default(), config.token_ttl_secs)
        }
        _ => {
            let path = auth::dev_secret_file_path(&config.db_path);
            let secret_path = path.clone();
            let secret = run_blocking(move || auth::load_or_create_secret(&secret_path))
                .await
                .map_err(|source| {
                    store.close();
                    ServerError::TokenSecret { path, source }
                })?;
            TokenKeys::dev(secret, config.token_ttl_secs)
        }
    };
    let keys = Arc::new(keys);
    let legacy = auth::legacy_secret_file_path(&config.db_path);
    if matches!(database, Database::Sqlite(_)) && legacy.exists() {
        tracing::warn!(
            file = %legacy.display(),
            "this file is no longer read: older versions signed dev and secret mode tokens with it; tokens signed with it are refused. Delete it once nothing uses it"
        );
    }
    let clock = clock::Clock::new(config.guard_clock);
    let typing = Arc::new(typing::Typing::new());
    // Typing notices of other instances on the same database (PostgreSQL) reach this registry.
    store.set_typing_sink(Arc::new(typing::FromElsewhere {
        store: Arc::downgrade(&store),
        typing: Arc::clone(&typing),
        notifier: Arc::clone(&notifier),
        runtime: tokio::runtime::Handle::current(),
    }));
    let router = app::router(
        Arc::clone(&store),
        Arc::clone(&notifier),
        typing,
        keys,
        config.auth,
        config.limits.body_timeout,
        clock.clone(),
    );
    let server = match serve::spawn(
        config.addr,
        router,
        store.clone(),
        notifier,
        config.limits,
        clock,
    ) {
        Ok(server) => server,
        Err(e) => {
            store.close();
            return Err(e);
        }
    };
    tracing::info!(addr = %server.addr(), db = %database.shown(), "chatsync-server listening");
    if config.auth == AuthMode::Dev {
        if is_loopback(&server.addr()) {
            tracing::warn!(
                "dev auth: POST /v1/token gives a token to anyone (use --auth secret in production)"
            );
        } else {
            tracing::warn!(
                addr = %server.addr(),
                "dev auth on a non-loopback address ({DEV_ON_PUBLIC_ADDRESS_FLAG}): anyone who reaches it gets a token for any account"
            );
        }
    }
    Ok(server)
}

/// Runs a blocking start-up step (file I/O) off the async threads.
async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("start-up task panicked")
}

/// Runs the server until SIGINT or SIGTERM, then shuts it down gracefully. What `main` calls.
pub async fn run(args: ServeArgs) -> Result<(), ServerError> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(ServerError::Signal)?;
    let server = start(args.into()).await?;
    #[cfg(unix)]
    let signal = tokio::select! {
        r = tokio::signal::ctrl_c() => r.map(|()| "SIGINT"),
        _ = terminate.recv() => Ok("SIGTERM"),
    };
    #[cfg(not(unix))]
    let signal = tokio::signal::ctrl_c().await.map(|()| "Ctrl-C");
    match signal {
        Ok(name) => tracing::info!(signal = name, "shutting down"),
        Err(e) => {
            server.shutdown().await;
            return Err(ServerError::Signal(e));
        }
    }
    server.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        let shown = |url: &str| Database::of(std::path::Path::new(url)).shown();
        assert_eq!(
            shown("postgres://app:s3cr@t/x@db.internal:5432/chat"),
            "postgres://app@db.internal:5432/chat"
        );
        assert_eq!(
            shown("postgresql://db.internal/chat?user=app&password=s3cret&sslmode=disable"),
            "postgresql://db.internal/chat?user=app&sslmode=disable"
        );
        assert_eq!(
            shown("postgres://db.internal/chat?PASSWORD=s3cret"),
            "postgres://db.internal/chat"
        );
        assert_eq!(shown("data/chat.db"), "data/chat.db");
    }

    #[test]
    fn a_key_value_connection_string_is_refused_without_repeating_it() {
        let mut config = ServerConfig::for_tests("host=db user=app password=s3cret dbname=chat");
        config.token_secret = None;
        let Err(ServerError::Config(message)) = check_config(&config) else {
            panic!("a connection string is refused")
        };
        assert!(!message.contains("s3cret"), "{message}");
        assert!(!Database::is_connection_string(std::path::Path::new(
            "data/x=1.db"
        )));
    }

    #[test]
    fn the_dev_mode_secret_message_never_names_a_database_url() {
        let mut config = ServerConfig::for_tests("postgres://app:s3cret@db.internal/chat");
        config.auth = AuthMode::Dev;
        config.token_secret = Some("a".repeat(32));
        let Err(ServerError::Config(message)) = check_config(&config) else {
            panic!("--token-secret in dev mode is refused")
        };
        assert!(!message.contains("s3cret"), "{message}");
        assert!(message.contains("kept in the database"), "{message}");
    }
}
