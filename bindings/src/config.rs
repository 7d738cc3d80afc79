//! [`ClientConfig`] as a record, and the token provider the app implements in Kotlin or Swift.
//!
//! Every tuning field is optional: `None` (the default in Kotlin and Swift) means the core's
//! mobile default from `chatsync_core::ClientConfig::new`, so the defaults live in one place.

use std::sync::Arc;

/// Where the client gets its bearer token.
#[derive(Clone, uniffi::Enum)]
pub enum TokenSource {
    /// A fixed token (it cannot be refreshed: a 401 is final).
    Fixed {
        /// The bearer token.
        token: String,
    },
    /// The reference server's dev-mode route `POST /v1/token` (quick start and tests).
    DevTokenRoute,
    /// The app's own provider, asked once at first use and again after every 401.
    Provider {
        /// The app's implementation.
        provider: Arc<dyn TokenProvider>,
    },
}

/// Why the app's token provider could not hand out a token. The case decides what the client
/// does: `Offline` keeps the user signed in (the client reports `Offline` and retries later),
/// `Unauthorized` asks for a new sign-in (the client reports `Unauthorized` and emits the
/// `Unauthorized` event). An exception of another type thrown by the provider becomes `Other`
/// with its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum TokenProviderError {
    /// No token now because the provider's own backend cannot be reached (no network): retry
    /// later; the user stays signed in.
    #[error("{reason}")]
    Offline {
        /// Readable text, carried into the resulting `Offline` error.
        reason: String,
    },
    /// The user is signed out, or the refresh was refused: sign in again.
    #[error("{reason}")]
    Unauthorized {
        /// Readable text, carried into the resulting `Unauthorized` error and event.
        reason: String,
    },
    /// Anything else (a keychain that is locked, a bug in the provider). The user stays signed
    /// in and the client retries later, as for `Offline`: an iOS keychain is locked until the
    /// first unlock, which is when a background task often runs.
    #[error("{reason}")]
    Other {
        /// Readable text, carried into the resulting `Offline` error.
        reason: String,
    },
}

/// An exception the provider threw that is not a `TokenProviderError`: `Other`, with the
/// exception's message only. UniFFI hands over the whole Kotlin stack trace
/// (`stackTraceToString()`) or Swift's `String(describing:)`; an app's error text must not
/// carry a stack trace.
impl From<uniffi::UnexpectedUniFFICallbackError> for TokenProviderError {
    fn from(error: uniffi::UnexpectedUniFFICallbackError) -> Self {
        TokenProviderError::Other {
            reason: exception_message(&error.reason),
        }
    }
}

/// The message of a foreign exception's text: its first line (a Kotlin stack trace starts with
/// `toString()`, then `\tat ...` lines), without a qualified class name in front
/// (`java.lang.IllegalStateException: keychain locked` -> `keychain locked`).
fn exception_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let message = match first.split_once(": ") {
        Some((class, rest))
            if !class.is_empty()
                && class
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '$')) =>
        {
            rest.trim()
        }
        _ => first,
    };
    if message.is_empty() {
        "the token provider failed without a message".to_owned()
    } else {
        message.to_owned()
    }
}

/// Implemented by the app to hand out bearer tokens. Called on a background thread, never on
/// the app's main thread; it may block (e.g. on a refresh request).
#[uniffi::export(foreign)]
pub trait TokenProvider: Send + Sync {
    /// A valid token for `user_id`, or why none can be had (`Offline`: retry later;
    /// `Unauthorized`: sign in again).
    fn fetch_token(&self, user_id: String) -> Result<String, TokenProviderError>;
}

/// Adapts the foreign [`TokenProvider`] to the core's trait.
struct TokenProviderAdapter(Arc<dyn TokenProvider>);

impl chatsync_core::TokenProvider for TokenProviderAdapter {
    fn fetch_token(&self, user_id: String) -> Result<String, chatsync_core::TokenError> {
        self.0.fetch_token(user_id).map_err(Into::into)
    }
}

impl From<TokenProviderError> for chatsync_core::TokenError {
    fn from(e: TokenProviderError) -> Self {
        use chatsync_core::TokenError as T;
        match e {
            TokenProviderError::Offline { reason } => T::Offline(reason),
            TokenProviderError::Unauthorized { reason } => T::Unauthorized(reason),
            TokenProviderError::Other { reason } => T::Other(reason),
        }
    }
}

impl From<TokenSource> for chatsync_core::TokenSource {
    fn from(source: TokenSource) -> Self {
        match source {
            TokenSource::Fixed { token } => chatsync_core::TokenSource::Fixed(token),
            TokenSource::DevTokenRoute => chatsync_core::TokenSource::DevTokenRoute,
            TokenSource::Provider { provider } => {
                chatsync_core::TokenSource::Provider(Arc::new(TokenProviderAdapter(provider)))
            }
        }
    }
}

/// How the connectivity probe asks the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ProbeMethod {
    /// `HEAD` request.
    Head,
    /// `GET` request.
    Get,
}

impl From<ProbeMethod> for chatsync_core::ProbeMethod {
    fn from(m: ProbeMethod) -> Self {
        match m {
            ProbeMethod::Head => chatsync_core::ProbeMethod::Head,
            ProbeMethod::Get => chatsync_core::ProbeMethod::Get,
        }
    }
}

/// Connectivity probe settings (react-native-offline's meanings); `None` keeps the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, uniffi::Record)]
pub struct ProbeConfig {
    /// URL to probe; `None` means the server's `/health`.
    #[uniffi(default = None)]
    pub url: Option<String>,
    /// Request method; default `Head`.
    #[uniffi(default = None)]
    pub method: Option<ProbeMethod>,
    /// Probe timeout in milliseconds.
    #[uniffi(default = None)]
    pub timeout_ms: Option<u64>,
    /// Interval between probes while offline (and while online when `only_while_offline` is off).
    #[uniffi(default = None)]
    pub interval_ms: Option<u64>,
    /// Probe only while offline (default true).
    #[uniffi(default = None)]
    pub only_while_offline: Option<bool>,
    /// Keep probing while the app is in the background (default false).
    #[uniffi(default = None)]
    pub in_background: Option<bool>,
}

impl ProbeConfig {
    /// Applies the set fields onto `probe`.
    fn apply(self, probe: &mut chatsync_core::ProbeConfig) {
        if self.url.is_some() {
            probe.url = self.url;
        }
        if let Some(v) = self.method {
            probe.method = v.into();
        }
        if let Some(v) = self.timeout_ms {
            probe.timeout_ms = v;
        }
        if let Some(v) = self.interval_ms {
            probe.interval_ms = v;
        }
        if let Some(v) = self.only_while_offline {
            probe.only_while_offline = v;
        }
        if let Some(v) = self.in_background {
            probe.in_background = v;
        }
    }
}

/// Everything a [`crate::ChatClient`] needs. Only the first four fields are required; every
/// other field left `None` takes the core's mobile default.
#[derive(Clone, uniffi::Record)]
pub struct ClientConfig {
    /// Base URL of a protocol v1 server, e.g. `https://chat.example.com` or `http://127.0.0.1:5000`.
    pub server_url: String,
    /// Directory of the on-device store (created if missing). One user per directory.
    pub data_dir: String,
    /// The user this client acts as.
    pub user_id: String,
    /// Where the bearer token comes from.
    pub token: TokenSource,
    /// sled page cache in bytes (default 4 MiB; sled's own default would be 1 GB).
    #[uniffi(default = None)]
    pub cache_capacity_bytes: Option<u64>,
    /// Default number of messages per page (history reads, sync limit per room).
    #[uniffi(default = None)]
    pub page_size: Option<u32>,
    /// Local history kept per room; older messages are evicted and fetched again on scroll.
    #[uniffi(default = None)]
    pub max_messages_per_room: Option<u32>,
    /// Connectivity probe settings.
    #[uniffi(default = None)]
    pub probe: Option<ProbeConfig>,
    /// Interval of sync + flush while the app is in the background (and online).
    #[uniffi(default = None)]
    pub background_interval_ms: Option<u64>,
    /// How long one live long-poll asks the server to hold the request.
    #[uniffi(default = None)]
    pub long_poll_timeout_ms: Option<u64>,
    /// Allow plain `http://` to a non-loopback host. Off by default: TLS or loopback only.
    #[uniffi(default = None)]
    pub allow_insecure_http: Option<bool>,
}

impl From<ClientConfig> for chatsync_core::ClientConfig {
    fn from(c: ClientConfig) -> Self {
        let mut config =
            chatsync_core::ClientConfig::new(c.server_url, c.data_dir, c.user_id, c.token.into());
        if let Some(v) = c.cache_capacity_bytes {
            config.cache_capacity_bytes = v;
        }
        if let Some(v) = c.page_size {
            config.page_size = v;
        }
        if let Some(v) = c.max_messages_per_room {
            config.max_messages_per_room = v;
        }
        if let Some(p) = c.probe {
            p.apply(&mut config.probe);
        }
        if let Some(v) = c.background_interval_ms {
            config.background_interval_ms = v;
        }
        if let Some(v) = c.long_poll_timeout_ms {
            config.long_poll_timeout_ms = v;
        }
        if let Some(v) = c.allow_insecure_http {
            config.allow_insecure_http = v;
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(token: TokenSource) -> ClientConfig {
        ClientConfig {
            server_url: "http://127.0.0.1:1".into(),
            data_dir: "/tmp/x".into(),
            user_id: "alice".into(),
            token,
            cache_capacity_bytes: None,
            page_size: None,
            max_messages_per_room: None,
            probe: None,
            background_interval_ms: None,
            long_poll_timeout_ms: None,
            allow_insecure_http: None,
        }
    }

    #[test]
    fn unset_fields_keep_the_core_defaults() {
        let core: chatsync_core::ClientConfig = minimal(TokenSource::DevTokenRoute).into();
        let defaults = chatsync_core::ClientConfig::new(
            "http://127.0.0.1:1",
            "/tmp/x",
            "alice",
            chatsync_core::TokenSource::DevTokenRoute,
        );
        assert_eq!(format!("{core:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn set_fields_override() {
        let mut ffi = minimal(TokenSource::Fixed { token: "t".into() });
        ffi.cache_capacity_bytes = Some(1 << 20);
        ffi.probe = Some(ProbeConfig {
            timeout_ms: Some(250),
            method: Some(ProbeMethod::Get),
            ..Default::default()
        });
        let core: chatsync_core::ClientConfig = ffi.into();
        assert_eq!(core.cache_capacity_bytes, 1 << 20);
        assert_eq!(core.probe.timeout_ms, 250);
        assert_eq!(core.probe.method, chatsync_core::ProbeMethod::Get);
        assert_eq!(
            core.probe.interval_ms,
            chatsync_core::ProbeConfig::default().interval_ms
        );
        assert!(matches!(core.token, chatsync_core::TokenSource::Fixed(t) if t == "t"));
    }

    fn provider(error: TokenProviderError) -> Arc<dyn chatsync_core::TokenProvider> {
        struct Failing(TokenProviderError);
        impl TokenProvider for Failing {
            fn fetch_token(&self, _user_id: String) -> Result<String, TokenProviderError> {
                Err(self.0.clone())
            }
        }
        let chatsync_core::TokenSource::Provider(p) = TokenSource::Provider {
            provider: Arc::new(Failing(error)),
        }
        .into() else {
            panic!("expected a provider");
        };
        p
    }

    /// Issue 13: every provider error became `Unauthorized`, so an app in a tunnel logged its
    /// user out.
    #[test]
    fn each_provider_error_keeps_its_kind_and_its_text() {
        use chatsync_core::TokenError as T;
        let cases = [
            (
                TokenProviderError::Offline {
                    reason: "no network".into(),
                },
                T::Offline("no network".into()),
            ),
            (
                TokenProviderError::Unauthorized {
                    reason: "signed out".into(),
                },
                T::Unauthorized("signed out".into()),
            ),
            (
                TokenProviderError::Other {
                    reason: "keychain locked".into(),
                },
                T::Other("keychain locked".into()),
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(provider(error).fetch_token("alice".into()), Err(expected));
        }
    }

    #[test]
    fn an_unexpected_foreign_exception_is_other_with_its_message_only() {
        let kotlin = "java.lang.IllegalStateException: keychain locked\n\tat dev.app.Tokens.fetchToken(Tokens.kt:12)\n\tat dev.chatsync.UniffiCallbackInterfaceTokenProvider.callback(chatsync.kt:3044)";
        let error = TokenProviderError::from(uniffi::UnexpectedUniFFICallbackError {
            reason: kotlin.into(),
        });
        assert_eq!(
            error,
            TokenProviderError::Other {
                reason: "keychain locked".into()
            }
        );
        assert_eq!(exception_message("MyError.locked"), "MyError.locked");
        assert_eq!(
            exception_message("no token: server said \"later\""),
            "no token: server said \"later\""
        );
        assert_eq!(
            exception_message("kotlin.NotImplementedError"),
            "kotlin.NotImplementedError"
        );
        assert_eq!(
            exception_message(""),
            "the token provider failed without a message"
        );
    }
}
