//! The chatsync reference server: sync protocol v1 (docs/protocol.md) over HTTP, storage in SQLite.
//!
//! Modules, in the order a request meets them:
//! - [`serve`]: the listening socket and the connection tasks; graceful and abrupt stops.
//! - [`app`]: the router, its layers, the error-mapping extractors, the OpenAPI document.
//! - [`auth`]: HS256 bearer tokens, the secret kept beside the database.
//! - [`routes`]: one module per resource (health, token, users, rooms, messages, sync, compat).
//! - [`validate`]: checks on client input, so bad input is a 400/413 and never a 500.
//! - [`store`]: the storage trait and its SQLite backend.
//! - [`notify`]: wakes parked long-polls of the users a change concerns.
//! - [`sync_token`]: the opaque `next_batch` token.
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
pub mod error;
pub mod notify;
pub mod routes;
pub mod serve;
pub mod store;
pub mod sync_token;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use app::openapi;
pub use error::{ApiError, ServerError};
pub use serve::RunningServer;

use crate::auth::TokenKeys;
use crate::notify::Notifier;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// Default lifetime of issued tokens, in seconds (one hour).
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 3600;

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
    /// SQLite database file (created if missing; its directory must exist).
    pub db_path: PathBuf,
    /// Token mode.
    pub auth: AuthMode,
    /// HS256 secret; `None` generates one once and keeps it beside the database.
    pub token_secret: Option<String>,
    /// Lifetime of tokens issued by `POST /v1/token`, in seconds.
    pub token_ttl_secs: u64,
}

impl ServerConfig {
    /// 127.0.0.1:0, dev auth, the given database file.
    pub fn for_tests(db_path: impl Into<PathBuf>) -> Self {
        ServerConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_path: db_path.into(),
            auth: AuthMode::Dev,
            token_secret: None,
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
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
    /// SQLite database file (created if missing).
    #[arg(long, env = "CHATSYNC_DB", default_value = "./chatsync.db")]
    pub db: PathBuf,
    /// `dev`: anyone gets a token from POST /v1/token. `secret`: tokens come from your backend.
    #[arg(long, env = "CHATSYNC_AUTH", value_enum, default_value_t = AuthMode::Dev)]
    pub auth: AuthMode,
    /// HS256 token secret (default: generated once, kept beside the database as DB.token-secret).
    #[arg(long, env = "CHATSYNC_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "CHATSYNC_TOKEN_TTL", default_value_t = DEFAULT_TOKEN_TTL_SECS)]
    pub token_ttl: u64,
}

impl From<ServeArgs> for ServerConfig {
    fn from(args: ServeArgs) -> Self {
        ServerConfig {
            addr: args.addr,
            db_path: args.db,
            auth: args.auth,
            token_secret: args.token_secret,
            token_ttl_secs: args.token_ttl,
        }
    }
}

/// Binds, runs the server on the current tokio runtime, returns once it accepts connections.
pub async fn start(config: ServerConfig) -> Result<RunningServer, ServerError> {
    if config.token_secret.as_deref() == Some("") {
        return Err(ServerError::Config(
            "--token-secret must not be empty".into(),
        ));
    }
    if config.token_ttl_secs == 0 {
        return Err(ServerError::Config(
            "--token-ttl must be at least 1 second".into(),
        ));
    }
    let db_path = config.db_path.clone();
    let store: Arc<dyn Store> = Arc::new(
        run_blocking(move || SqliteStore::open(&db_path))
            .await
            .map_err(|source| ServerError::Database {
                path: config.db_path.clone(),
                source,
            })?,
    );
    let secret = match &config.token_secret {
        Some(secret) => secret.clone(),
        None => {
            let path = auth::secret_file_path(&config.db_path);
            let secret_path = path.clone();
            run_blocking(move || auth::load_or_create_secret(&secret_path))
                .await
                .map_err(|source| {
                    store.close();
                    ServerError::TokenSecret { path, source }
                })?
        }
    };
    let keys = Arc::new(TokenKeys::new(secret, config.token_ttl_secs));
    let notifier = Notifier::new();
    let router = app::router(Arc::clone(&store), Arc::clone(&notifier), keys, config.auth);
    let server = match serve::spawn(config.addr, router, store.clone(), notifier) {
        Ok(server) => server,
        Err(e) => {
            store.close();
            return Err(e);
        }
    };
    tracing::info!(addr = %server.addr(), db = %config.db_path.display(), "chatsync-server listening");
    if config.auth == AuthMode::Dev {
        tracing::warn!(
            "dev auth: POST /v1/token gives a token to anyone (use --auth secret in production)"
        );
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
