//! [`ChatHost`]: the host logic of an app's chat module, written once for Android and iOS.
//!
//! A React Native module (or any app shell) needs more than a [`ChatClient`]: options checked
//! and kept between launches, one client per process that outlives the UI (the OS starts the
//! process for a background task with no UI at all, and sled lets one client hold a store), a
//! status snapshot, timelines and the room list for screens, what a background run should tell
//! the OS and which notifications to show, and error codes a JS app branches on. All of that is
//! here; Kotlin and Swift keep only what only their OS can do (the job scheduler, reachability,
//! posting notifications, secure storage through [`SecretStore`], lifecycle), and pass the
//! JSON of [`crate::js`] to JS untouched.
//!
//! Every JS-facing method returns a JSON [`Reply`]: `{"ok": value}` or `{"err": {code,
//! message, ...}}`. It never throws, so the native modules have no error mapping of their own:
//! they resolve the promise with the string and src/native.ts turns `err` into a
//! `ChatSyncError`. The typed methods for the OS shells (`background_run`, `is_logged_in`,
//! `set_app_state`, ...) return typed values.

use std::collections::HashMap;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;

use crate::client::ChatClient;
use crate::error::ChatError;
use crate::events::{ClientEvent, ClientListener, Subscription};
use crate::js::{
    ErrorCode, JsClientEvent, JsDiff, JsError, JsMessage, JsOutboxEntry, JsPagination, JsRoom,
    JsSession, JsStatus, JsSyncReport, Reply,
};
use crate::model::{AppState, BackgroundOutcome, BackgroundSyncReport, MessageState};
use crate::notifications::{plan_notifications, RoomNotification};
use crate::options::{ConfigureOptions, LoginUser, Settings, StoredUser};
use crate::secrets::SecretStore;
use crate::views::{
    RoomList, RoomListDiff, RoomListListener, Timeline, TimelineDiff, TimelineListener,
};

/// Time budget of one background run: iOS grants an app-refresh task about 30 s; the same
/// 25 s on Android keeps both platforms alike and leaves time to post notifications.
pub const BACKGROUND_BUDGET_MS: u64 = 25_000;

/// The budget a background task passes to [`ChatHost::background_run`].
#[uniffi::export]
pub fn background_budget_ms() -> u64 {
    BACKGROUND_BUDGET_MS
}

/// Implemented by the app's module to hear the host: client events and view updates, as the
/// JSON of src/generated/native.ts. Called on a background thread, in order per view; return
/// quickly (React Native's event emitters only queue).
#[uniffi::export(foreign)]
pub trait HostListener: Send + Sync {
    /// A client event (`JsClientEvent`): network, sync state, outbox, refused token.
    fn on_client_event(&self, event_json: String);
    /// Diffs (`JsDiff[]`) for the view the app opened with `view_id`; the first is a `reset`.
    fn on_view_update(&self, view_id: u32, diffs_json: String);
}

/// What a background run decided, for the OS task that ran it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum BackgroundAction {
    /// Synced and flushed; the next period comes anyway.
    Done,
    /// Worth trying again soon (out of time, offline, server busy, store held by the app).
    Retry,
    /// The token was refused: the user must sign in again; retrying will not help.
    Unauthorized,
    /// Anything else (a damaged store, a bug): retrying will not help; see `summary`.
    Failed,
    /// Nobody is logged in: cancel the periodic task.
    NobodyLoggedIn,
}

/// One background run's outcome, typed, with what the OS task must do.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct BackgroundRun {
    /// How it ended.
    pub action: BackgroundAction,
    /// Ask the OS to run the task again early (Android `jobFinished(params, true)`); iOS
    /// completes the task with `success = !reschedule_early` and submits the next request.
    pub reschedule_early: bool,
    /// Whether the periodic task stays scheduled (false: cancel it; nobody is logged in).
    pub keep_scheduled: bool,
    /// The notifications to post (none in the foreground, or when the app turned them off).
    pub notifications: Vec<RoomNotification>,
    /// One line for the OS log.
    pub summary: String,
    /// The core's report, when the sync ran.
    pub report: Option<BackgroundSyncReport>,
}

impl BackgroundRun {
    fn new(action: BackgroundAction, summary: String) -> Self {
        BackgroundRun {
            action,
            reschedule_early: action == BackgroundAction::Retry,
            keep_scheduled: action != BackgroundAction::NobodyLoggedIn,
            notifications: Vec::new(),
            summary,
            report: None,
        }
    }
}

/// The action for a finished background sync: the core's typed outcome and its retry advice.
pub fn background_action(report: &BackgroundSyncReport) -> BackgroundAction {
    if report.retry_later {
        return BackgroundAction::Retry;
    }
    match report.outcome {
        BackgroundOutcome::Completed => BackgroundAction::Done,
        BackgroundOutcome::Unauthorized => BackgroundAction::Unauthorized,
        // retry_later is set for these by the core; a report without it is not retried early.
        BackgroundOutcome::TimedOut
        | BackgroundOutcome::Offline
        | BackgroundOutcome::Busy
        | BackgroundOutcome::Failed => BackgroundAction::Failed,
    }
}

/// Why a host call failed, before it becomes a [`JsError`].
#[derive(Debug)]
enum Failure {
    Chat(ChatError),
    Invalid(String),
    NotConfigured,
    NotLoggedIn,
    ViewClosed(u32),
    Settings(String),
    Panic(String),
}

impl From<ChatError> for Failure {
    fn from(e: ChatError) -> Self {
        Failure::Chat(e)
    }
}

impl From<crate::options::InvalidOptions> for Failure {
    fn from(e: crate::options::InvalidOptions) -> Self {
        Failure::Invalid(e.0)
    }
}

impl From<crate::options::SettingsError> for Failure {
    fn from(e: crate::options::SettingsError) -> Self {
        Failure::Settings(e.to_string())
    }
}

impl From<Failure> for JsError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Chat(e) => e.into(),
            Failure::Invalid(m) => JsError::new(ErrorCode::InvalidInput, m),
            Failure::NotConfigured => JsError::new(
                ErrorCode::NotConfigured,
                "call configure() before anything else",
            ),
            Failure::NotLoggedIn => JsError::new(
                ErrorCode::NotLoggedIn,
                "nobody is logged in: call login() first",
            ),
            Failure::ViewClosed(id) => JsError::new(
                ErrorCode::ViewClosed,
                format!("view {id} is closed (or was never opened)"),
            ),
            Failure::Settings(m) => JsError::new(ErrorCode::Storage, m),
            Failure::Panic(m) => JsError::new(
                ErrorCode::Internal,
                format!("internal error: chatsync panicked: {m}"),
            ),
        }
    }
}

type HostResult<T> = Result<T, Failure>;

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `call` and encodes its result as a [`Reply`]; a panic becomes `E_INTERNAL`.
fn reply<T: serde::Serialize>(call: impl FnOnce() -> HostResult<T>) -> String {
    let result = catch_unwind(AssertUnwindSafe(call))
        .unwrap_or_else(|payload| Err(Failure::Panic(panic_text(payload))));
    Reply::from(result).to_json()
}

/// [`reply`] for a future: a panic in any poll becomes `E_INTERNAL`. Dropping it (a cancelled
/// coroutine or Task) drops the call.
async fn reply_async<T: serde::Serialize>(future: impl Future<Output = HostResult<T>>) -> String {
    let mut future = std::pin::pin!(future);
    let result = std::future::poll_fn(move |cx| {
        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Ready(result)) => Poll::Ready(result),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(Failure::Panic(panic_text(payload)))),
        }
    })
    .await;
    Reply::from(result).to_json()
}

/// An open view: its subscription (cancelled on close) and, for a timeline, the timeline.
struct View {
    subscription: Arc<Subscription>,
    timeline: Option<Arc<Timeline>>,
}

/// The open client and what it was opened with.
struct Open {
    client: Arc<ChatClient>,
    user: StoredUser,
    options: ConfigureOptions,
    subscription: Arc<Subscription>,
    started: bool,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    views: HashMap<u32, View>,
    app_state: Option<AppState>,
    reachable: Option<bool>,
}

/// The listener slot shared with the client and view listeners (they outlive a listener swap).
type ListenerSlot = Arc<Mutex<Option<Arc<dyn HostListener>>>>;

/// The process's chat host: one per process ([`ChatHost::shared`]), holding the one client of
/// the logged-in user. Every method is safe from any thread; methods that open the store do
/// disk I/O, so never call them on the main thread.
#[derive(uniffi::Object)]
pub struct ChatHost {
    /// `<files dir>/chatsync`: the settings file and one store folder per user.
    dir: PathBuf,
    settings: Settings,
    /// Serializes open and close (slow: disk I/O, waiting for a store). A std Mutex: held
    /// across no await.
    lifecycle: Mutex<()>,
    /// Short reads and writes only, so the UI thread's lifecycle hints never wait behind an open.
    state: Mutex<State>,
    listener: ListenerSlot,
}

static SHARED: OnceLock<Arc<ChatHost>> = OnceLock::new();

impl ChatHost {
    /// A host over `files_dir` (tests; apps use [`ChatHost::shared`]).
    pub fn new(files_dir: String, secrets: Arc<dyn SecretStore>) -> Self {
        let dir = PathBuf::from(files_dir).join("chatsync");
        ChatHost {
            settings: Settings::new(dir.clone(), secrets),
            dir,
            lifecycle: Mutex::new(()),
            state: Mutex::new(State::default()),
            listener: Arc::new(Mutex::new(None)),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn client(&self) -> HostResult<Arc<ChatClient>> {
        self.state()
            .open
            .as_ref()
            .map(|o| o.client.clone())
            .ok_or(Failure::NotLoggedIn)
    }

    fn data_dir(&self, user: &StoredUser) -> PathBuf {
        self.dir.join(user.directory_name())
    }

    /// The client for `user` with `options`, opened unless it already is; another user's
    /// client, or one opened with other options, is shut down first.
    fn open(&self, options: &ConfigureOptions, user: &StoredUser) -> HostResult<Arc<ChatClient>> {
        let _serial = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(open) = &self.state().open {
            if &open.user == user && &open.options == options {
                return Ok(open.client.clone());
            }
        }
        self.close_serialized();
        let config = options.client_config(&user.id, &self.data_dir(user), user.token.clone());
        let client = ChatClient::new(config)?;
        let forward = Arc::new(EventForwarder(self.listener.clone()));
        let subscription = client.subscribe(forward)?;
        let (app_state, reachable) = {
            let mut state = self.state();
            state.open = Some(Open {
                client: client.clone(),
                user: user.clone(),
                options: options.clone(),
                subscription,
                started: false,
            });
            (state.app_state, state.reachable)
        };
        // Replayed after publishing the client, so a hint arriving meanwhile is not lost (a
        // hint applied twice is harmless).
        if let Some(r) = reachable {
            client.set_network_reachable(r)?;
        }
        client.set_app_state(app_state.unwrap_or(AppState::Background))?;
        Ok(client)
    }

    /// Starts the foreground scheduler of the open client (once).
    fn start(&self) -> HostResult<()> {
        let to_start = {
            let mut state = self.state();
            match state.open.as_mut() {
                Some(open) if !open.started => {
                    open.started = true;
                    Some(open.client.clone())
                }
                _ => None,
            }
        };
        if let Some(client) = to_start {
            client.start()?;
        }
        Ok(())
    }

    /// Closes the views and the client; unpublishes first, so no new call reaches a client
    /// being shut down. Call with `lifecycle` held.
    fn close_serialized(&self) {
        let (open, views) = {
            let mut state = self.state();
            (state.open.take(), std::mem::take(&mut state.views))
        };
        for view in views.into_values() {
            view.subscription.cancel();
        }
        if let Some(open) = open {
            let _ = open.client.shutdown();
            open.subscription.cancel();
        }
    }

    /// The stored user's client, opened from the stored settings (a background launch).
    fn restore(&self) -> HostResult<Option<Arc<ChatClient>>> {
        if let Ok(client) = self.client() {
            return Ok(Some(client));
        }
        let (Some(options), Some(user)) = (self.settings.options()?, self.settings.user()?) else {
            return Ok(None);
        };
        self.open(&options, &user).map(Some)
    }

    fn session_of(client: &ChatClient) -> HostResult<Option<JsSession>> {
        Ok(client.session()?.map(Into::into))
    }

    fn add_view(&self, view_id: u32, view: impl FnOnce() -> HostResult<View>) -> HostResult<()> {
        if self.state().views.contains_key(&view_id) {
            return Err(Failure::Invalid(format!("view {view_id} is already open")));
        }
        let view = view()?;
        self.state().views.insert(view_id, view);
        Ok(())
    }

    fn timeline(&self, view_id: u32) -> HostResult<Arc<Timeline>> {
        self.state()
            .views
            .get(&view_id)
            .and_then(|v| v.timeline.clone())
            .ok_or(Failure::ViewClosed(view_id))
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl ChatHost {
    /// The process's host over the app's private files folder `files_dir` (Android
    /// `Context.filesDir`, iOS Application Support), keeping tokens in `secrets`. The first call
    /// creates it; later calls return the same host (their arguments are not used).
    #[uniffi::constructor]
    pub fn shared(files_dir: String, secrets: Arc<dyn SecretStore>) -> Arc<Self> {
        SHARED
            .get_or_init(|| Arc::new(ChatHost::new(files_dir, secrets)))
            .clone()
    }

    /// Sets (or with `None` removes) the one listener: the module of the current React
    /// instance. Events of the client and the views go to it from then on.
    pub fn set_listener(&self, listener: Option<Arc<dyn HostListener>>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// `configure(options)`: validates and stores the options; when a user is logged in,
    /// (re)opens their client and starts syncing. Reply: the session (`JsSession | null`).
    pub fn configure(&self, options_json: String) -> String {
        reply(|| {
            let options = ConfigureOptions::from_json(&options_json)?;
            self.settings.save_options(&options)?;
            let Some(user) = self.settings.user()? else {
                return Ok(None);
            };
            let client = self.open(&options, &user)?;
            self.start()?;
            Self::session_of(&client)
        })
    }

    /// `login(user)`: opens the user's store, starts syncing, logs in (stored at once, uploaded
    /// when online) and remembers the user. Reply: `JsSession`.
    pub async fn login(&self, user_json: String) -> String {
        reply_async(async {
            let options = self.settings.options()?.ok_or(Failure::NotConfigured)?;
            let login = LoginUser::from_json(&user_json)?;
            let user = StoredUser {
                id: login.id,
                token: login.token,
            };
            let client = self.open(&options, &user)?;
            self.start()?;
            let session = client.login(login.name, login.avatar).await?;
            self.settings.save_user(&user)?;
            Ok(JsSession::from(session))
        })
        .await
    }

    /// `logout()`: forgets the user and their token, closes the views and the client. The
    /// store stays on the device. Reply: `null`.
    pub fn logout(&self) -> String {
        reply(|| {
            self.settings.clear_user()?;
            let _serial = self.lifecycle.lock().unwrap_or_else(|p| p.into_inner());
            self.close_serialized();
            Ok(())
        })
    }

    /// Whether a user is logged in (stored), for the shells' scheduling of the background task.
    pub fn is_logged_in(&self) -> bool {
        matches!(self.settings.user(), Ok(Some(_)))
    }

    /// Reply: the session of the open client (`JsSession | null`).
    pub fn session(&self) -> String {
        reply(|| match self.client() {
            Ok(client) => Self::session_of(&client),
            Err(_) => Ok(None),
        })
    }

    /// Reply: the direct room with `user_id` (`JsRoom`), created on first use.
    pub async fn open_direct_room(&self, user_id: String) -> String {
        reply_async(async {
            let client = self.client()?;
            Ok(JsRoom::from(client.open_direct_room(user_id).await?))
        })
        .await
    }

    /// Reply: the rooms held on the device (`JsRoom[]`), most recently active first.
    pub fn rooms(&self) -> String {
        reply(|| {
            let rooms = self.client()?.rooms()?;
            Ok(rooms.into_iter().map(JsRoom::from).collect::<Vec<_>>())
        })
    }

    /// Queues a text message durably. Reply: its pending echo (`JsMessage`).
    pub async fn send_text(&self, room_id: String, text: String) -> String {
        reply_async(async {
            let client = self.client()?;
            Ok(JsMessage::from(client.send_text(room_id, text).await?))
        })
        .await
    }

    /// Replaces the text of one of the user's messages (a send still queued is rewritten in
    /// the queue); the timeline shows it at once. Reply: `null`.
    pub async fn edit_message(&self, room_id: String, message_id: String, text: String) -> String {
        reply_async(async { Ok(self.client()?.edit_message(room_id, message_id, text).await?) })
            .await
    }

    /// Deletes one of the user's messages (a send still queued is dropped). Reply: `null`.
    pub async fn delete_message(&self, room_id: String, message_id: String) -> String {
        reply_async(async { Ok(self.client()?.delete_message(room_id, message_id).await?) }).await
    }

    /// Adds the user's reaction `key` to a message, or removes it when there. Reply: whether
    /// the user now reacts with it (`boolean`).
    pub async fn toggle_reaction(&self, room_id: String, message_id: String, key: String) -> String {
        reply_async(async {
            Ok(self
                .client()?
                .toggle_reaction(room_id, message_id, key)
                .await?)
        })
        .await
    }

    /// Marks a room read up to its newest message (the receipt is queued; the count drops at
    /// once). Reply: `null`.
    pub async fn mark_read(&self, room_id: String) -> String {
        reply_async(async { Ok(self.client()?.mark_read(room_id).await?) }).await
    }

    /// Tells a room the user is typing (`true`) or stopped. Best effort, never queued. Reply:
    /// `null`.
    pub async fn set_typing(&self, room_id: String, typing: bool) -> String {
        reply_async(async { Ok(self.client()?.set_typing(room_id, typing).await?) }).await
    }

    /// Reply: who is typing in a room now (`string[]`).
    pub fn typing(&self, room_id: String) -> String {
        reply(|| Ok(self.client()?.typing(room_id)?))
    }

    /// Reply: the total unread count over every room (`number`).
    pub fn unread_total(&self) -> String {
        reply(|| Ok(self.client()?.unread_total()?))
    }

    /// Puts a failed message back in the queue. Reply: `null`.
    pub async fn retry(&self, local_id: String) -> String {
        reply_async(async { Ok(self.client()?.retry(local_id).await?) }).await
    }

    /// Removes a pending or failed message. Reply: `null`.
    pub async fn discard(&self, local_id: String) -> String {
        reply_async(async { Ok(self.client()?.discard(local_id).await?) }).await
    }

    /// One sync plus a flush now. Reply: `JsSyncReport`.
    pub async fn sync_now(&self) -> String {
        reply_async(async { Ok(JsSyncReport::from(self.client()?.sync_once().await?)) }).await
    }

    /// Reply: the outbox (`JsOutboxEntry[]`).
    pub fn outbox(&self) -> String {
        reply(|| {
            let entries = self.client()?.outbox()?;
            Ok(entries
                .into_iter()
                .map(JsOutboxEntry::from)
                .collect::<Vec<_>>())
        })
    }

    /// Reply: the status now (`JsStatus`), read from the core (no client: nothing known).
    pub fn status(&self) -> String {
        reply(|| {
            let Ok(client) = self.client() else {
                return Ok(JsStatus::none());
            };
            let outbox = client.outbox()?;
            let count = |s: MessageState| outbox.iter().filter(|e| e.state == s).count() as u32;
            Ok(JsStatus {
                network_status: client.network_status()?.into(),
                sync_state: client.sync_state()?.into(),
                pending: count(MessageState::Pending),
                failed: count(MessageState::Failed),
                unread: client.unread_total()?,
            })
        })
    }

    /// Opens the timeline of `room_id` as view `view_id` (chosen by the caller, so it can
    /// listen before the first update): `on_view_update(view_id, ...)` gets a `reset` with the
    /// newest messages held (offline too), then the diffs of every change. Reply: `null`.
    pub fn open_timeline(&self, view_id: u32, room_id: String) -> String {
        reply(|| {
            let client = self.client()?;
            self.add_view(view_id, || {
                let timeline = client.timeline(room_id)?;
                let listener = Arc::new(ViewForwarder {
                    view_id,
                    listener: self.listener.clone(),
                });
                let subscription = timeline.subscribe(listener)?;
                Ok(View {
                    subscription,
                    timeline: Some(timeline),
                })
            })
        })
    }

    /// Opens the room list as view `view_id`: a `reset` with the rooms, then the diffs of
    /// every change. Reply: `null`.
    pub fn open_room_list(&self, view_id: u32) -> String {
        reply(|| {
            let client = self.client()?;
            self.add_view(view_id, || {
                let rooms: Arc<RoomList> = client.room_list()?;
                let listener = Arc::new(ViewForwarder {
                    view_id,
                    listener: self.listener.clone(),
                });
                let subscription = rooms.subscribe(listener)?;
                Ok(View {
                    subscription,
                    timeline: None,
                })
            })
        })
    }

    /// Shows up to `count` older messages in timeline `view_id` (`0`: the configured page
    /// size); they arrive as diffs. Reply: `JsPagination`.
    pub async fn paginate_backwards(&self, view_id: u32, count: u32) -> String {
        reply_async(async {
            let timeline = self.timeline(view_id)?;
            let count = if count > 0 {
                count
            } else {
                self.state()
                    .open
                    .as_ref()
                    .map(|o| o.options.effective_page_size())
                    .unwrap_or_else(crate::options::default_page_size)
            };
            let outcome = timeline.paginate_backwards(count).await?;
            Ok(JsPagination {
                added: outcome.added,
                has_more: outcome.has_more,
            })
        })
        .await
    }

    /// Closes view `view_id` (no more updates). Closing a closed view does nothing.
    pub fn close_view(&self, view_id: u32) {
        let view = self.state().views.remove(&view_id);
        if let Some(view) = view {
            view.subscription.cancel();
        }
    }

    /// The app's lifecycle state, forwarded to the client (and to the next one).
    pub fn set_app_state(&self, state: AppState) {
        let client = {
            let mut s = self.state();
            s.app_state = Some(state);
            s.open.as_ref().map(|o| o.client.clone())
        };
        if let Some(c) = client {
            let _ = c.set_app_state(state);
        }
    }

    /// The platform's reachability hint, forwarded to the client (and to the next one).
    pub fn set_network_reachable(&self, reachable: bool) {
        let client = {
            let mut s = self.state();
            s.reachable = Some(reachable);
            s.open.as_ref().map(|o| o.client.clone())
        };
        if let Some(c) = client {
            let _ = c.set_network_reachable(reachable);
        }
    }

    /// One background run for the OS task: opens the logged-in user's store from the stored
    /// settings when no client is open (a process started for the task), syncs and flushes
    /// within `budget_ms`, and plans the notifications (none while the app is in the foreground,
    /// as `set_app_state` last said, or when the app turned them off). Never fails: the outcome
    /// says what happened.
    pub async fn background_run(&self, budget_ms: u64) -> BackgroundRun {
        let client = match catch_unwind(AssertUnwindSafe(|| self.restore())) {
            Ok(Ok(Some(client))) => client,
            Ok(Ok(None)) => {
                return BackgroundRun::new(
                    BackgroundAction::NobodyLoggedIn,
                    "nobody is logged in".into(),
                )
            }
            Ok(Err(failure)) => {
                // Held by another process (the app itself): free again soon. Anything else (a
                // damaged store) needs more than a retry.
                let busy = matches!(failure, Failure::Chat(ChatError::Busy { .. }));
                let error = JsError::from(failure);
                let action = if busy {
                    BackgroundAction::Retry
                } else {
                    BackgroundAction::Failed
                };
                return BackgroundRun::new(
                    action,
                    format!("cannot open the store: {}", error.message),
                );
            }
            Err(payload) => {
                return BackgroundRun::new(
                    BackgroundAction::Failed,
                    format!("chatsync panicked: {}", panic_text(payload)),
                )
            }
        };
        let report = match client.background_sync(budget_ms).await {
            Ok(report) => report,
            Err(e) => return BackgroundRun::new(BackgroundAction::Failed, e.to_string()),
        };
        let notify = {
            let state = self.state();
            state.app_state != Some(AppState::Active)
                && state
                    .open
                    .as_ref()
                    .is_none_or(|o| o.options.notifications_enabled())
        };
        let action = background_action(&report);
        let mut run = BackgroundRun::new(
            action,
            report.error.clone().unwrap_or_else(|| {
                format!(
                    "{} new, {} sent, {} pending, {} failed",
                    report.new_messages.len(),
                    report.sent,
                    report.pending,
                    report.failed
                )
            }),
        );
        if notify {
            run.notifications = plan_notifications(report.new_messages.clone());
        }
        run.report = Some(report);
        run
    }
}

/// Forwards the client's events to the host's listener as JSON.
struct EventForwarder(ListenerSlot);

impl ClientListener for EventForwarder {
    fn on_event(&self, event: ClientEvent) {
        let listener = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(l) = listener {
            let json = serde_json::to_string(&JsClientEvent::from(event))
                .unwrap_or_else(|_| "null".into());
            l.on_client_event(json);
        }
    }
}

/// Forwards a view's diffs to the host's listener as JSON, tagged with the view id.
struct ViewForwarder {
    view_id: u32,
    listener: ListenerSlot,
}

impl ViewForwarder {
    fn send<T: serde::Serialize>(&self, diffs: Vec<JsDiff<T>>) {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(l) = listener {
            let json = serde_json::to_string(&diffs).unwrap_or_else(|_| "[]".into());
            l.on_view_update(self.view_id, json);
        }
    }
}

impl TimelineListener for ViewForwarder {
    fn on_update(&self, diffs: Vec<TimelineDiff>) {
        self.send::<JsMessage>(diffs.into_iter().map(Into::into).collect());
    }
}

impl RoomListListener for ViewForwarder {
    fn on_update(&self, diffs: Vec<RoomListDiff>) {
        self.send::<JsRoom>(diffs.into_iter().map(Into::into).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MemorySecretStore;
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::time::Duration;

    /// Bounded wait for one listener call (an observable event, not a sleep).
    const WAIT: Duration = Duration::from_secs(20);

    #[derive(Debug)]
    enum Heard {
        Client,
        View(u32, serde_json::Value),
    }

    struct Recorder(Mutex<Sender<Heard>>);

    impl HostListener for Recorder {
        fn on_client_event(&self, event_json: String) {
            let _: serde_json::Value = serde_json::from_str(&event_json).unwrap();
            let _ = self.0.lock().unwrap().send(Heard::Client);
        }
        fn on_view_update(&self, view_id: u32, diffs_json: String) {
            let v = serde_json::from_str(&diffs_json).unwrap();
            let _ = self.0.lock().unwrap().send(Heard::View(view_id, v));
        }
    }

    fn host() -> (tempfile::TempDir, ChatHost, Receiver<Heard>) {
        let dir = tempfile::tempdir().unwrap();
        let host = ChatHost::new(
            dir.path().to_string_lossy().into_owned(),
            Arc::new(MemorySecretStore::default()),
        );
        let (tx, rx) = channel();
        host.set_listener(Some(Arc::new(Recorder(Mutex::new(tx)))));
        (dir, host, rx)
    }

    fn json(reply: String) -> serde_json::Value {
        serde_json::from_str(&reply).unwrap()
    }

    fn ok(reply: String) -> serde_json::Value {
        let v = json(reply);
        assert!(v.get("err").is_none(), "expected ok, got {v}");
        v["ok"].clone()
    }

    fn code(reply: String) -> String {
        json(reply)["err"]["code"]
            .as_str()
            .unwrap_or("<ok>")
            .to_owned()
    }

    /// A server nobody listens on: the client works offline.
    const OFFLINE: &str = r#"{"serverUrl":"http://127.0.0.1:9","notifications":true}"#;

    fn view_update(rx: &Receiver<Heard>, view: u32) -> serde_json::Value {
        loop {
            match rx.recv_timeout(WAIT).expect("no view update in time") {
                Heard::View(id, diffs) if id == view => return diffs,
                _ => continue,
            }
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn calls_before_configure_and_login_say_which_is_missing() {
        let (_dir, host, _rx) = host();
        let rt = runtime();
        let login = rt.block_on(host.login(r#"{"id":"alice","name":"Alice"}"#.into()));
        assert_eq!(code(login), "E_NOT_CONFIGURED");
        assert_eq!(ok(host.configure(OFFLINE.into())), serde_json::Value::Null);
        assert_eq!(code(host.rooms()), "E_NOT_LOGGED_IN");
        assert_eq!(code(host.open_timeline(1, "r1".into())), "E_NOT_LOGGED_IN");
        assert_eq!(
            code(host.configure(r#"{"serverUrl":"ftp://x"}"#.into())),
            "E_INVALID_INPUT"
        );
        let bad = rt.block_on(host.login(r#"{"id":"alice"}"#.into()));
        assert_eq!(code(bad), "E_INVALID_INPUT");
        assert_eq!(ok(host.session()), serde_json::Value::Null);
        assert_eq!(ok(host.status())["syncState"], "stopped");
        assert!(!host.is_logged_in());
    }

    #[test]
    fn an_offline_login_opens_a_timeline_that_hears_its_echo_as_a_diff() {
        let (_dir, host, rx) = host();
        let rt = runtime();
        ok(host.configure(OFFLINE.into()));
        let session = ok(rt.block_on(host.login(r#"{"id":"alice","name":"Alice"}"#.into())));
        assert_eq!(session["user"]["name"], "Alice");
        assert!(host.is_logged_in());
        // A room exists once created on the server; offline, the timeline of any id is empty.
        ok(host.open_timeline(7, "r1".into()));
        assert_eq!(
            view_update(&rx, 7),
            serde_json::json!([{"kind": "reset", "items": []}])
        );
        assert_eq!(code(host.open_timeline(7, "r1".into())), "E_INVALID_INPUT");
        let echo = ok(rt.block_on(host.send_text("r1".into(), "hi".into())));
        assert_eq!(
            (echo["state"].as_str(), echo["serverId"].is_null()),
            (Some("pending"), true)
        );
        let diffs = view_update(&rx, 7);
        assert_eq!(diffs[0]["kind"], "pushBack", "{diffs}");
        assert_eq!(diffs[0]["item"]["id"], echo["id"]);
        let status = ok(host.status());
        assert_eq!(
            (status["pending"].as_u64(), status["failed"].as_u64()),
            (Some(1), Some(0))
        );
        host.close_view(7);
        let closed = rt.block_on(host.paginate_backwards(7, 0));
        assert_eq!(code(closed), "E_VIEW_CLOSED");
        // Logout forgets the user; the next background run says so and cancels the task.
        ok(host.logout());
        assert!(!host.is_logged_in());
        assert_eq!(code(host.outbox()), "E_NOT_LOGGED_IN");
        let run = rt.block_on(host.background_run(1_000));
        assert_eq!(run.action, BackgroundAction::NobodyLoggedIn);
        assert!(!run.keep_scheduled && !run.reschedule_early);
    }

    #[test]
    fn the_background_run_restores_the_stored_user_and_retries_while_the_store_is_held() {
        let (dir, host, _rx) = host();
        let rt = runtime();
        ok(host.configure(OFFLINE.into()));
        ok(rt.block_on(host.login(r#"{"id":"alice","name":"Alice","token":"t"}"#.into())));
        // A second process: its host reads the same settings, but the store is held.
        let secrets = Arc::new(MemorySecretStore::default());
        secrets
            .set(crate::options::LOGIN_TOKEN_KEY.into(), "t".into())
            .unwrap();
        let other = ChatHost::new(dir.path().to_string_lossy().into_owned(), secrets);
        let held = rt.block_on(other.background_run(1_000));
        assert_eq!(held.action, BackgroundAction::Retry, "{}", held.summary);
        assert!(held.reschedule_early && held.keep_scheduled);
        assert!(
            held.summary.starts_with("cannot open the store: busy"),
            "{}",
            held.summary
        );
        // Once the app's client is closed, the other process opens the store from the settings
        // alone and runs: offline, so the core advises a retry.
        let _serial = host.lifecycle.lock().unwrap();
        host.close_serialized();
        let run = rt.block_on(other.background_run(1_000));
        assert_eq!(run.action, BackgroundAction::Retry, "{}", run.summary);
        assert_eq!(
            run.report.map(|r| r.outcome),
            Some(BackgroundOutcome::Offline)
        );
    }

    #[test]
    fn the_background_action_follows_the_cores_outcome_and_advice() {
        use BackgroundOutcome as O;
        let cases = [
            (O::Completed, false, BackgroundAction::Done),
            (O::TimedOut, true, BackgroundAction::Retry),
            (O::Offline, true, BackgroundAction::Retry),
            (O::Busy, true, BackgroundAction::Retry),
            (O::Unauthorized, false, BackgroundAction::Unauthorized),
            (O::Failed, false, BackgroundAction::Failed),
        ];
        for (outcome, retry_later, action) in cases {
            let report = BackgroundSyncReport {
                outcome,
                retry_later,
                online: false,
                new_messages: vec![],
                sent: 0,
                pending: 0,
                failed: 0,
                error: None,
            };
            assert_eq!(background_action(&report), action, "{outcome:?}");
        }
    }
}
