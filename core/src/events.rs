//! Fan-out of changes to the app's listeners. A slow or panicking listener never blocks or
//! breaks the engine: each listener is fed from its own queue on its own task.

use crate::model::{NetworkStatus, SyncState};

/// A change the app may want to render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Messages of a room were added, replaced (echo -> sent) or removed. `ids` are GiftedChat
    /// `_id`s (server ids as strings, local ids for echoes).
    MessagesChanged { room_id: String, ids: Vec<String> },
    NetworkStatusChanged { status: NetworkStatus },
    SyncStateChanged { state: SyncState },
    OutboxChanged { pending: u32, failed: u32 },
}

/// Implemented by the app (in Kotlin or Swift through the bindings).
pub trait ClientListener: Send + Sync {
    fn on_event(&self, event: ClientEvent);
}

/// Keeps a listener subscribed; `cancel()` or dropping it ends the subscription.
pub struct Subscription {
    // filled in by the implementation
}

impl Subscription {
    pub fn cancel(&self) {
        todo!()
    }
}
