//! The one public error an app sees: a few variants it can act on, each saying what happened.

/// Errors returned by [`crate::ChatClient`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The server could not be reached (no network, server down, timeout). Retry later; sends
    /// are queued regardless.
    #[error("offline: {0}")]
    Offline(String),
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
