//! [`ChatClient`]: the facade an app holds. It owns the tokio runtime (two worker threads at
//! most: it is a phone), the engine (store, API client, events) and the lifecycle half
//! (network monitor, scheduler; see `lifecycle`). Every async method runs its work on the
//! client's runtime (spawned, then awaited through its `JoinHandle`), so any executor may await
//! it: a foreign one through the bindings, a test's paused-clock runtime, or plain `block_on`.
//!
//! Crate-internal entry points for the lifecycle half (issue 5), kept stable:
//! - `ChatClient::sync_with_timeout`: one `/v1/sync` holding up to `timeout_ms`, applied
//!   (the scheduler calls `Engine::sync_request` directly, so dropping it cancels the request);
//! - `ChatClient::flush_outbox`: one flush of the outbox (sent, pending, failed);
//! - `ChatClient::outbox_next_due`: when the outbox has due work;
//! - `ChatClient::emit`: push an event to the listeners (never blocks);
//! - requests report to `Lifecycle::{note_request_result, note_server_backoff, is_shut_down}`
//!   through `LifecycleHooks` below, and queueing calls `Lifecycle::note_outbox_queued`.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::runtime::{Handle, Runtime};

use crate::api::{Api, RequestHooks};
use crate::config::ClientConfig;
use crate::engine::{check_room_id, Engine};
use crate::error::ChatError;
use crate::events::{ClientEvent, ClientListener, Subscription};
use crate::lifecycle::Lifecycle;
use crate::model::*;
use crate::outbox::FlushReport;
use crate::store::{Store, StoreError};

/// Worker threads of the client's own runtime.
const RUNTIME_WORKERS: usize = 2;
/// How long `new` waits for a store held by another client before reporting `Busy` (a
/// background task starting while the app closes, or the reverse).
const BUSY_WAIT: Duration = Duration::from_millis(1_500);
/// How long dropping the client waits for its tasks outside an async context.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// One user's chat engine on a device. Cheap to share (`Arc`); all methods take `&self`.
/// Async methods run on the client's own tokio runtime, so any executor may await them.
pub struct ChatClient {
    /// Network monitor and scheduler state (see `lifecycle`). Built in `new` with
    /// `Lifecycle::new(&config, runtime handle, the engine's HTTP client, an event sink)`.
    pub(crate) lifecycle: Lifecycle,
    /// Store, API client, events, outbox state: shared with the tasks spawned for each call.
    pub(crate) engine: Arc<Engine>,
    /// The runtime the client owns (empty when built on the caller's with `with_runtime`).
    /// Dropped after the engine, and never blocking inside async code (see [`OwnedRuntime`]).
    _runtime: OwnedRuntime,
    /// Where work is spawned.
    handle: Handle,
}

/// Forwards the api layer's notifications to the lifecycle half. Weak, so the hooks do not
/// keep a dropped client alive.
struct LifecycleHooks(Weak<ChatClient>);

impl RequestHooks for LifecycleHooks {
    fn may_send(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|c| !c.lifecycle.is_shut_down())
    }
    fn request_result(&self, answered: bool) {
        if let Some(c) = self.0.upgrade() {
            c.lifecycle.note_request_result(answered);
        }
    }
    fn server_backoff(&self, status: u16, retry_after: Option<&str>) {
        if let Some(c) = self.0.upgrade() {
            c.lifecycle.note_server_backoff(status, retry_after);
        }
    }
}

impl ChatClient {
    /// Opens (or creates) the store in `config.data_dir`. No network I/O. Fails with
    /// `Storage` for a corrupt or newer-format store and `Busy` when another process holds it.
    pub fn new(config: ClientConfig) -> Result<Arc<ChatClient>, ChatError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKERS)
            .max_blocking_threads(4)
            .thread_name("chatsync")
            .enable_all()
            .build()
            .map_err(|e| ChatError::Storage(format!("cannot start the client's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        Self::build(config, OwnedRuntime(Some(runtime)), handle)
    }

    /// Like [`ChatClient::new`], but runs on the caller's runtime (tests on a paused clock,
    /// apps that already run tokio).
    pub fn with_runtime(
        config: ClientConfig,
        handle: Handle,
    ) -> Result<Arc<ChatClient>, ChatError> {
        Self::build(config, OwnedRuntime(None), handle)
    }

    fn build(
        config: ClientConfig,
        runtime: OwnedRuntime,
        handle: Handle,
    ) -> Result<Arc<ChatClient>, ChatError> {
        if config.user_id.is_empty() {
            return Err(ChatError::InvalidInput("user_id is empty".into()));
        }
        if config.page_size == 0 || config.max_messages_per_room == 0 {
            return Err(ChatError::InvalidInput(
                "page_size and max_messages_per_room must be at least 1".into(),
            ));
        }
        // Before touching the disk: a bad URL must not create a store.
        let api = {
            let _in_runtime = handle.enter(); // reqwest's client wants a runtime for its timers
            Api::new(&config)?
        };
        // `Store::open` creates the directory (after finishing an interrupted recovery).
        let store = open_waiting(&config)?;
        let http = api.http();
        let engine = Arc::new(Engine::new(config.clone(), store, api));
        let hub = engine.events.clone();
        let lifecycle = Lifecycle::new(
            &config,
            handle.clone(),
            http,
            Arc::new(move |event| hub.emit(event)),
        );
        let client = Arc::new(ChatClient {
            lifecycle,
            engine,
            _runtime: runtime,
            handle,
        });
        client
            .engine
            .api
            .set_hooks(Arc::new(LifecycleHooks(Arc::downgrade(&client))));
        // Listeners subscribing before the first change still learn the outbox's state.
        client.engine.emit_outbox_counts();
        Ok(client)
    }

    /// Runs `work` on the client's runtime and awaits it from any executor.
    async fn run<T, F, Fut>(&self, work: F) -> Result<T, ChatError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Engine>) -> Fut,
        Fut: Future<Output = Result<T, ChatError>> + Send + 'static,
    {
        match self.handle.spawn(work(self.engine.clone())).await {
            Ok(result) => result,
            Err(e) if e.is_cancelled() => Err(ChatError::ShutDown),
            Err(e) => Err(ChatError::Storage(format!(
                "internal error in the engine: {e}"
            ))),
        }
    }

    // --- session ---

    /// Logs in as the configured user with a profile; stored at once, uploaded when online.
    pub async fn login(
        &self,
        name: String,
        avatar_url: Option<String>,
    ) -> Result<Session, ChatError> {
        if name.trim().is_empty() {
            return Err(ChatError::InvalidInput("name is empty".into()));
        }
        self.run(move |engine| async move {
            let previous = engine.store.meta.session()?;
            let session = Session {
                user: ChatUser {
                    id: engine.config.user_id.clone(),
                    name,
                    avatar: avatar_url,
                },
                friend_id: previous.as_ref().and_then(|s| s.friend_id.clone()),
                room_id: previous.as_ref().and_then(|s| s.room_id.clone()),
            };
            engine.store.put_session(&session)?;
            engine.store.meta.set_profile_dirty(true)?;
            engine.store.flush().await?;
            engine.upload_profile_if_owed().await;
            Ok(session)
        })
        .await
    }

    /// The stored session, readable offline.
    pub fn session(&self) -> Result<Option<Session>, ChatError> {
        Ok(self.engine.store.meta.session()?)
    }

    /// Sets the friend to chat with and, when the server is reachable, opens the direct room
    /// with them (offline, the room is opened by the next `open_direct_room`).
    pub async fn set_friend(&self, user_id: String) -> Result<Session, ChatError> {
        if user_id.is_empty() {
            return Err(ChatError::InvalidInput("friend user id is empty".into()));
        }
        let friend = user_id.clone();
        let session = self
            .run(move |engine| async move {
                let mut session = engine.store.meta.session()?.ok_or_else(|| {
                    ChatError::InvalidInput("log in before choosing a friend".into())
                })?;
                if session.friend_id.as_deref() != Some(friend.as_str()) {
                    session.room_id = None;
                }
                session.friend_id = Some(friend);
                engine.store.put_session(&session)?;
                engine.store.flush().await?;
                Ok(session)
            })
            .await?;
        match self.open_direct_room(user_id).await {
            Ok(_) => {}
            Err(e) if e.is_transient() => {}
            Err(e) => return Err(e),
        }
        Ok(self.session()?.unwrap_or(session))
    }

    /// Gets or creates the direct room with `user_id` (network on first use, stored after).
    pub async fn open_direct_room(&self, user_id: String) -> Result<RoomSummary, ChatError> {
        if user_id.is_empty() {
            return Err(ChatError::InvalidInput("user id is empty".into()));
        }
        let room_id = self
            .run(move |engine| async move {
                let me = engine.config.user_id.clone();
                let mut members = vec![me.clone(), user_id.clone()];
                members.sort();
                members.dedup();
                let held = engine.store.rooms()?.into_iter().find(|(_, r)| {
                    r.info
                        .as_ref()
                        .is_some_and(|i| i.member_ids == members && i.name.is_none())
                });
                let room_id = match held {
                    Some((id, _)) => id,
                    None => {
                        let room = engine.api.direct_room(&user_id).await?;
                        check_room_id(&room.id)?;
                        engine.store.put_room_info(
                            &room.id,
                            crate::store::rooms::RoomInfo {
                                name: room.name,
                                member_ids: room.member_ids,
                            },
                        )?;
                        engine
                            .fetch_unknown_users([user_id.clone()].into_iter().collect())
                            .await;
                        room.id
                    }
                };
                if let Some(mut session) = engine.store.meta.session()? {
                    if session.friend_id.as_deref() == Some(user_id.as_str())
                        && session.room_id.as_deref() != Some(room_id.as_str())
                    {
                        session.room_id = Some(room_id.clone());
                        engine.store.put_session(&session)?;
                    }
                }
                engine.store.flush().await?;
                Ok(room_id)
            })
            .await?;
        self.rooms()?
            .into_iter()
            .find(|r| r.id == room_id)
            .ok_or_else(|| ChatError::Storage(format!("room {room_id} vanished from the store")))
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
    pub fn recover(config: ClientConfig) -> Result<crate::RecoveryReport, ChatError> {
        crate::recovery::recover(&config)
    }

    /// Rooms held on the device.
    pub fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        self.engine.rooms()
    }

    // --- reading (store only) ---

    /// Newest first, pending and failed echoes merged in their place. Never reads across a
    /// gap: what is returned is contiguous history. `limit` counts stored messages (at most
    /// 1,000); echoes whose place falls inside the page are added to it. Also sets where
    /// `load_older` continues: below the oldest message returned.
    pub fn messages(
        &self,
        room_id: String,
        limit: u32,
        before: Option<u64>,
    ) -> Result<Vec<ChatMessage>, ChatError> {
        self.engine.messages(&room_id, limit, before)
    }

    /// Older messages: from the store first, then from the server before the oldest held id.
    /// Continues below the oldest message `messages` or `load_older` last returned for the room.
    pub async fn load_older(
        &self,
        room_id: String,
        limit: u32,
    ) -> Result<LoadOlderResult, ChatError> {
        self.run(move |engine| async move { engine.load_older(&room_id, limit).await })
            .await
    }

    // --- sync ---

    /// One `/v1/sync` from the stored token plus an outbox flush. Offline is not an error: the
    /// report says `online: false`.
    pub async fn sync_once(&self) -> Result<SyncReport, ChatError> {
        self.lifecycle.set_sync_state(SyncState::Syncing);
        let result = self
            .run(|engine| async move { engine.sync_once().await })
            .await;
        self.lifecycle.set_sync_state(SyncState::Idle);
        result
    }

    /// For the scheduler: one `/v1/sync` holding up to `timeout_ms` when nothing is new, its
    /// batch applied and flushed, listeners told. No outbox flush. A network failure is
    /// `ChatError::Offline`.
    #[allow(dead_code)] // the scheduler currently calls `Engine::sync_request` directly (cancellable)
    pub(crate) async fn sync_with_timeout(&self, timeout_ms: u64) -> Result<SyncReport, ChatError> {
        let outcome = self
            .run(move |engine| async move { engine.sync_request(timeout_ms).await })
            .await?;
        let (pending, failed) = self.engine.outbox_counts()?;
        Ok(SyncReport {
            online: true,
            new_messages: outcome.new_messages,
            sent: 0,
            pending,
            failed,
        })
    }

    /// For the scheduler: one flush of the outbox, in order per room. `Ok` with
    /// `stopped_by: Some(..)` when a transient failure stopped it (the backoff is armed).
    pub(crate) async fn flush_outbox(&self) -> Result<FlushReport, ChatError> {
        self.run(|engine| async move { engine.flush_outbox().await })
            .await
    }

    /// For the scheduler: `None` when nothing is sendable, else when the next attempt is due.
    pub(crate) fn outbox_next_due(&self) -> Option<tokio::time::Instant> {
        self.engine.outbox_next_due().unwrap_or_else(|e| {
            tracing::warn!("cannot read the outbox: {e}");
            None
        })
    }

    /// Pushes `event` to every listener without blocking (status events are deduplicated).
    #[allow(dead_code)] // an entry point for the lifecycle half
    pub(crate) fn emit(&self, event: ClientEvent) {
        self.engine.events.emit(event);
    }

    // --- outbox ---

    /// Queues a text message durably and returns its pending echo, online or not.
    pub async fn send_text(&self, room_id: String, text: String) -> Result<ChatMessage, ChatError> {
        let echo = self
            .run(move |engine| async move { engine.send_text(&room_id, &text).await })
            .await?;
        self.lifecycle.note_outbox_queued();
        Ok(echo)
    }

    /// Every queued message (pending and failed), in send order.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, ChatError> {
        self.engine.outbox_entries()
    }

    /// Makes a failed message pending again; it (and the messages it held back) go out with the
    /// next flush.
    pub async fn retry(&self, local_id: String) -> Result<(), ChatError> {
        self.run(move |engine| async move { engine.retry(&local_id).await })
            .await?;
        self.lifecycle.note_outbox_queued();
        Ok(())
    }

    /// Drops a queued message (failed, or still pending: a pending one may already have reached
    /// the server, and then arrives with the next sync).
    pub async fn discard(&self, local_id: String) -> Result<(), ChatError> {
        self.run(move |engine| async move { engine.discard(&local_id).await })
            .await?;
        // Discarding a failed message unblocks the ones it held back.
        self.lifecycle.note_outbox_queued();
        Ok(())
    }

    // --- events ---

    /// The listener first gets the current state (network, sync, outbox), then every change.
    /// Each listener runs on its own thread; a slow or panicking one never blocks the engine.
    pub fn subscribe(&self, listener: Arc<dyn ClientListener>) -> Arc<Subscription> {
        Arc::new(self.engine.events.subscribe(listener))
    }
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
fn open_waiting(config: &ClientConfig) -> Result<Store, ChatError> {
    let deadline = std::time::Instant::now() + BUSY_WAIT;
    loop {
        match Store::open(&config.data_dir, config.cache_capacity_bytes) {
            Err(StoreError::Busy(m)) if std::time::Instant::now() < deadline => {
                tracing::debug!("store busy ({m}); waiting");
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other.map_err(ChatError::from),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::config::TokenSource;
    use crate::outbox::{BACKOFF_BASE, BACKOFF_CAP};

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
                matches!(report.stopped_by, Some(ChatError::Offline(_))),
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
