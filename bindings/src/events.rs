//! Changes pushed to the app: [`ClientEvent`], the foreign [`ClientListener`] the app
//! implements, and [`Subscription`], the handle that keeps a listener subscribed.
//!
//! The core feeds each listener from its own queue on its own task and sends the current state
//! first. A listener that throws in Kotlin or Swift is contained here: the event is dropped for
//! that listener and the core's task carries on.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::model::{NetworkStatus, SyncState};

/// A change the app may want to render.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ClientEvent {
    /// Messages of a room were added, replaced (echo -> sent) or removed. `ids` are message
    /// ids (server ids as strings, local ids for messages sent from this device). A screen
    /// renders from a `Timeline`; this event is for everything else (a badge, a log).
    MessagesChanged {
        /// The room whose messages changed.
        room_id: String,
        /// The changed messages' ids.
        ids: Vec<String>,
    },
    /// The network status changed (or, first, the current one).
    NetworkStatusChanged {
        /// The new status.
        status: NetworkStatus,
    },
    /// The sync engine's state changed (or, first, the current one). `Stopped` is the last
    /// event a listener gets.
    SyncStateChanged {
        /// The new state.
        state: SyncState,
    },
    /// The outbox changed (or, first, its current counts).
    OutboxChanged {
        /// Messages waiting to be sent.
        pending: u32,
        /// Messages rejected for good.
        failed: u32,
    },
    /// Who is typing in a room changed (the user excluded). Ephemeral: never stored.
    TypingChanged {
        /// The room.
        room_id: String,
        /// Members typing now.
        user_ids: Vec<String>,
    },
    /// The user's unread messages over all rooms changed (or, first, the current total): the
    /// app badge.
    UnreadChanged {
        /// Unread messages in all rooms.
        total: u32,
    },
    /// The server refused the token and the token source had no better one: sign the user in
    /// again. Sent once per streak of refusals (again after a request succeeded).
    Unauthorized {
        /// The server's (or the token provider's) reason.
        reason: String,
    },
}

impl From<chatsync_core::ClientEvent> for ClientEvent {
    fn from(e: chatsync_core::ClientEvent) -> Self {
        use chatsync_core::ClientEvent as E;
        match e {
            E::MessagesChanged { room_id, ids } => ClientEvent::MessagesChanged { room_id, ids },
            E::NetworkStatusChanged { status } => ClientEvent::NetworkStatusChanged {
                status: status.into(),
            },
            E::SyncStateChanged { state } => ClientEvent::SyncStateChanged {
                state: state.into(),
            },
            E::OutboxChanged { pending, failed } => ClientEvent::OutboxChanged { pending, failed },
            E::TypingChanged { room_id, user_ids } => {
                ClientEvent::TypingChanged { room_id, user_ids }
            }
            E::UnreadChanged { total } => ClientEvent::UnreadChanged { total },
            E::Unauthorized { reason } => ClientEvent::Unauthorized { reason },
        }
    }
}

/// Implemented by the app to receive [`ClientEvent`]s. Called on a background thread, one
/// event at a time, in order; the first events carry the current state. Return quickly (hand
/// the event to the UI thread); a slow listener only delays itself.
#[uniffi::export(foreign)]
pub trait ClientListener: Send + Sync {
    /// One change.
    fn on_event(&self, event: ClientEvent);
}

/// Adapts the foreign [`ClientListener`] to the core's trait.
pub(crate) struct ClientListenerAdapter(pub(crate) Arc<dyn ClientListener>);

impl chatsync_core::ClientListener for ClientListenerAdapter {
    fn on_event(&self, event: chatsync_core::ClientEvent) {
        // An exception thrown by the foreign listener surfaces as a panic in the generated
        // callback code; keep it out of the core's task.
        let _ = catch_unwind(AssertUnwindSafe(|| self.0.on_event(event.into())));
    }
}

/// Keeps a listener subscribed. `cancel()` ends the subscription; so does dropping the handle
/// (Kotlin: `close()`/`use {}` or garbage collection; Swift: the last reference), but do not rely
/// on a collector's timing: cancel it. (`cancel`, not `close`: Kotlin objects already have an
/// AutoCloseable `close()` that frees the handle.)
#[derive(uniffi::Object)]
pub struct Subscription {
    inner: Arc<chatsync_core::Subscription>,
}

impl Subscription {
    pub(crate) fn new(inner: Arc<chatsync_core::Subscription>) -> Self {
        Subscription { inner }
    }
}

#[uniffi::export]
impl Subscription {
    /// Ends the subscription: no event is delivered after this returns, so it waits for a
    /// delivery under way on the listener's thread (called from inside the listener, it returns
    /// at once). Do not call it while holding a lock the listener takes, or from a place the
    /// listener waits for (Swift's stream termination handler runs under the consuming task's
    /// lock: the AsyncStreams of ChatsyncExtensions.swift cancel from another thread). Idempotent.
    pub fn cancel(&self) {
        // Nothing to report: a failing cancel leaves nothing the app could act on.
        let _ = crate::error::guard_infallible(|| self.inner.cancel());
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let _ = crate::error::guard_infallible(|| self.inner.cancel());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Throwing(Mutex<u32>);
    impl ClientListener for Throwing {
        fn on_event(&self, _event: ClientEvent) {
            *self.0.lock().unwrap() += 1;
            panic!("listener threw");
        }
    }

    #[test]
    fn the_unauthorized_event_crosses_with_its_reason() {
        let event = ClientEvent::from(chatsync_core::ClientEvent::Unauthorized {
            reason: "token expired".into(),
        });
        assert_eq!(
            event,
            ClientEvent::Unauthorized {
                reason: "token expired".into()
            }
        );
    }

    #[test]
    fn a_throwing_listener_does_not_unwind_into_the_core() {
        let listener = Arc::new(Throwing(Mutex::new(0)));
        let adapter = ClientListenerAdapter(listener.clone());
        use chatsync_core::ClientListener as _;
        adapter.on_event(chatsync_core::ClientEvent::OutboxChanged {
            pending: 1,
            failed: 0,
        });
        adapter.on_event(chatsync_core::ClientEvent::OutboxChanged {
            pending: 0,
            failed: 0,
        });
        assert_eq!(*listener.0.lock().unwrap(), 2);
    }
}
