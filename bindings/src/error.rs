//! The one error that crosses into Kotlin and Swift, and the guard that keeps panics out.
//!
//! [`ChatError`] carries structure and reads well: every case has `detail`, the core error's
//! readable text said once ("offline: connection refused", "rejected by server (forbidden): not
//! a member"); `Rejected` also has the server's `code` to branch on, `Offline` the server's
//! `retry_after_secs` when it gave one. The case says what the app can do. The mapping from the
//! core's error is the `From` impl below, the only one.
//!
//! UniFFI's generated Kotlin gives a non-flat error a `message` that lists its fields
//! (`"detail=..., code=..."`); `bindings/build.sh` rewrites that getter to return `detail`, and
//! fails the build when the generated code no longer has the shape it rewrites (docs/adr/0013).
//!
//! A panic must never unwind into the app. UniFFI already turns a panic into an internal error,
//! but that is a second error type the app would have to know; [`guard`] and [`guard_async`]
//! catch it first and return [`ChatError::Internal`] instead.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Poll;

/// Errors returned by every method of the chatsync API. `detail` is readable text that says
/// what happened (it is also the Kotlin `message`); the case says what the app can do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ChatError {
    /// The server could not be reached (no network, server down, timeout), or it answered but
    /// cannot serve now (an error on its side, overloaded). Retry later, not before
    /// `retry_after_secs` when it is set; sends stay queued regardless.
    #[error("{detail}")]
    Offline {
        /// What happened, in words ("offline: connection refused", "server busy (503): ...").
        detail: String,
        /// The server's Retry-After in seconds, when it said how long to wait.
        retry_after_secs: Option<u64>,
    },
    /// The token was missing, invalid or expired and no fresh one could be had: sign the user
    /// in again.
    #[error("{detail}")]
    Unauthorized {
        /// What happened, in words.
        detail: String,
    },
    /// The room, user or message does not exist (or is not visible to this user).
    #[error("{detail}")]
    NotFound {
        /// What happened, in words.
        detail: String,
    },
    /// The server refused the request for good (forbidden, too large, malformed); retrying
    /// the same request will not help.
    #[error("{detail}")]
    Rejected {
        /// The server's snake_case error code (`forbidden`, `bad_request`, `payload_too_large`).
        code: String,
        /// What happened, in words, with the server's reason.
        detail: String,
    },
    /// The server answered something that is not the chatsync protocol. Nothing from that
    /// answer was stored.
    #[error("{detail}")]
    Protocol {
        /// What happened, in words.
        detail: String,
    },
    /// The on-device store failed (I/O, damage, full disk, newer format). Stored data is left
    /// as it was; `recover_store` rebuilds a damaged store.
    #[error("{detail}")]
    Storage {
        /// What happened, in words, and what to do.
        detail: String,
    },
    /// The caller passed something invalid (empty text, oversized message, bad URL).
    #[error("{detail}")]
    InvalidInput {
        /// What was wrong, in words.
        detail: String,
    },
    /// The store is held by another client (another process); try again later.
    #[error("{detail}")]
    Busy {
        /// What happened, in words.
        detail: String,
    },
    /// The client was shut down (`shutdown()`, or the call was in flight when it was), or the
    /// object was closed (Kotlin: `close()`/`destroy()`).
    #[error("{detail}")]
    ShutDown {
        /// What happened, in words.
        detail: String,
    },
    /// A bug inside chatsync (a panic, a task that died), caught at the boundary. The store is
    /// left as it was; report it.
    #[error("{detail}")]
    Internal {
        /// What happened, in words.
        detail: String,
    },
}

/// The one mapping from the core's error: the text is the core's `Display`, said once.
impl From<chatsync_core::ChatError> for ChatError {
    fn from(error: chatsync_core::ChatError) -> Self {
        use chatsync_core::ChatError as E;
        let detail = error.to_string();
        match error {
            E::Offline(_) => ChatError::Offline {
                detail,
                retry_after_secs: None,
            },
            // The server answered but cannot serve now: for the app it is the same "try later,
            // sends stay queued" as offline; the text says which it was, the field how long.
            E::Unavailable {
                retry_after_secs, ..
            } => ChatError::Offline {
                detail,
                retry_after_secs,
            },
            E::Unauthorized(_) => ChatError::Unauthorized { detail },
            E::NotFound(_) => ChatError::NotFound { detail },
            E::Rejected { code, .. } => ChatError::Rejected { code, detail },
            E::Protocol(_) => ChatError::Protocol { detail },
            E::Storage(_) => ChatError::Storage { detail },
            E::InvalidInput(_) => ChatError::InvalidInput { detail },
            E::Busy(_) => ChatError::Busy { detail },
            E::ShutDown => ChatError::ShutDown { detail },
            E::Internal(_) => ChatError::Internal { detail },
        }
    }
}

impl ChatError {
    /// The error for a caught panic, with the panic's message when it has one; worded like the
    /// core's own (one mapping, one prefix).
    pub(crate) fn from_panic(payload: Box<dyn Any + Send>) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        chatsync_core::ChatError::Internal(format!("chatsync panicked: {what}")).into()
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
/// [`ChatError::Internal`]. Dropping it (a cancelled Kotlin coroutine or Swift Task) drops the
/// core's future, which ends the call's work and its request.
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
    fn rejected_keeps_the_servers_code_and_the_text_says_it_once() {
        let core = chatsync_core::ChatError::Rejected {
            code: "forbidden".into(),
            reason: "you are not a member of this room".into(),
        };
        let error = ChatError::from(core);
        assert_eq!(
            error,
            ChatError::Rejected {
                code: "forbidden".into(),
                detail: "rejected by server (forbidden): you are not a member of this room".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "rejected by server (forbidden): you are not a member of this room"
        );
    }

    #[test]
    fn unavailable_is_offline_with_the_servers_retry_after() {
        let error = ChatError::from(chatsync_core::ChatError::Unavailable {
            status: 503,
            retry_after_secs: Some(7),
            reason: "overloaded".into(),
        });
        let ChatError::Offline {
            detail,
            retry_after_secs,
        } = error
        else {
            panic!("expected Offline, got {error:?}");
        };
        assert_eq!(retry_after_secs, Some(7));
        assert_eq!(detail, "server busy (503): overloaded, retry after 7 s");
        let offline = ChatError::from(chatsync_core::ChatError::Offline("refused".into()));
        assert_eq!(
            offline,
            ChatError::Offline {
                detail: "offline: refused".into(),
                retry_after_secs: None
            }
        );
    }

    #[test]
    fn every_case_reads_as_the_core_text_without_a_doubled_prefix() {
        use chatsync_core::ChatError as E;
        let cases = [
            (E::Offline("down".into()), "offline: down"),
            (E::Unauthorized("expired".into()), "unauthorized: expired"),
            (E::NotFound("room r9".into()), "not found: room r9"),
            (E::Protocol("bad json".into()), "protocol error: bad json"),
            (E::Storage("disk full".into()), "storage error: disk full"),
            (E::InvalidInput("empty".into()), "invalid input: empty"),
            (E::Busy("held".into()), "busy: held"),
            (E::ShutDown, "client is shut down"),
            (E::Internal("oops".into()), "internal error: oops"),
        ];
        for (core, text) in cases {
            assert_eq!(ChatError::from(core).to_string(), text);
        }
    }

    #[test]
    fn guard_turns_a_panic_into_internal_with_one_prefix() {
        let result: Result<(), ChatError> = guard(|| panic!("boom {}", 42));
        assert_eq!(
            result,
            Err(ChatError::Internal {
                detail: "internal error: chatsync panicked: boom 42".into()
            })
        );
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
            Err(ChatError::Internal { detail }) => {
                assert!(detail.contains("late boom"), "{detail}")
            }
            other => panic!("expected Internal, got {other:?}"),
        }
        let offline = rt.block_on(guard_async(async {
            Err::<u32, _>(chatsync_core::ChatError::Offline("down".into()))
        }));
        assert_eq!(offline.unwrap_err().to_string(), "offline: down");
    }
}
