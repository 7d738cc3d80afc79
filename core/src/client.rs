//! [`ChatClient`]: the facade an app holds.

use std::sync::Arc;

use crate::config::ClientConfig;
use crate::error::ChatError;
use crate::events::{ClientListener, Subscription};
use crate::model::*;

/// One user's chat engine on a device. Cheap to share (`Arc`); all methods take `&self`.
/// Async methods run on the client's own tokio runtime, so any executor may await them.
pub struct ChatClient {
    /// Network monitor and scheduler state (see `lifecycle`).
    pub(crate) lifecycle: crate::lifecycle::Lifecycle,
    // the rest is filled in by the implementation
}

impl ChatClient {
    /// Opens (or creates) the store in `config.data_dir`. No network I/O. Fails with
    /// `Storage` for a corrupt or newer-format store and `Busy` when another process holds it.
    pub fn new(config: ClientConfig) -> Result<Arc<ChatClient>, ChatError> { let _ = config; todo!() }

    // --- session ---
    /// Logs in as the configured user with a profile; stored at once, uploaded when online.
    pub async fn login(&self, name: String, avatar_url: Option<String>) -> Result<Session, ChatError> { let _ = (name, avatar_url); todo!() }
    /// The stored session, readable offline.
    pub fn session(&self) -> Result<Option<Session>, ChatError> { todo!() }
    pub async fn set_friend(&self, user_id: String) -> Result<Session, ChatError> { let _ = user_id; todo!() }
    /// Gets or creates the direct room with `user_id` (network on first use, stored after).
    pub async fn open_direct_room(&self, user_id: String) -> Result<RoomSummary, ChatError> { let _ = user_id; todo!() }
    /// Rooms held on the device.
    pub fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> { todo!() }

    // --- reading (store only) ---
    /// Newest first, pending and failed echoes merged in their place.
    pub fn messages(&self, room_id: String, limit: u32, before: Option<u64>) -> Result<Vec<ChatMessage>, ChatError> { let _ = (room_id, limit, before); todo!() }
    /// Older messages: from the store first, then from the server before the oldest held id.
    pub async fn load_older(&self, room_id: String, limit: u32) -> Result<LoadOlderResult, ChatError> { let _ = (room_id, limit); todo!() }

    // --- sync ---
    /// One `/v1/sync` from the stored token plus an outbox flush.
    pub async fn sync_once(&self) -> Result<SyncReport, ChatError> { todo!() }

    // --- outbox ---
    /// Queues a text message durably and returns its pending echo, online or not.
    pub async fn send_text(&self, room_id: String, text: String) -> Result<ChatMessage, ChatError> { let _ = (room_id, text); todo!() }
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, ChatError> { todo!() }
    pub async fn retry(&self, local_id: String) -> Result<(), ChatError> { let _ = local_id; todo!() }
    pub async fn discard(&self, local_id: String) -> Result<(), ChatError> { let _ = local_id; todo!() }

    // --- events ---
    /// The listener first gets the current state (network, sync, outbox), then every change.
    pub fn subscribe(&self, listener: Arc<dyn ClientListener>) -> Arc<Subscription> { let _ = listener; todo!() }
}
