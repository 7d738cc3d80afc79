//! The one error that crosses into Kotlin and Swift, and the guard that keeps panics out.
//!
//! [`ChatError`] is a flat error: each variant carries the core error's readable text, so
//! Kotlin's `ChatException.message` and Swift's description say what happened ("offline:
//! connection refused") instead of listing fields. The variant tells the app what it can do.
//!
//! A panic must never unwind into the app. UniFFI already turns a panic into an internal error,
//! but that is a second error type the app would have to know; [`guard`] and [`guard_async`]
//! catch it first and return [`ChatError::Internal`] instead.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Poll;

/// Errors returned by every method of the chatsync API. The message is readable text; the
/// variant says what the app can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum ChatError {
    /// The server could not be reached (no network, server down, timeout). Retry later; sends
    /// are queued regardless.
    #[error("{0}")]
    Offline(String),
    /// The token was missing, invalid or expired and no fresh one could be had.
    #[error("{0}")]
    Unauthorized(String),
    /// The room, user or message does not exist (or is not visible to this user).
    #[error("{0}")]
    NotFound(String),
    /// The server refused the request for good (too large, forbidden, malformed); the message
    /// carries the server's status and reason.
    #[error("{0}")]
    Rejected(String),
    /// The server answered something that is not sync protocol v1. Nothing from that answer
    /// was stored.
    #[error("{0}")]
    Protocol(String),
    /// The on-device store failed (I/O, corruption, full disk, newer format). Stored data is
    /// left as it was.
    #[error("{0}")]
    Storage(String),
    /// The caller passed something invalid (empty text, oversized message, bad URL).
    #[error("{0}")]
    InvalidInput(String),
    /// The store is held by another client (another process); try again later.
    #[error("{0}")]
    Busy(String),
    /// The client was shut down.
    #[error("{0}")]
    ShutDown(String),
    /// A bug inside chatsync (a panic), caught at the boundary. The client may be unusable;
    /// report it.
    #[error("{0}")]
    Internal(String),
}

impl From<chatsync_core::ChatError> for ChatError {
    fn from(error: chatsync_core::ChatError) -> Self {
        use chatsync_core::ChatError as E;
        let text = error.to_string();
        match error {
            // Apps treat both as "try later, sends stay queued"; the text says which it was.
            E::Offline(_) | E::Unavailable { .. } => ChatError::Offline(text),
            E::Unauthorized(_) => ChatError::Unauthorized(text),
            E::NotFound(_) => ChatError::NotFound(text),
            E::Rejected { .. } => ChatError::Rejected(text),
            E::Protocol(_) => ChatError::Protocol(text),
            E::Storage(_) => ChatError::Storage(text),
            E::InvalidInput(_) => ChatError::InvalidInput(text),
            E::Busy(_) => ChatError::Busy(text),
            E::ShutDown => ChatError::ShutDown(text),
        }
    }
}

impl ChatError {
    /// The error for a caught panic, with the panic's message when it has one.
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        ChatError::Internal(format!("internal error: chatsync panicked: {what}"))
    }
}

/// Runs a synchronous call into the core; its error converts, a panic becomes
/// [`ChatError::Internal`].
pub(crate) fn guard<T>(
    call: impl FnOnce() -> Result<T, chatsync_core::ChatError>,
) -> Result<T, ChatError> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(result) => result.map_err(ChatError::from),
        Err(payload) => Err(ChatError::from_panic(payload)),
    }
}

/// Like [`guard`] for a call that cannot fail in the core (it may still panic).
pub(crate) fn guard_infallible<T>(call: impl FnOnce() -> T) -> Result<T, ChatError> {
    guard(|| Ok(call()))
}

/// Awaits a future of the core; its error converts, a panic in any poll becomes
/// [`ChatError::Internal`].
pub(crate) async fn guard_async<T>(
    future: impl Future<Output = Result<T, chatsync_core::ChatError>>,
) -> Result<T, ChatError> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(move |cx| {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(result)) => Poll::Ready(result.map_err(ChatError::from)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(ChatError::from_panic(payload))),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_is_the_core_text() {
        let core = chatsync_core::ChatError::Rejected {
            code: "413".into(),
            reason: "message too large".into(),
        };
        let error = ChatError::from(core.clone());
        assert_eq!(error, ChatError::Rejected(core.to_string()));
        assert_eq!(
            error.to_string(),
            "rejected by server (413): message too large"
        );
        assert_eq!(
            ChatError::from(chatsync_core::ChatError::ShutDown).to_string(),
            "client is shut down"
        );
    }

    #[test]
    fn guard_turns_a_panic_into_internal() {
        let result: Result<(), ChatError> = guard(|| panic!("boom {}", 42));
        match result {
            Err(ChatError::Internal(text)) => assert!(text.contains("boom 42"), "{text}"),
            other => panic!("expected Internal, got {other:?}"),
        }
        assert_eq!(guard(|| Ok::<_, chatsync_core::ChatError>(7)), Ok(7));
    }

    #[test]
    fn guard_async_turns_a_panic_in_poll_into_internal() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let result: Result<u32, ChatError> = rt.block_on(guard_async(async {
            tokio::task::yield_now().await; // panic in a later poll, not the first
            if true {
                panic!("late boom");
            }
            Ok(1)
        }));
        match result {
            Err(ChatError::Internal(text)) => assert!(text.contains("late boom"), "{text}"),
            other => panic!("expected Internal, got {other:?}"),
        }
        let ok = rt.block_on(guard_async(async {
            Err::<u32, _>(chatsync_core::ChatError::Offline("down".into()))
        }));
        assert_eq!(ok, Err(ChatError::Offline("offline: down".into())));
    }
}
