//! The one public error an app sees: a few variants it can act on, each saying what happened.

/// Errors returned by [`crate::ChatClient`].
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
    /// The token was missing, invalid or expired and no fresh one could be had.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The room, user or message does not exist (or is not visible to this user).
    #[error("not found: {0}")]
    NotFound(String),
    /// The server refused the request for good (403, 413, 400, ...); `reason` is its description.
    #[error("rejected by server ({code}): {reason}")]
    Rejected {
        /// The server's snake_case error code (`forbidden`, `payload_too_large`, ...).
        code: String,
        /// The server's human-readable description.
        reason: String,
    },
    /// The server answered something that is not protocol v1 (malformed JSON, wrong types,
    /// ids going backwards). Nothing from that answer was stored.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The on-device store failed (I/O, corruption, full disk, newer format, held by another
    /// process). Stored data is left as it was.
    #[error("storage error: {0}")]
    Storage(String),
    /// The caller passed something invalid (empty text, oversized message, bad URL).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The store is held by another ChatClient (another process); try again later.
    #[error("busy: {0}")]
    Busy(String),
    /// The client was shut down.
    #[error("client is shut down")]
    ShutDown,
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
