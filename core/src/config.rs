//! Settings and their mobile defaults.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::TokenError;

/// Where the client gets its bearer token.
#[derive(Clone)]
pub enum TokenSource {
    /// A fixed token (it cannot be refreshed: a 401 is final).
    Fixed(String),
    /// The reference server's dev-mode route `POST /v1/token` (quick start and tests).
    DevTokenRoute,
    /// The app's own provider, asked once at first use and again after every 401.
    Provider(Arc<dyn TokenProvider>),
}

impl fmt::Debug for TokenSource {
    // Never print a token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Fixed(_) => f.write_str("Fixed(<redacted>)"),
            TokenSource::DevTokenRoute => f.write_str("DevTokenRoute"),
            TokenSource::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

/// Implemented by the app (in Kotlin or Swift through the bindings) to hand out tokens.
/// Called on a blocking thread, never on the app's main thread.
pub trait TokenProvider: Send + Sync {
    /// Returns a bearer token for `user_id`, or why none can be had: `Offline` (retry later;
    /// the user stays signed in), `Unauthorized` (sign in again) or `Other`.
    fn fetch_token(&self, user_id: String) -> Result<String, TokenError>;
}

/// How the connectivity probe asks the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMethod {
    /// `HEAD` (no body; the default).
    Head,
    /// `GET`, for probe URLs that do not answer `HEAD`.
    Get,
}

/// Connectivity probe settings, with react-native-offline's meanings.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// URL to probe; `None` means the server's `/health`.
    pub url: Option<String>,
    /// HTTP method of the probe.
    pub method: ProbeMethod,
    /// How long a probe waits for an answer before counting as offline.
    pub timeout_ms: u64,
    /// Interval between probes while offline (and while online when `only_while_offline` is off).
    pub interval_ms: u64,
    /// Probe only while offline (a success of any real request marks online anyway).
    pub only_while_offline: bool,
    /// Keep probing while the app is in the background (costs battery; off by default).
    pub in_background: bool,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            url: None,
            method: ProbeMethod::Head,
            timeout_ms: 5_000,
            interval_ms: 1_000,
            only_while_offline: true,
            in_background: false,
        }
    }
}

/// Everything a [`crate::ChatClient`] needs. `ClientConfig::new` fills in mobile defaults.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base URL of a protocol v1 server, e.g. `https://chat.example.com` or `http://127.0.0.1:5000`.
    pub server_url: String,
    /// Directory of the on-device store (created if missing). One user per directory.
    pub data_dir: PathBuf,
    /// The user this device acts as (one user per data directory).
    pub user_id: String,
    /// Where bearer tokens come from.
    pub token: TokenSource,
    /// sled page cache in bytes. Small on purpose: sled's default is 1 GB.
    pub cache_capacity_bytes: u64,
    /// Default number of messages per page (history reads, sync limit per room).
    pub page_size: u32,
    /// Local history kept per room; older messages are evicted and fetched again on scroll.
    pub max_messages_per_room: u32,
    /// Connectivity probe settings.
    pub probe: ProbeConfig,
    /// Interval of sync + flush while the app is in the background (and online).
    pub background_interval_ms: u64,
    /// How long one live long-poll asks the server to hold the request.
    pub long_poll_timeout_ms: u64,
    /// Allow plain `http://` to a non-loopback host. Off by default: TLS or loopback only.
    pub allow_insecure_http: bool,
}

impl ClientConfig {
    /// A config with mobile defaults: 4 MiB cache, pages of 50, 20,000 messages kept per room,
    /// 60 s background interval, 25 s long-poll, TLS or loopback only.
    pub fn new(
        server_url: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        user_id: impl Into<String>,
        token: TokenSource,
    ) -> Self {
        ClientConfig {
            server_url: server_url.into(),
            data_dir: data_dir.into(),
            user_id: user_id.into(),
            token,
            cache_capacity_bytes: 4 * 1024 * 1024,
            page_size: 50,
            max_messages_per_room: 20_000,
            probe: ProbeConfig::default(),
            background_interval_ms: 60_000,
            long_poll_timeout_ms: 25_000,
            allow_insecure_http: false,
        }
    }
}
