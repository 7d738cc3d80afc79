//! [`ChatClient`], the object an app holds: one user's chat engine on the device.
//!
//! Every method forwards to `chatsync_core::ChatClient` through the guards of [`crate::error`],
//! so each returns either its value or a [`ChatError`], never a panic. Methods that cannot fail
//! in the core are still fallible here for that reason.

use std::sync::Arc;

use crate::config::ClientConfig;
use crate::error::{guard, guard_async, guard_infallible, ChatError};
use crate::events::{ClientListener, ClientListenerAdapter, Subscription};
use crate::model::*;

/// One user's chat engine on a device. Share one instance per user; all methods are safe to
/// call from any thread. The app reads from the store (`messages`, `rooms`, `session`) and
/// listens for changes; the network only fills the store.
#[derive(uniffi::Object)]
pub struct ChatClient {
    inner: Arc<chatsync_core::ChatClient>,
}

#[uniffi::export(async_runtime = "tokio")]
impl ChatClient {
    /// Opens (or creates) the store in `config.data_dir`. No network I/O. Fails with `Storage`
    /// for a corrupt or newer-format store, `Busy` when another process holds it, and
    /// `InvalidInput` for a bad server URL.
    #[uniffi::constructor]
    pub fn new(config: ClientConfig) -> Result<Arc<Self>, ChatError> {
        let inner = guard(|| chatsync_core::ChatClient::new(config.into()))?;
        Ok(Arc::new(ChatClient { inner }))
    }

    /// Logs in as the configured user with a profile; stored at once, uploaded when online.
    pub async fn login(
        &self,
        name: String,
        avatar_url: Option<String>,
    ) -> Result<Session, ChatError> {
        guard_async(self.inner.login(name, avatar_url))
            .await
            .map(Into::into)
    }

    /// The stored session, readable offline.
    pub fn session(&self) -> Result<Option<Session>, ChatError> {
        guard(|| self.inner.session()).map(|s| s.map(Into::into))
    }

    /// Chooses the friend to chat with; stored in the session.
    pub async fn set_friend(&self, user_id: String) -> Result<Session, ChatError> {
        guard_async(self.inner.set_friend(user_id))
            .await
            .map(Into::into)
    }

    /// Gets or creates the direct room with `user_id` (network on first use, stored after).
    pub async fn open_direct_room(&self, user_id: String) -> Result<RoomSummary, ChatError> {
        guard_async(self.inner.open_direct_room(user_id))
            .await
            .map(Into::into)
    }

    /// Rooms held on the device.
    pub fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        guard(|| self.inner.rooms()).map(convert_all)
    }

    /// Messages of a room from the store, newest first, pending and failed echoes merged in
    /// their place; `before` pages back from a server id.
    pub fn messages(
        &self,
        room_id: String,
        limit: u32,
        before: Option<u64>,
    ) -> Result<Vec<ChatMessage>, ChatError> {
        guard(|| self.inner.messages(room_id, limit, before)).map(convert_all)
    }

    /// Older messages: from the store first, then from the server before the oldest held id.
    pub async fn load_older(
        &self,
        room_id: String,
        limit: u32,
    ) -> Result<LoadOlderResult, ChatError> {
        guard_async(self.inner.load_older(room_id, limit))
            .await
            .map(Into::into)
    }

    /// One sync from the stored token plus an outbox flush.
    pub async fn sync_once(&self) -> Result<SyncReport, ChatError> {
        guard_async(self.inner.sync_once()).await.map(Into::into)
    }

    /// Queues a text message durably and returns its pending echo, online or not.
    pub async fn send_text(&self, room_id: String, text: String) -> Result<ChatMessage, ChatError> {
        guard_async(self.inner.send_text(room_id, text))
            .await
            .map(Into::into)
    }

    /// The outbox: messages not yet accepted by the server, pending or failed.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, ChatError> {
        guard(|| self.inner.outbox()).map(convert_all)
    }

    /// Puts a failed message back in the queue.
    pub async fn retry(&self, local_id: String) -> Result<(), ChatError> {
        guard_async(self.inner.retry(local_id)).await
    }

    /// Removes a pending or failed message from the outbox.
    pub async fn discard(&self, local_id: String) -> Result<(), ChatError> {
        guard_async(self.inner.discard(local_id)).await
    }

    /// Subscribes `listener`: it first gets the current state (network, sync, outbox), then
    /// every change, until the returned handle is closed or dropped.
    pub fn subscribe(
        &self,
        listener: Arc<dyn ClientListener>,
    ) -> Result<Arc<Subscription>, ChatError> {
        let adapter: Arc<dyn chatsync_core::ClientListener> =
            Arc::new(ClientListenerAdapter(listener));
        guard_infallible(|| self.inner.subscribe(adapter)).map(|s| Arc::new(Subscription::new(s)))
    }

    /// Starts the scheduler (probe, live long-poll, background timer). Idempotent.
    pub fn start(&self) -> Result<(), ChatError> {
        guard_infallible(|| self.inner.start())
    }

    /// The platform's reachability hint (Android ConnectivityManager, iOS NWPathMonitor).
    pub fn set_network_reachable(&self, reachable: bool) -> Result<(), ChatError> {
        guard_infallible(|| self.inner.set_network_reachable(reachable))
    }

    /// The app's lifecycle state; the scheduler adapts at once.
    pub fn set_app_state(&self, state: AppState) -> Result<(), ChatError> {
        guard_infallible(|| self.inner.set_app_state(state.into()))
    }

    /// The network status as the core sees it now.
    pub fn network_status(&self) -> Result<NetworkStatus, ChatError> {
        guard_infallible(|| self.inner.network_status()).map(Into::into)
    }

    /// Stops everything; after it returns no task runs and no request is made.
    pub fn shutdown(&self) -> Result<(), ChatError> {
        guard_infallible(|| self.inner.shutdown())
    }

    /// Time-boxed sync + flush for OS background tasks (Android WorkManager, iOS background
    /// fetch); always returns within `budget_ms`, with a report saying how far it got.
    pub async fn background_sync(&self, budget_ms: u64) -> Result<BackgroundSyncReport, ChatError> {
        guard_async(async { Ok(self.inner.background_sync(budget_ms).await) })
            .await
            .map(Into::into)
    }
}

/// Rebuilds the store in `config.data_dir` when it is damaged (it does not open, or a value in
/// it does not read back): the damaged directory is kept aside untouched, a fresh store takes its
/// place with the login and every queued message that can still be read, under its original txn
/// id (so a message that had reached the server is not sent twice), and the report says what
/// could not be read. A healthy store is left as it is (`recovered` false). Call it with no
/// `ChatClient` open on the store (`Busy` otherwise), off the main thread.
#[uniffi::export]
pub fn recover_store(config: ClientConfig) -> Result<RecoveryReport, ChatError> {
    guard(|| chatsync_core::ChatClient::recover(config.into())).map(RecoveryReport::from)
}
