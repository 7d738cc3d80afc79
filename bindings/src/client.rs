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
use crate::views::{RoomList, Timeline};

/// One user's chat engine on a device. Share one instance per user; all methods are safe to
/// call from any thread. The app renders from the store, never from the network: a room from a
/// `Timeline` (`timeline(room_id)`), the rooms from the `RoomList`; the network only fills the
/// store. Async calls end (with their request) when the caller's coroutine or Task is
/// cancelled.
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

    /// Gets or creates the direct room with `user_id` (network on first use, stored after).
    pub async fn open_direct_room(&self, user_id: String) -> Result<RoomSummary, ChatError> {
        guard_async(self.inner.open_direct_room(user_id))
            .await
            .map(Into::into)
    }

    /// Rooms held on the device, most recently active first.
    pub fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        guard(|| self.inner.rooms()).map(convert_all)
    }

    /// The room list: the rooms with their last message, most recently active first, and the
    /// diffs of every change.
    pub fn room_list(&self) -> Result<Arc<RoomList>, ChatError> {
        guard(|| self.inner.room_list()).map(|r| Arc::new(RoomList::new(r)))
    }

    /// The timeline of `room_id`: what one open screen of the room shows (the newest messages
    /// held at first, offline too), the diffs of every change, and pagination backwards. The
    /// way to render a room.
    pub fn timeline(&self, room_id: String) -> Result<Arc<Timeline>, ChatError> {
        guard(|| self.inner.timeline(room_id)).map(|t| Arc::new(Timeline::new(t)))
    }

    /// Up to `limit` messages of a room from the store, below `before` (a server id; the newest
    /// when `None`), newest first, with the queued echoes that belong in that span. A pure
    /// read: reading again returns the same. (A screen renders from `timeline`.)
    pub fn messages(
        &self,
        room_id: String,
        limit: u32,
        before: Option<u64>,
    ) -> Result<Vec<ChatMessage>, ChatError> {
        guard(|| self.inner.messages(room_id, limit, before)).map(convert_all)
    }

    /// Up to `limit` messages older than `before` (a server id; the newest when `None`), newest
    /// first: from the store while it holds them, else one page from the server (stored). The
    /// anchor is explicit, so the same `before` gives the same page; a screen uses
    /// `Timeline.paginate_backwards`, which keeps its own anchor.
    pub async fn load_older(
        &self,
        room_id: String,
        before: Option<u64>,
        limit: u32,
    ) -> Result<LoadOlderResult, ChatError> {
        guard_async(self.inner.load_older(room_id, before, limit))
            .await
            .map(Into::into)
    }

    /// One sync from the stored token plus an outbox flush. Offline is a report
    /// (`online: false`), not an error; a server that answers with an error or "busy" is
    /// `Offline` with its text (and `retry_after_secs`).
    pub async fn sync_once(&self) -> Result<SyncReport, ChatError> {
        guard_async(self.inner.sync_once()).await.map(Into::into)
    }

    /// Queues a text message durably and returns its pending echo, online or not.
    pub async fn send_text(&self, room_id: String, text: String) -> Result<ChatMessage, ChatError> {
        guard_async(self.inner.send_text(room_id, text))
            .await
            .map(Into::into)
    }

    /// The message `message_id` names (its `id`), in whichever room holds it; `None` when it is
    /// not on the device.
    pub fn message(&self, message_id: String) -> Result<Option<ChatMessage>, ChatError> {
        guard(|| self.inner.message(message_id)).map(|m| m.map(Into::into))
    }

    /// New text for a message of this user (`message_id`: the message's `id`). Queued like a
    /// send (offline too, across kills, exactly once; the timeline shows it at once); a message
    /// still queued is rewritten in place instead. `InvalidInput` for someone else's message,
    /// a deleted one, or an empty text.
    pub async fn edit_message(
        &self,
        room_id: String,
        message_id: String,
        text: String,
    ) -> Result<(), ChatError> {
        guard_async(self.inner.edit_message(room_id, message_id, text)).await
    }

    /// Deletes a message of this user: it stays in place as a tombstone. A message still queued
    /// is dropped instead, never sent.
    pub async fn delete_message(&self, room_id: String, message_id: String) -> Result<(), ChatError> {
        guard_async(self.inner.delete_message(room_id, message_id)).await
    }

    /// Toggles the user's reaction `key` (an emoji, at most 32 bytes) on a message; returns
    /// whether the user now reacts with it. Toggling back before it was sent sends nothing.
    pub async fn toggle_reaction(
        &self,
        room_id: String,
        message_id: String,
        key: String,
    ) -> Result<bool, ChatError> {
        guard_async(self.inner.toggle_reaction(room_id, message_id, key)).await
    }

    /// Marks the room read up to its newest message (a queued receipt that only moves forward):
    /// its unread count drops at once, and on the user's other devices after their next sync.
    pub async fn mark_read(&self, room_id: String) -> Result<(), ChatError> {
        guard_async(self.inner.mark_read(room_id)).await
    }

    /// Tells the room the user is (or stopped) typing. Ephemeral: sent now or not at all
    /// (`Offline` when the server cannot be reached), never queued; it lapses after 6 s unless
    /// renewed.
    pub async fn set_typing(&self, room_id: String, typing: bool) -> Result<(), ChatError> {
        guard_async(self.inner.set_typing(room_id, typing)).await
    }

    /// Who is typing in a room now (the user excluded), as the last sync said.
    pub fn typing(&self, room_id: String) -> Result<Vec<String>, ChatError> {
        guard(|| self.inner.typing(room_id))
    }

    /// The user's unread messages over all rooms (the app badge).
    pub fn unread_total(&self) -> Result<u32, ChatError> {
        guard(|| self.inner.unread_total())
    }

    /// The outbox: changes not yet accepted by the server (sends, edits, deletions, reactions,
    /// receipts), pending or failed, in send order.
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
    /// every change, until the returned handle is cancelled or dropped. After `shutdown()` the
    /// last event is `SyncStateChanged(Stopped)`.
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

    /// The sync state now (`Stopped` after `shutdown()`).
    pub fn sync_state(&self) -> Result<SyncState, ChatError> {
        guard_infallible(|| self.inner.sync_state()).map(Into::into)
    }

    /// Ends the client: calls in flight fail with `ShutDown` at once (their requests dropped),
    /// listeners get `Stopped` and nothing after it, later calls fail with `ShutDown`, and the
    /// store is closed, so another client (a background task) can open it at once. Idempotent.
    pub fn shutdown(&self) -> Result<(), ChatError> {
        guard_infallible(|| self.inner.shutdown())
    }

    /// Time-boxed sync + flush for OS background tasks (Android JobScheduler, iOS
    /// BGAppRefreshTask); always returns within `budget_ms`. The report's `outcome` says how it
    /// ended and `retry_later` whether the OS task should run again soon.
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
