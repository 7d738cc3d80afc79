//! Errors, typed inside and actionable outside.
//!
//! Inside the core every failure is an [`Error`], by source: a classified request failure
//! ([`ApiError`], the app's token provider included), a store failure ([`StoreError`]), bad
//! input, a shutdown, a bug. It is mapped to the one public [`ChatError`] in exactly one
//! place, `impl From<Error> for ChatError` below, which also decides what the app can do about
//! it: a provider that says "offline" stays `Offline` (an app must not log the user out in a
//! tunnel), the server's error code travels with `Rejected`, a panic is `Internal`.

use crate::api::ApiError;
use crate::store::StoreError;

/// Errors returned by [`crate::ChatClient`]: what happened, in a variant the app can act on,
/// and a message that says it in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The server could not be reached (no network, server down, timeout). Retry later; sends
    /// are queued regardless.
    #[error("offline: {0}")]
    Offline(String),
    /// The server answered, but cannot serve now: an error on its side (5xx, 408) or
    /// overload (429, 503). Retry later, not before `retry_after_secs` when it says; sends stay
    /// queued.
    #[error("{}", unavailable_text(*status, *retry_after_secs, reason))]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// The server's Retry-After, in seconds, when it gave one.
        retry_after_secs: Option<u64>,
        /// The server's description.
        reason: String,
    },
    /// The token was missing, invalid or expired and no fresh one could be had: the app should
    /// sign the user in again.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The room, user or message does not exist (or is not visible to this user).
    #[error("not found: {0}")]
    NotFound(String),
    /// The server refused the request for good (403, 413, 400, ...).
    #[error("rejected by server ({code}): {reason}")]
    Rejected {
        /// The server's snake_case error code (`forbidden`, `payload_too_large`, ...).
        code: String,
        /// The server's human-readable description.
        reason: String,
    },
    /// The server answered something that is not the chatsync protocol (malformed JSON, wrong
    /// types, ids going backwards, a redirect elsewhere). Nothing from that answer was stored.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The on-device store failed (I/O, damage, full disk, newer format). Stored data is left
    /// as it was; the message says what to do.
    #[error("storage error: {0}")]
    Storage(String),
    /// The caller passed something invalid (empty text, oversized message, bad URL, a room id
    /// the protocol does not allow).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store is held by another ChatClient (another process); try again later.
    #[error("busy: {0}")]
    Busy(String),
    /// The client was shut down (or the call was cancelled by the shutdown).
    #[error("client is shut down")]
    ShutDown,
    /// A bug inside chatsync (a panic, a task that died). The store is left as it was.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ChatError {
    /// Whether trying again later may succeed without anyone doing anything (no network, a
    /// server that is down, failing or busy). Sends stay queued through these.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChatError::Offline(_) | ChatError::Unavailable { .. })
    }
}

fn unavailable_text(status: u16, retry_after_secs: Option<u64>, reason: &str) -> String {
    let after = retry_after_secs
        .map(|s| format!(", retry after {s} s"))
        .unwrap_or_default();
    match status {
        429 | 503 => format!("server busy ({status}): {reason}{after}"),
        _ => format!("server error ({status}): {reason}{after}"),
    }
}

/// What an app's [`crate::TokenProvider`] says when it has no token: typed, so "no network"
/// (retry later) is never mistaken for "signed out" (sign in again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No token now because the provider's own backend is unreachable: retry later.
    #[error("{0}")]
    Offline(String),
    /// The user is signed out (or the refresh was refused): sign in again.
    #[error("{0}")]
    Unauthorized(String),
    /// Anything else the provider reports.
    #[error("{0}")]
    Other(String),
}

/// The core's internal error, by source. See the module docs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A request failed (classified in `api`).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller passed something invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// Something the caller named is not on the device (an outbox entry).
    #[error("{0}")]
    NotFound(String),
    /// The client is shut down, or the call was cancelled by the shutdown.
    #[error("client is shut down")]
    ShutDown,
    /// A bug: a panic or a task that died.
    #[error("{0}")]
    Internal(String),
}

impl From<chatsync_protocol::limits::Invalid> for Error {
    fn from(e: chatsync_protocol::limits::Invalid) -> Self {
        Error::InvalidInput(e.to_string())
    }
}

/// The one mapping from inside to outside.
impl From<Error> for ChatError {
    fn from(e: Error) -> Self {
        match e {
            Error::Api(api) => match api {
                ApiError::Network(m) => ChatError::Offline(m),
                ApiError::Unavailable {
                    status,
                    retry_after,
                    reason,
                } => ChatError::Unavailable {
                    status,
                    retry_after_secs: retry_after.map(|d| d.as_secs()),
                    reason,
                },
                ApiError::Unauthorized(m) => ChatError::Unauthorized(m),
                ApiError::NotFound(m) => ChatError::NotFound(m),
                ApiError::Rejected { code, reason, .. } => ChatError::Rejected { code, reason },
                ApiError::Protocol(m) => ChatError::Protocol(m),
                ApiError::ShutDown => ChatError::ShutDown,
                ApiError::Token(t) => token_error(t),
            },
            Error::Store(StoreError::Busy(m)) => ChatError::Busy(m),
            Error::Store(s) => ChatError::Storage(s.to_string()),
            Error::InvalidInput(m) => ChatError::InvalidInput(m),
            Error::NotFound(m) => ChatError::NotFound(m),
            Error::ShutDown => ChatError::ShutDown,
            Error::Internal(m) => ChatError::Internal(m),
        }
    }
}

fn token_error(t: TokenError) -> ChatError {
    match t {
        TokenError::Offline(m) => ChatError::Offline(format!("token provider: {m}")),
        TokenError::Unauthorized(m) => ChatError::Unauthorized(format!("token provider: {m}")),
        // The app's provider failed for its own reasons: not our bug, and not a sign-out; try
        // again later, like a network failure.
        TokenError::Other(m) => ChatError::Offline(format!("token provider failed: {m}")),
    }
}

impl Error {
    /// Whether a later attempt may succeed by itself (see [`ChatError::is_transient`]).
    #[cfg(test)]
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Api(a) if a.is_transient())
    }

    /// A panic payload as an internal error.
    pub fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Error::Internal(format!("chatsync panicked: {what}"))
    }
}

/// Results inside the core.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_that_is_offline_is_offline_not_unauthorized() {
        let token = |e| Error::Api(ApiError::Token(e));
        let offline: ChatError = token(TokenError::Offline("no network".into())).into();
        assert_eq!(
            offline,
            ChatError::Offline("token provider: no network".into())
        );
        assert!(offline.is_transient());
        let out: ChatError = token(TokenError::Unauthorized("signed out".into())).into();
        assert!(matches!(out, ChatError::Unauthorized(_)));
        let other: ChatError = token(TokenError::Other("keychain locked".into())).into();
        assert_eq!(other, ChatError::Offline("token provider failed: keychain locked".into()));
    }

    #[test]
    fn rejected_keeps_the_servers_code_and_messages_say_it_once() {
        let e: ChatError = Error::Api(ApiError::Rejected {
            status: 403,
            code: "forbidden".into(),
            reason: "not a member".into(),
        })
        .into();
        assert_eq!(
            e,
            ChatError::Rejected {
                code: "forbidden".into(),
                reason: "not a member".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "rejected by server (forbidden): not a member"
        );
        let offline: ChatError = Error::Api(ApiError::Network("connection refused".into())).into();
        assert_eq!(offline.to_string(), "offline: connection refused");
    }
}
