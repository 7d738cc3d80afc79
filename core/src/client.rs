//! [`ChatClient`]: the facade an app holds. It builds the services and hands each what it
//! needs; no service holds a reference back to it. Each method is a thin call into one service,
//! run on the client's own tokio runtime (two worker threads at most: it is a phone), raced
//! against the shutdown, with a panic turned into `Internal` and the internal error mapped to
//! [`ChatError`] once.
//!
//! The services:
//! - `SyncService` (sync.rs): the token, applying sync answers, gaps, history pages;
//! - `SendQueue` (send_queue.rs): the outbox, its one backoff, its flushes;
//! - `Lifecycle` (lifecycle.rs): network status, app state, the scheduler, the sync status;
//! - views: [`Timeline`] per open room, [`RoomList`], built on `Reads` (reads.rs).

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::api::Api;
use crate::changes::Changes;
use crate::config::ClientConfig;
use crate::error::{ChatError, Error, Result};
use crate::events::{ClientListener, EventHub};
use crate::fanout::Subscription;
use crate::lifecycle::{Lifecycle, RequestReporter};
use crate::model::*;
use crate::network::NetworkMonitor;
use crate::reads::Reads;
use crate::room_list::RoomList;
use crate::send_queue::SendQueue;
use crate::shutdown::Shutdown;
use crate::store::meta::{StoredSession, StoredUser};
use crate::store::open::StoreLock;
use crate::store::{SharedStore, Store, StoreError};
use crate::sync::SyncService;
use crate::timeline::Timeline;

/// Worker threads of the client's own runtime.
const RUNTIME_WORKERS: usize = 2;
/// How long `new` waits for a store held by another client before reporting `Busy` (a
/// background task starting while the app closes, or the reverse).
const BUSY_WAIT: Duration = Duration::from_millis(1_500);
/// How long `shutdown()` and dropping the client wait for the store to close.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// One user's chat engine on a device. Cheap to share (`Arc`); all methods take `&self`.
/// Async methods run on the client's own tokio runtime, so any executor may await them.
pub struct ChatClient {
    config: ClientConfig,
    reads: Reads,
    sync: Arc<SyncService>,
    queue: Arc<SendQueue>,
    lifecycle: Arc<Lifecycle>,
    events: EventHub,
    changes: Changes,
    store: SharedStore,
    /// Alive while any clone of the store is: `shutdown()` waits for it to go.
    store_alive: Weak<StoreLock>,
    shutdown: Shutdown,
    /// The runtime the client owns (empty when built on the caller's with `with_runtime`).
    /// Declared last: dropped after everything that runs on it.
    handle: Handle,
    _runtime: OwnedRuntime,
}

impl ChatClient {
    /// Opens (or creates) the store in `config.data_dir`. No network I/O. Fails with
    /// `Storage` for a damaged or newer-format store and `Busy` when another process holds it.
    pub fn new(config: ClientConfig) -> std::result::Result<Arc<ChatClient>, ChatError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKERS)
            .max_blocking_threads(4)
            .thread_name("chatsync")
            .enable_all()
            .build()
            .map_err(|e| ChatError::Internal(format!("cannot start the client's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Self::build(config, OwnedRuntime(Some(runtime)), handle).map_err(ChatError::from)
    }

    /// Like [`ChatClient::new`], but runs on the caller's runtime (tests on a paused clock,
    /// apps that already run tokio).
    pub fn with_runtime(
        config: ClientConfig,
        handle: Handle,
    ) -> std::result::Result<Arc<ChatClient>, ChatError> {
        Self::build(config, OwnedRuntime(None), handle).map_err(ChatError::from)
    }

    fn build(config: ClientConfig, runtime: OwnedRuntime, handle: Handle) -> Result<Arc<Self>> {
        chatsync_protocol::limits::check_id("user id", &config.user_id)?;
        if config.page_size == 0 || config.max_messages_per_room == 0 {
            return Err(Error::InvalidInput(
                "page_size and max_messages_per_room must be at least 1".into(),
            ));
        }
        let shutdown = Shutdown::new();
        let events = EventHub::default();
        let changes = Changes::new();
        let emit = {
            let events = events.clone();
            Arc::new(move |event| events.emit(event))
        };
        let monitor = Arc::new(NetworkMonitor::new(emit));
        // Before touching the disk: a bad URL must not create a store.
        let api = {
            let _in_runtime = handle.enter(); // reqwest's client wants a runtime for its timers
            let reporter = Arc::new(RequestReporter {
                monitor: monitor.clone(),
                events: events.clone(),
            });
            Arc::new(Api::new(&config, reporter, shutdown.clone())?)
        };
        let opened = open_waiting(&config)?;
        let store_alive = opened.lock_handle();
        let store = SharedStore::new(opened);
        let reads = Reads::new(store.clone(), config.user_id.clone());
        let sync = Arc::new(SyncService::new(
            &config,
            store.clone(),
            api.clone(),
            events.clone(),
            changes.clone(),
        ));
        let queue = Arc::new(SendQueue::new(
            config.user_id.clone(),
            store.clone(),
            api.clone(),
            events.clone(),
            changes.clone(),
        ));
        let lifecycle = Arc::new(Lifecycle::new(
            &config,
            monitor,
            events.clone(),
            sync.clone(),
            queue.clone(),
            handle.clone(),
            api.http(),
            shutdown.clone(),
        ));
        // Listeners subscribing before the first change still learn the outbox's state.
        if let Some(s) = store.get() {
            queue.emit_counts(&s);
        }
        Ok(Arc::new(ChatClient {
            config,
            reads,
            sync,
            queue,
            lifecycle,
            events,
            changes,
            store,
            store_alive,
            shutdown,
            handle,
            _runtime: runtime,
        }))
    }

    /// Runs `work` on the client's runtime, raced against the shutdown, and awaits it from any
    /// executor. A panic inside is `Internal`; the error is mapped once.
    async fn run<T, Fut>(&self, work: Fut) -> std::result::Result<T, ChatError>
    where
        T: Send + 'static,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        self.shutdown.check()?;
        let shutdown = self.shutdown.clone();
        // Aborted when the caller stops waiting (a cancelled Kotlin coroutine or Swift Task
        // drops this future): the work ends with it, its request dropped.
        let task = AbortOnDrop(self.handle.spawn(async move { shutdown.race(work).await }));
        match task.await {
            Ok(result) => result.map_err(ChatError::from),
            Err(e) if e.is_panic() => Err(Error::from_panic(e.into_panic()).into()),
            Err(_) => Err(ChatError::ShutDown),
        }
    }

    /// A store read on the caller's thread: refused after shutdown, a panic is `Internal`.
    fn read<T>(&self, read: impl FnOnce(&Reads) -> Result<T>) -> std::result::Result<T, ChatError> {
        self.shutdown.check()?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(&self.reads)))
            .unwrap_or_else(|p| Err(Error::from_panic(p)))
            .map_err(ChatError::from)
    }

    /// Rebuilds the store in `config.data_dir` when it is damaged (it does not open, or a
    /// value in it does not read back): the damaged directory is kept aside untouched
    /// (`<dir>.damaged-<ms>`), a fresh store takes its place with the login and every queued
    /// message that can still be read, under its original txn id (a message that had reached
    /// the server is not sent twice), and the report says what could not be read. A healthy
    /// store is left as it is (`recovered: false`). Sync brings back what the server holds.
    ///
    /// Call it with no client open on the store (`Busy` otherwise), off the UI thread (it
    /// copies and reads the whole store). docs/reliability.md has the procedure.
    pub fn recover(config: ClientConfig) -> std::result::Result<crate::RecoveryReport, ChatError> {
        crate::recovery::recover(&config)
    }

    // --- session and rooms ---

    /// Logs in as the configured user with a profile; stored at once, uploaded when online.
    pub async fn login(
        &self,
        name: String,
        avatar_url: Option<String>,
    ) -> std::result::Result<Session, ChatError> {
        if name.trim().is_empty() {
            return Err(ChatError::InvalidInput("name is empty".into()));
        }
        chatsync_protocol::limits::check_name("name", &name).map_err(Error::from)?;
        let store = self.store.clone();
        let sync = self.sync.clone();
        let user_id = self.config.user_id.clone();
        self.run(async move {
            let store = store.get().ok_or(Error::ShutDown)?;
            let previous = store.meta.session()?;
            let session = StoredSession {
                user: StoredUser {
                    id: user_id,
                    name,
                    avatar: avatar_url,
                },
                friend_id: previous.as_ref().and_then(|s| s.friend_id.clone()),
                room_id: previous.as_ref().and_then(|s| s.room_id.clone()),
            };
            store.put_session(&session)?;
            store.meta.set_profile_dirty(true)?;
            store.flush().await?;
            sync.upload_profile_if_owed().await;
            Ok(())
        })
        .await?;
        self.changes.send(crate::changes::Change::Profiles);
        self.session()?
            .ok_or_else(|| ChatError::Internal("the session vanished from the store".into()))
    }

    /// The stored session, readable offline.
    pub fn session(&self) -> std::result::Result<Option<Session>, ChatError> {
        self.read(|r| r.session())
    }

    /// Gets or creates the direct room with `user_id` (network on first use, stored after).
    pub async fn open_direct_room(
        &self,
        user_id: String,
    ) -> std::result::Result<RoomSummary, ChatError> {
        let sync = self.sync.clone();
        let room_id = self
            .run(async move { sync.direct_room(&user_id).await })
            .await?;
        self.rooms()?
            .into_iter()
            .find(|r| r.id == room_id)
            .ok_or_else(|| ChatError::Internal(format!("room {room_id} vanished from the store")))
    }

    /// Rooms held on the device, most recently active first.
    pub fn rooms(&self) -> std::result::Result<Vec<RoomSummary>, ChatError> {
        self.read(|r| r.rooms())
    }

    /// The room list: the rooms with their last message, most recently active first, and the
    /// diffs of every change.
    pub fn room_list(&self) -> std::result::Result<Arc<RoomList>, ChatError> {
        self.shutdown.check()?;
        RoomList::open(
            self.reads.clone(),
            &self.changes,
            self.shutdown.clone(),
            &self.handle,
        )
        .map(Arc::new)
        .map_err(ChatError::from)
    }

    /// The timeline of `room_id`: what one open screen of the room shows (the newest
    /// `page_size` messages held at first), with the diffs of every change and pagination
    /// backwards from what it shows. The way to render a room.
    pub fn timeline(&self, room_id: String) -> std::result::Result<Arc<Timeline>, ChatError> {
        Timeline::open(
            &room_id,
            self.reads.clone(),
            self.sync.clone(),
            &self.changes,
            self.shutdown.clone(),
            self.config.page_size,
            &self.handle,
        )
        .map(Arc::new)
        .map_err(ChatError::from)
    }

    /// The message `message_id` names (its `id`: a server id, or the local id of a message sent
    /// from this device), in whichever room holds it; `None` when it is not on the device.
    pub fn message(&self, message_id: String) -> std::result::Result<Option<ChatMessage>, ChatError> {
        self.read(|r| r.message(&message_id))
    }

    /// Up to `limit` messages of a room from the store, below `before` (a server id; the
    /// newest when `None`), newest first, never across a gap, with the queued echoes that
    /// belong in that span on top of `limit`. A pure read: it moves nothing, so reading again
    /// returns the same. (A screen renders from [`ChatClient::timeline`].)
    pub fn messages(
        &self,
        room_id: String,
        limit: u32,
        before: Option<u64>,
    ) -> std::result::Result<Vec<ChatMessage>, ChatError> {
        self.read(|r| r.messages(&room_id, limit, before))
    }

    /// Up to `limit` messages older than `before` (a server id; the newest when `None`), newest
    /// first: from the store while it holds them contiguously, else one page from the server
    /// (stored). The anchor is explicit, so calling it again with the same `before` returns the
    /// same page; a screen uses [`Timeline::paginate_backwards`], which keeps its own anchor.
    pub async fn load_older(
        &self,
        room_id: String,
        before: Option<u64>,
        limit: u32,
    ) -> std::result::Result<LoadOlderResult, ChatError> {
        let reads = self.reads.clone();
        let sync = self.sync.clone();
        self.run(async move {
            let page = |reads: &Reads| -> Result<LoadOlderResult> {
                let messages = reads.messages(&room_id, limit, before)?;
                let oldest = messages.iter().filter_map(|m| m.server_id).min();
                let has_more = match oldest {
                    Some(oldest) => reads.has_older(&room_id, oldest)?,
                    None => false,
                };
                Ok(LoadOlderResult { messages, has_more })
            };
            let held = page(&reads)?;
            if held.messages.iter().any(|m| m.server_id.is_some()) {
                return Ok(held);
            }
            let more_on_server = sync.page_older(&room_id, before, limit).await?;
            let fetched = page(&reads)?;
            Ok(LoadOlderResult {
                has_more: fetched.has_more || (fetched.messages.is_empty() && more_on_server),
                messages: fetched.messages,
            })
        })
        .await
    }

    // --- sync ---

    /// One sync from the stored token plus an outbox flush. Offline is not an error: the
    /// report says `online: false` (and no request is made while the platform says there is no
    /// network). A server that answers with an error or "busy" is `Unavailable`.
    pub async fn sync_once(&self) -> std::result::Result<SyncReport, ChatError> {
        let lifecycle = self.lifecycle.clone();
        self.run(async move { lifecycle.sync_once().await }).await
    }

    // --- the send queue ---

    /// Queues a text message durably and returns its pending echo, online or not.
    pub async fn send_text(
        &self,
        room_id: String,
        text: String,
    ) -> std::result::Result<ChatMessage, ChatError> {
        let queue = self.queue.clone();
        let record = self
            .run(async move { queue.send_text(&room_id, &text).await })
            .await?;
        self.read(|r| {
            let store = r.store()?;
            let ctx = r.room_context(&store, &record.room_id)?;
            r.echo(&store, &ctx, &record)
        })
    }

    /// New content for a message of this user (`message_id`: the message's `id`). Queued like a
    /// send (offline too, across kills, exactly once); a message still queued is rewritten in
    /// place instead, so it goes out once, with the new text. The timeline shows the edit at
    /// once.
    pub async fn edit_message(
        &self,
        room_id: String,
        message_id: String,
        text: String,
    ) -> std::result::Result<(), ChatError> {
        let queue = self.queue.clone();
        self.run(async move { queue.edit(&room_id, &message_id, &text).await })
            .await
    }

    /// Deletes a message of this user (it stays in place as a tombstone). A message still
    /// queued is dropped instead, never sent.
    pub async fn delete_message(
        &self,
        room_id: String,
        message_id: String,
    ) -> std::result::Result<(), ChatError> {
        let queue = self.queue.clone();
        self.run(async move { queue.delete(&room_id, &message_id).await })
            .await
    }

    /// Toggles the user's reaction `key` (an emoji, at most 32 bytes) on a message: added when
    /// they have not reacted with it, removed when they have. Toggling back before it was sent
    /// sends nothing. Returns whether the user now reacts with `key`.
    pub async fn toggle_reaction(
        &self,
        room_id: String,
        message_id: String,
        key: String,
    ) -> std::result::Result<bool, ChatError> {
        let queue = self.queue.clone();
        self.run(async move { queue.toggle_reaction(&room_id, &message_id, &key).await })
            .await
    }

    /// Marks the room read up to its newest message (a receipt, queued; only moves forward).
    /// Every device of the user then shows it read, and the unread counts drop.
    pub async fn mark_read(&self, room_id: String) -> std::result::Result<(), ChatError> {
        let queue = self.queue.clone();
        self.run(async move { queue.mark_read(&room_id).await })
            .await
    }

    /// Tells the room the user is (or stopped) typing. Ephemeral: sent now or not at all
    /// (offline: `Offline`), never queued; the server lets it lapse after 6 s unless renewed
    /// (at most once a second).
    pub async fn set_typing(
        &self,
        room_id: String,
        typing: bool,
    ) -> std::result::Result<(), ChatError> {
        let sync = self.sync.clone();
        self.run(async move { sync.set_typing(&room_id, typing).await })
            .await
    }

    /// Who types in a room now (the user excluded), as the last sync said.
    pub fn typing(&self, room_id: String) -> std::result::Result<Vec<String>, ChatError> {
        self.shutdown.check()?;
        Ok(self.sync.typing(&room_id))
    }

    /// The user's unread messages over all rooms (the app badge), as the rooms show them.
    pub fn unread_total(&self) -> std::result::Result<u32, ChatError> {
        self.read(|r| r.unread_total())
    }

    /// Every queued message (pending and failed), in send order.
    pub fn outbox(&self) -> std::result::Result<Vec<OutboxEntry>, ChatError> {
        self.read(|r| r.outbox())
    }

    /// Makes a failed message pending again; it (and the messages it held back) go out with the
    /// next flush.
    pub async fn retry(&self, local_id: String) -> std::result::Result<(), ChatError> {
        let queue = self.queue.clone();
        self.run(async move { queue.retry(&local_id).await }).await
    }

    /// Drops a queued message (failed, or still pending: a pending one may already have reached
    /// the server, and then arrives with the next sync).
    pub async fn discard(&self, local_id: String) -> std::result::Result<(), ChatError> {
        let queue = self.queue.clone();
        self.run(async move { queue.discard(&local_id).await })
            .await
    }

    /// For the scheduler tests: one flush of the outbox, in order per room.
    #[cfg(test)]
    pub(crate) async fn flush_outbox(
        &self,
    ) -> std::result::Result<crate::send_queue::FlushReport, ChatError> {
        let queue = self.queue.clone();
        self.run(async move { queue.flush().await }).await
    }

    /// For the scheduler tests: `None` when nothing is sendable, else when the next attempt is
    /// due.
    #[cfg(test)]
    pub(crate) fn outbox_next_due(&self) -> Option<tokio::time::Instant> {
        self.queue.next_due().ok().flatten()
    }

    // --- events and lifecycle ---

    /// The listener first gets the current state (network, sync, outbox), then every change.
    /// Each listener runs on its own thread; a slow or panicking one never blocks the engine.
    pub fn subscribe(&self, listener: Arc<dyn ClientListener>) -> Arc<Subscription> {
        Arc::new(self.events.subscribe(listener))
    }

    /// Starts the scheduler (probe, live long-poll, background timer). Idempotent; does nothing
    /// after `shutdown()`.
    pub fn start(&self) {
        self.lifecycle.start();
    }

    /// The platform's reachability hint (Android ConnectivityManager, iOS NWPathMonitor).
    /// `false` marks Offline at once (and `sync_once` makes no request while it holds); `true`
    /// makes the probe check the server at once.
    pub fn set_network_reachable(&self, reachable: bool) {
        self.lifecycle.set_network_reachable(reachable);
    }

    /// The app's lifecycle state; the scheduler adapts at once (going to the background ends
    /// the live long-poll).
    pub fn set_app_state(&self, state: AppState) {
        self.lifecycle.set_app_state(state);
    }

    /// Online, Offline, or Unknown before the first answer.
    pub fn network_status(&self) -> NetworkStatus {
        self.lifecycle.network_status()
    }

    /// The sync state now (`Stopped` after `shutdown()`).
    pub fn sync_state(&self) -> SyncState {
        self.events.sync_state()
    }

    /// Time-boxed sync + flush for OS background tasks; always returns within `budget_ms`.
    /// The report says how it ended (a typed outcome, and whether to run again soon), lists
    /// new messages from other users (for local notifications), what was sent, what is still
    /// pending or failed. Work cut off by the budget is cancelled (a resend later reuses the
    /// same txn id).
    pub async fn background_sync(&self, budget_ms: u64) -> BackgroundSyncReport {
        let lifecycle = self.lifecycle.clone();
        let task = self
            .handle
            .spawn(async move { lifecycle.background_sync(budget_ms).await });
        match AbortOnDrop(task).await {
            Ok(report) => report,
            Err(e) => BackgroundSyncReport {
                outcome: BackgroundOutcome::Failed,
                error: Some(ChatError::Internal(format!("background sync: {e}")).to_string()),
                ..Default::default()
            },
        }
    }

    /// Ends the client: calls in flight return `ShutDown` at once (their requests dropped),
    /// listeners get `Stopped` and nothing after it, later calls are refused with `ShutDown`,
    /// and the store is closed, so another client (a background task) can open it at once.
    /// Idempotent.
    pub fn shutdown(&self) {
        if self.shutdown.is_triggered() {
            return;
        }
        self.shutdown.trigger();
        self.lifecycle.stop();
        if let Some(store) = self.store.close() {
            let dir = store.dir().to_owned();
            drop(store);
            // Outside an async context: wait (bounded) until the calls that were in flight have
            // let go of the store and sled has closed it. Inside one, blocking would stall the
            // very tasks that must end; the store then closes as soon as they do.
            if Handle::try_current().is_err() {
                wait_closed(&self.store_alive, &dir);
            }
        }
    }
}

impl Drop for ChatClient {
    fn drop(&mut self) {
        self.shutdown.trigger();
        self.lifecycle.stop();
        self.store.close();
    }
}

/// A spawned task aborted when its handle is dropped before it finished.
pub(crate) struct AbortOnDrop<T>(pub(crate) tokio::task::JoinHandle<T>);

impl<T> Future for AbortOnDrop<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Waits until every clone of the store is gone and sled has let go of its files, at most
/// [`SHUTDOWN_WAIT`].
fn wait_closed(alive: &Weak<StoreLock>, dir: &std::path::Path) {
    let deadline = std::time::Instant::now() + SHUTDOWN_WAIT;
    while std::time::Instant::now() < deadline {
        if alive.upgrade().is_none() && crate::store::open::sled_released(dir) {
            return;
        }
        // Polling a condition other threads change (sled's I/O threads finishing), bounded.
        std::thread::sleep(Duration::from_millis(2));
    }
    tracing::warn!(
        "the store at {} did not close within {SHUTDOWN_WAIT:?}",
        dir.display()
    );
}

/// The client's own runtime, shut down without ever blocking inside an async context (where a
/// plain drop of a tokio runtime panics): the client may be dropped anywhere, even on a failed
/// `new` called from async code.
struct OwnedRuntime(Option<Runtime>);

impl Drop for OwnedRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            if Handle::try_current().is_ok() {
                // Inside an async context a blocking shutdown would panic.
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(SHUTDOWN_WAIT);
            }
        }
    }
}

/// Opens the store, waiting up to `BUSY_WAIT` while another client holds it.
fn open_waiting(config: &ClientConfig) -> Result<Store> {
    let deadline = std::time::Instant::now() + BUSY_WAIT;
    loop {
        match Store::open(&config.data_dir, config.cache_capacity_bytes) {
            Err(StoreError::Busy(m)) if std::time::Instant::now() < deadline => {
                tracing::debug!("store busy ({m}); waiting");
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other.map_err(Error::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::config::TokenSource;
    use crate::send_queue::{BACKOFF_BASE, BACKOFF_CAP};

    /// A loopback port nothing listens on.
    fn dead_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test(start_paused = true)]
    async fn outbox_retries_back_off_exponentially_on_the_paused_clock() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("http://127.0.0.1:{}", dead_port());
        let config = ClientConfig::new(url, dir.path(), "alice", TokenSource::Fixed("t".into()));
        let client = ChatClient::with_runtime(config, Handle::current()).unwrap();
        assert_eq!(client.outbox_next_due(), None, "empty outbox: no work");
        client.send_text("r1".into(), "hello".into()).await.unwrap();
        assert!(
            client.outbox_next_due().unwrap() <= Instant::now(),
            "queued: due at once"
        );

        let mut ceiling = BACKOFF_BASE;
        for attempt in 1..=9u32 {
            let report = client.flush_outbox().await.unwrap();
            assert!(
                matches!(report.stopped_by, Some(ref e) if e.is_transient()),
                "{report:?}"
            );
            assert_eq!((report.sent, report.pending), (0, 1));
            let now = Instant::now();
            let due = client.outbox_next_due().unwrap();
            let delay = due - now;
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "attempt {attempt}: {delay:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
            // Not due a millisecond early, due on time.
            tokio::time::advance(delay - Duration::from_millis(1)).await;
            assert!(client.outbox_next_due().unwrap() > Instant::now());
            tokio::time::advance(Duration::from_millis(1)).await;
            assert!(client.outbox_next_due().unwrap() <= Instant::now());
            assert_eq!(client.outbox().unwrap()[0].attempts, attempt);
            ceiling = (ceiling * 2).min(BACKOFF_CAP);
        }
        assert_eq!(ceiling, BACKOFF_CAP, "the cap was reached");
    }
}

#[cfg(test)]
mod panic_tests {
    use super::*;
    use crate::config::TokenSource;

    /// Issue 13: a panic inside an async call became `Storage`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_inside_an_async_call_is_internal() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClientConfig::new(
            "http://127.0.0.1:9",
            dir.path(),
            "alice",
            TokenSource::Fixed("t".into()),
        );
        let client = ChatClient::new(config).unwrap();
        let result: std::result::Result<(), ChatError> = client
            .run(async {
                panic!("boom inside");
            })
            .await;
        match result {
            Err(ChatError::Internal(m)) => assert!(m.contains("boom inside"), "{m}"),
            other => panic!("expected Internal, got {other:?}"),
        }
        // The client still works.
        assert!(client.outbox().unwrap().is_empty());
    }
}

#[cfg(test)]
mod drop_tests {
    use super::*;
    use crate::config::TokenSource;

    #[test]
    fn the_last_handle_may_be_dropped_on_the_clients_own_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let config = ClientConfig::new(
            "http://127.0.0.1:9",
            dir.path(),
            "alice",
            TokenSource::Fixed("t".into()),
        );
        let client = ChatClient::new(config).unwrap();
        let handle = client.handle.clone();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        // A task of the client's runtime ends up holding the last reference.
        handle.spawn(async move {
            tokio::task::yield_now().await;
            drop(client);
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("dropped without panic or hang");
        // The store was released: it opens again.
        let config = ClientConfig::new(
            "http://127.0.0.1:9",
            dir.path(),
            "alice",
            TokenSource::Fixed("t".into()),
        );
        ChatClient::new(config).unwrap();
    }
}
