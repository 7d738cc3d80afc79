//! The JSON that crosses the React Native bridge, defined once: every value the host layer
//! ([`crate::host::ChatHost`]) hands to JavaScript, and the error codes JavaScript branches on.
//!
//! The Kotlin and Swift modules pass these strings through untouched, so the shapes are not
//! written again per platform; `src/generated/native.ts` (the TypeScript declarations of these
//! types) is rendered from them by the test `typescript_declarations_are_current`, so the JS
//! types are not written again either. They are the core's shapes (what a chat is), camelCase;
//! GiftedChat's shape is made in JS (src/convert.ts).
//!
//! Protocol v2's chat model (edits, tombstones, reactions, read receipts, unread counts, typing)
//! is here too: [`JsMessage`], [`JsRoom`], [`JsOutboxEntry`] and [`JsClientEvent`] carry it, and
//! nothing in Kotlin or Swift knows about it.

use serde::Serialize;

use crate::error::ChatError;
use crate::events::ClientEvent;
use crate::model::{
    ChangeKind, ChatMessage, ChatUser, MessagePart, MessageState, NetworkStatus, OutboxEntry,
    ReactionSummary, RoomSummary, Session, SyncReport, SyncState,
};
use crate::views::{RoomListDiff, TimelineDiff};

/// Every code a promise of react-native-chatsync rejects with. The first ten are the cases of
/// [`ChatError`] (one each, from [`JsError::from`]); the others are the host's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ErrorCode {
    /// `ChatError::Offline`: retry later (not before `retryAfterSecs`); sends stay queued.
    #[serde(rename = "E_OFFLINE")]
    Offline,
    /// `ChatError::Unauthorized`: sign the user in again.
    #[serde(rename = "E_UNAUTHORIZED")]
    Unauthorized,
    /// `ChatError::NotFound`.
    #[serde(rename = "E_NOT_FOUND")]
    NotFound,
    /// `ChatError::Rejected`: refused for good; `serverCode` says why.
    #[serde(rename = "E_REJECTED")]
    Rejected,
    /// `ChatError::Protocol`.
    #[serde(rename = "E_PROTOCOL")]
    Protocol,
    /// `ChatError::Storage`.
    #[serde(rename = "E_STORAGE")]
    Storage,
    /// `ChatError::InvalidInput`, and options or arguments the host refused.
    #[serde(rename = "E_INVALID_INPUT")]
    InvalidInput,
    /// `ChatError::Busy`: the store is held by another process.
    #[serde(rename = "E_BUSY")]
    Busy,
    /// `ChatError::ShutDown`.
    #[serde(rename = "E_SHUT_DOWN")]
    ShutDown,
    /// `ChatError::Internal`, and anything unexpected.
    #[serde(rename = "E_INTERNAL")]
    Internal,
    /// `configure()` was not called yet (nothing stored either).
    #[serde(rename = "E_NOT_CONFIGURED")]
    NotConfigured,
    /// No user is logged in.
    #[serde(rename = "E_NOT_LOGGED_IN")]
    NotLoggedIn,
    /// The timeline or room list handle is closed or unknown.
    #[serde(rename = "E_VIEW_CLOSED")]
    ViewClosed,
    /// Raised in JS only: the native module is not linked into the app.
    #[serde(rename = "E_NOT_LINKED")]
    NotLinked,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::Offline,
        ErrorCode::Unauthorized,
        ErrorCode::NotFound,
        ErrorCode::Rejected,
        ErrorCode::Protocol,
        ErrorCode::Storage,
        ErrorCode::InvalidInput,
        ErrorCode::Busy,
        ErrorCode::ShutDown,
        ErrorCode::Internal,
        ErrorCode::NotConfigured,
        ErrorCode::NotLoggedIn,
        ErrorCode::ViewClosed,
        ErrorCode::NotLinked,
    ];

    /// The code as JS sees it (`E_OFFLINE`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Offline => "E_OFFLINE",
            ErrorCode::Unauthorized => "E_UNAUTHORIZED",
            ErrorCode::NotFound => "E_NOT_FOUND",
            ErrorCode::Rejected => "E_REJECTED",
            ErrorCode::Protocol => "E_PROTOCOL",
            ErrorCode::Storage => "E_STORAGE",
            ErrorCode::InvalidInput => "E_INVALID_INPUT",
            ErrorCode::Busy => "E_BUSY",
            ErrorCode::ShutDown => "E_SHUT_DOWN",
            ErrorCode::Internal => "E_INTERNAL",
            ErrorCode::NotConfigured => "E_NOT_CONFIGURED",
            ErrorCode::NotLoggedIn => "E_NOT_LOGGED_IN",
            ErrorCode::ViewClosed => "E_VIEW_CLOSED",
            ErrorCode::NotLinked => "E_NOT_LINKED",
        }
    }
}

/// A failure as JS receives it: `ChatSyncError`'s fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsError {
    /// What went wrong, to branch on.
    pub code: ErrorCode,
    /// Readable text (the core's, said once).
    pub message: String,
    /// `E_OFFLINE`: the server's Retry-After in seconds, when it gave one.
    #[cfg_attr(test, ts(type = "number | null"))]
    pub retry_after_secs: Option<u64>,
    /// `E_REJECTED`: the server's snake_case code (`forbidden`, `payload_too_large`).
    pub server_code: Option<String>,
}

impl JsError {
    /// A failure of the host itself, with no core error behind it.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        JsError {
            code,
            message: message.into(),
            retry_after_secs: None,
            server_code: None,
        }
    }
}

/// The one mapping from [`ChatError`] to a JS code: one code per case.
impl From<ChatError> for JsError {
    fn from(error: ChatError) -> Self {
        let message = error.to_string();
        let (code, retry_after_secs, server_code) = match error {
            ChatError::Offline {
                retry_after_secs, ..
            } => (ErrorCode::Offline, retry_after_secs, None),
            ChatError::Unauthorized { .. } => (ErrorCode::Unauthorized, None, None),
            ChatError::NotFound { .. } => (ErrorCode::NotFound, None, None),
            ChatError::Rejected { code, .. } => (ErrorCode::Rejected, None, Some(code)),
            ChatError::Protocol { .. } => (ErrorCode::Protocol, None, None),
            ChatError::Storage { .. } => (ErrorCode::Storage, None, None),
            ChatError::InvalidInput { .. } => (ErrorCode::InvalidInput, None, None),
            ChatError::Busy { .. } => (ErrorCode::Busy, None, None),
            ChatError::ShutDown { .. } => (ErrorCode::ShutDown, None, None),
            ChatError::Internal { .. } => (ErrorCode::Internal, None, None),
        };
        JsError {
            code,
            message,
            retry_after_secs,
            server_code,
        }
    }
}

/// What every JS-facing host call resolves with: the value, or the error JS throws. The native
/// modules resolve their promise with this JSON as it is; src/native.ts unwraps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Reply<T> {
    /// The call succeeded with this value.
    Ok(T),
    /// The call failed.
    Err(JsError),
}

impl<T: Serialize> Reply<T> {
    /// The reply as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| {
            // Every type here serializes (no maps with non-string keys, no floats): unreachable,
            // but a bridge call must still answer.
            format!(
                r#"{{"err":{{"code":"E_INTERNAL","message":"cannot encode the reply: {}","retryAfterSecs":null,"serverCode":null}}}}"#,
                e.to_string().replace('"', "'")
            )
        })
    }
}

impl<T: Serialize, E: Into<JsError>> From<Result<T, E>> for Reply<T> {
    fn from(result: Result<T, E>) -> Self {
        match result {
            Ok(value) => Reply::Ok(value),
            Err(error) => Reply::Err(error.into()),
        }
    }
}

/// A user as shown next to a message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsUser {
    /// The user id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL, when the profile has one.
    pub avatar_url: Option<String>,
}

/// Delivery state of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum JsMessageState {
    /// Accepted by the server.
    Sent,
    /// Queued on the device.
    Pending,
    /// Refused for good.
    Failed,
}

/// One part of a message, kept even when it is not text.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsPart {
    /// MIME type (`text/plain`).
    #[serde(rename = "type")]
    pub mime_type: String,
    /// Inline content.
    pub content: Option<String>,
    /// Other fields of the part, as a JSON object string.
    pub extra_json: Option<String>,
}

/// A message: the core's shape. `id` is stable across its life (the local id for a message sent
/// from this device, else the server id), so an echo keeps its key when it turns sent.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsMessage {
    /// Stable id (see above).
    pub id: String,
    /// The server's id, once sent. A JS number: exact up to 2^53.
    #[cfg_attr(test, ts(type = "number | null"))]
    pub server_id: Option<u64>,
    /// The txn id, for messages sent from this device.
    pub local_id: Option<String>,
    /// The room.
    pub room_id: String,
    /// Who sent it.
    pub sender: JsUser,
    /// Text of the first text part.
    pub text: String,
    /// Every part, in order.
    pub parts: Vec<JsPart>,
    /// RFC 3339, UTC, with milliseconds.
    pub created_at: String,
    /// Delivery state.
    pub state: JsMessageState,
    /// The server's reason, when failed.
    pub failure_reason: Option<String>,
    /// When its sender last edited it, RFC 3339 (`null`: never).
    pub edited_at: Option<String>,
    /// A tombstone: deleted by its sender (no text, no parts, no reactions; its place is kept).
    pub deleted: bool,
    /// Reactions per key, in the order first given.
    pub reactions: Vec<JsReaction>,
    /// Who (besides the sender) has read up to this message or later.
    pub read_by: Vec<String>,
    /// An edit, deletion or reaction of this device is still queued for it.
    pub pending_change: bool,
}

/// The reactions of one key on a message.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsReaction {
    /// The key (an emoji or a short code).
    pub key: String,
    /// How many members reacted with it.
    pub count: u32,
    /// Whether the user did.
    pub me: bool,
}

/// What a queued change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum JsChangeKind {
    /// A new message.
    Send,
    /// New content for a message.
    Edit,
    /// A deletion.
    Delete,
    /// A reaction added or removed.
    React,
    /// A read receipt.
    Receipt,
}

/// A room as the device knows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsRoom {
    /// The room id.
    pub id: String,
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Member ids.
    pub member_ids: Vec<String>,
    /// The newest message held on the device.
    pub last_message: Option<JsMessage>,
    /// The user's unread messages in it (the server's count; 0 once marked read here).
    pub unread: u32,
}

/// Who is logged in.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsSession {
    /// The user and the profile given at login.
    pub user: JsUser,
}

/// Result of `syncNow()`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsSyncReport {
    /// Whether the server answered.
    pub online: bool,
    /// New messages stored, per room id.
    pub new_messages: std::collections::BTreeMap<String, u32>,
    /// Outbox messages accepted during the call.
    pub sent: u32,
    /// Outbox messages still waiting.
    pub pending: u32,
    /// Outbox messages refused for good.
    pub failed: u32,
}

/// An entry of the outbox.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsOutboxEntry {
    /// The txn id.
    pub local_id: String,
    /// The room it goes to.
    pub room_id: String,
    /// Its text.
    pub text: String,
    /// When it was queued, RFC 3339.
    pub created_at: String,
    /// `pending` or `failed`.
    pub state: JsMessageState,
    /// Attempts so far.
    pub attempts: u32,
    /// Why the server refused it.
    pub failure_reason: Option<String>,
    /// What it does.
    pub kind: JsChangeKind,
    /// The message an edit, deletion or reaction is for.
    pub target_id: Option<String>,
}

/// Network status as the core sees it (`unknown` before the first answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum JsNetworkStatus {
    /// Before the first answer.
    Unknown,
    /// The server answers.
    Online,
    /// It does not.
    Offline,
}

/// What the sync engine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum JsSyncState {
    /// Nothing running.
    Idle,
    /// A sync request is running.
    Syncing,
    /// Holding a live long-poll.
    Live,
    /// Waiting after failures.
    BackingOff,
    /// Shut down (final).
    Stopped,
}

/// The client's status now, read from the core (`getStatus()`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsStatus {
    /// Network status.
    pub network_status: JsNetworkStatus,
    /// Sync state.
    pub sync_state: JsSyncState,
    /// Messages queued, not yet accepted.
    pub pending: u32,
    /// Messages refused for good.
    pub failed: u32,
    /// Unread messages over every room (the app badge).
    pub unread: u32,
}

impl JsStatus {
    /// The status with no client open: nothing known, nothing queued.
    pub fn none() -> Self {
        JsStatus {
            network_status: JsNetworkStatus::Unknown,
            sync_state: JsSyncState::Stopped,
            pending: 0,
            failed: 0,
            unread: 0,
        }
    }
}

/// An event of the client, as `onClientEvent` delivers it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum JsClientEvent {
    /// Messages of a room changed (a screen hears its timeline instead).
    MessagesChanged {
        /// The room.
        room_id: String,
        /// The changed message ids.
        ids: Vec<String>,
    },
    /// The network status changed (first: the current one).
    NetworkStatusChanged {
        /// The new status.
        status: JsNetworkStatus,
    },
    /// The sync state changed (first: the current one).
    SyncStateChanged {
        /// The new state.
        state: JsSyncState,
    },
    /// The outbox counts changed (first: the current ones).
    OutboxChanged {
        /// Waiting.
        pending: u32,
        /// Refused for good.
        failed: u32,
    },
    /// The token was refused: sign in again (once per streak).
    Unauthorized {
        /// The reason.
        reason: String,
    },
    /// Who is typing in a room changed.
    TypingChanged {
        /// The room.
        room_id: String,
        /// The users typing now (never the user).
        user_ids: Vec<String>,
    },
    /// The total unread count over every room changed (the app badge; first: the current one).
    UnreadChanged {
        /// The new total.
        total: u32,
    },
}

/// A change to a list view (a timeline's messages, oldest first, or the room list), as
/// `onViewUpdate` delivers it in `diffs`. Applied in order, the diffs keep JS's copy equal to
/// the native view.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum JsDiff<T> {
    /// Replace everything (the first update, and after a jump).
    Reset {
        /// The whole list.
        items: Vec<T>,
    },
    /// Add at the end.
    PushBack {
        /// The item.
        item: T,
    },
    /// Add at the start.
    PushFront {
        /// The item.
        item: T,
    },
    /// Add at `index`, shifting the rest.
    Insert {
        /// Where.
        index: u32,
        /// The item.
        item: T,
    },
    /// Replace the item at `index` (same identity, new content).
    Set {
        /// Where.
        index: u32,
        /// The new content.
        item: T,
    },
    /// Remove the item at `index`.
    Remove {
        /// Where.
        index: u32,
    },
}

/// Result of `paginateBackwards()`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct JsPagination {
    /// Messages added at the top (they arrive as diffs too).
    pub added: u32,
    /// Whether older messages exist still.
    pub has_more: bool,
}

impl From<ChatUser> for JsUser {
    fn from(u: ChatUser) -> Self {
        JsUser {
            id: u.id,
            name: u.name,
            avatar_url: u.avatar_url,
        }
    }
}

impl From<MessageState> for JsMessageState {
    fn from(s: MessageState) -> Self {
        match s {
            MessageState::Sent => JsMessageState::Sent,
            MessageState::Pending => JsMessageState::Pending,
            MessageState::Failed => JsMessageState::Failed,
        }
    }
}

impl From<MessagePart> for JsPart {
    fn from(p: MessagePart) -> Self {
        JsPart {
            mime_type: p.mime_type,
            content: p.content,
            extra_json: p.extra_json,
        }
    }
}

impl From<ChatMessage> for JsMessage {
    fn from(m: ChatMessage) -> Self {
        JsMessage {
            id: m.id,
            server_id: m.server_id,
            local_id: m.local_id,
            room_id: m.room_id,
            sender: m.sender.into(),
            text: m.text,
            parts: m.parts.into_iter().map(Into::into).collect(),
            created_at: m.created_at,
            state: m.state.into(),
            failure_reason: m.failure_reason,
            edited_at: m.edited_at,
            deleted: m.deleted,
            reactions: m.reactions.into_iter().map(Into::into).collect(),
            read_by: m.read_by,
            pending_change: m.pending_change,
        }
    }
}

impl From<ReactionSummary> for JsReaction {
    fn from(r: ReactionSummary) -> Self {
        JsReaction {
            key: r.key,
            count: r.count,
            me: r.me,
        }
    }
}

impl From<ChangeKind> for JsChangeKind {
    fn from(k: ChangeKind) -> Self {
        match k {
            ChangeKind::Send => JsChangeKind::Send,
            ChangeKind::Edit => JsChangeKind::Edit,
            ChangeKind::Delete => JsChangeKind::Delete,
            ChangeKind::React => JsChangeKind::React,
            ChangeKind::Receipt => JsChangeKind::Receipt,
        }
    }
}

impl From<RoomSummary> for JsRoom {
    fn from(r: RoomSummary) -> Self {
        JsRoom {
            id: r.id,
            name: r.name,
            member_ids: r.member_ids,
            last_message: r.last_message.map(Into::into),
            unread: r.unread,
        }
    }
}

impl From<Session> for JsSession {
    fn from(s: Session) -> Self {
        JsSession {
            user: s.user.into(),
        }
    }
}

impl From<SyncReport> for JsSyncReport {
    fn from(r: SyncReport) -> Self {
        JsSyncReport {
            online: r.online,
            new_messages: r.new_messages.into_iter().collect(),
            sent: r.sent,
            pending: r.pending,
            failed: r.failed,
        }
    }
}

impl From<OutboxEntry> for JsOutboxEntry {
    fn from(e: OutboxEntry) -> Self {
        JsOutboxEntry {
            local_id: e.local_id,
            room_id: e.room_id,
            text: e.text,
            created_at: e.created_at,
            state: e.state.into(),
            attempts: e.attempts,
            failure_reason: e.failure_reason,
            kind: e.kind.into(),
            target_id: e.target_id,
        }
    }
}

impl From<NetworkStatus> for JsNetworkStatus {
    fn from(s: NetworkStatus) -> Self {
        match s {
            NetworkStatus::Unknown => JsNetworkStatus::Unknown,
            NetworkStatus::Online => JsNetworkStatus::Online,
            NetworkStatus::Offline => JsNetworkStatus::Offline,
        }
    }
}

impl From<SyncState> for JsSyncState {
    fn from(s: SyncState) -> Self {
        match s {
            SyncState::Idle => JsSyncState::Idle,
            SyncState::Syncing => JsSyncState::Syncing,
            SyncState::Live => JsSyncState::Live,
            SyncState::BackingOff => JsSyncState::BackingOff,
            SyncState::Stopped => JsSyncState::Stopped,
        }
    }
}

impl From<ClientEvent> for JsClientEvent {
    fn from(e: ClientEvent) -> Self {
        match e {
            ClientEvent::MessagesChanged { room_id, ids } => {
                JsClientEvent::MessagesChanged { room_id, ids }
            }
            ClientEvent::NetworkStatusChanged { status } => JsClientEvent::NetworkStatusChanged {
                status: status.into(),
            },
            ClientEvent::SyncStateChanged { state } => JsClientEvent::SyncStateChanged {
                state: state.into(),
            },
            ClientEvent::OutboxChanged { pending, failed } => {
                JsClientEvent::OutboxChanged { pending, failed }
            }
            ClientEvent::Unauthorized { reason } => JsClientEvent::Unauthorized { reason },
            ClientEvent::TypingChanged { room_id, user_ids } => {
                JsClientEvent::TypingChanged { room_id, user_ids }
            }
            ClientEvent::UnreadChanged { total } => JsClientEvent::UnreadChanged { total },
        }
    }
}

/// Converts the FFI diff enums (one per item type) into [`JsDiff`].
macro_rules! js_diff_from {
    ($diff:ty, $item:ty) => {
        impl From<$diff> for JsDiff<$item> {
            fn from(d: $diff) -> Self {
                type D = $diff;
                match d {
                    D::Reset { items } => JsDiff::Reset {
                        items: items.into_iter().map(Into::into).collect(),
                    },
                    D::PushBack { item } => JsDiff::PushBack { item: item.into() },
                    D::PushFront { item } => JsDiff::PushFront { item: item.into() },
                    D::Insert { index, item } => JsDiff::Insert {
                        index,
                        item: item.into(),
                    },
                    D::Set { index, item } => JsDiff::Set {
                        index,
                        item: item.into(),
                    },
                    D::Remove { index } => JsDiff::Remove { index },
                }
            }
        }
    };
}

js_diff_from!(TimelineDiff, JsMessage);
js_diff_from!(RoomListDiff, JsRoom);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{AuthOptions, ConfigureOptions, LoginUser, ProbeOptions};
    use ts_rs::TS;

    /// The TypeScript declarations of every JSON shape, in the order src/ reads best.
    fn declarations() -> String {
        let decls = [
            ErrorCode::decl(),
            JsError::decl(),
            JsUser::decl(),
            JsMessageState::decl(),
            JsPart::decl(),
            JsReaction::decl(),
            JsMessage::decl(),
            JsRoom::decl(),
            JsSession::decl(),
            JsSyncReport::decl(),
            JsChangeKind::decl(),
            JsOutboxEntry::decl(),
            JsNetworkStatus::decl(),
            JsSyncState::decl(),
            JsStatus::decl(),
            JsClientEvent::decl(),
            JsDiff::<JsMessage>::decl(),
            JsPagination::decl(),
            AuthOptions::decl(),
            ProbeOptions::decl(),
            ConfigureOptions::decl(),
            LoginUser::decl(),
        ];
        let mut out = String::from(
            "// Generated from bindings/src/js.rs and bindings/src/options.rs (the JSON the native\n\
             // host hands to JS) by the Rust test `typescript_declarations_are_current`. Do not\n\
             // edit: change the Rust types, then run\n\
             //   CHATSYNC_UPDATE_TS=1 cargo nextest run -p chatsync-ffi typescript\n\n",
        );
        for decl in decls {
            out.push_str("export ");
            out.push_str(decl.trim());
            out.push_str("\n\n");
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    }

    /// src/generated/native.ts is what the Rust types render to: the JS types have one source.
    #[test]
    fn typescript_declarations_are_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../src/generated/native.ts");
        let expected = declarations();
        if std::env::var_os("CHATSYNC_UPDATE_TS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} is not what the Rust types render to; run\n  CHATSYNC_UPDATE_TS=1 cargo nextest run -p chatsync-ffi typescript\n--- expected:\n{expected}",
            path.display()
        );
    }

    #[test]
    fn every_chat_error_case_has_its_code_and_keeps_its_fields() {
        let cases = [
            (
                ChatError::Offline {
                    detail: "server busy (503): x, retry after 7 s".into(),
                    retry_after_secs: Some(7),
                },
                "E_OFFLINE",
            ),
            (
                ChatError::Unauthorized { detail: "u".into() },
                "E_UNAUTHORIZED",
            ),
            (ChatError::NotFound { detail: "n".into() }, "E_NOT_FOUND"),
            (
                ChatError::Rejected {
                    code: "forbidden".into(),
                    detail: "rejected by server (forbidden): no".into(),
                },
                "E_REJECTED",
            ),
            (ChatError::Protocol { detail: "p".into() }, "E_PROTOCOL"),
            (ChatError::Storage { detail: "s".into() }, "E_STORAGE"),
            (
                ChatError::InvalidInput { detail: "i".into() },
                "E_INVALID_INPUT",
            ),
            (ChatError::Busy { detail: "b".into() }, "E_BUSY"),
            (ChatError::ShutDown { detail: "d".into() }, "E_SHUT_DOWN"),
            (ChatError::Internal { detail: "x".into() }, "E_INTERNAL"),
        ];
        for (error, code) in cases {
            let text = error.to_string();
            let js = JsError::from(error);
            assert_eq!(js.code.as_str(), code);
            assert_eq!(js.message, text, "the readable text, not a field list");
        }
        let rejected = JsError::from(ChatError::Rejected {
            code: "forbidden".into(),
            detail: "d".into(),
        });
        assert_eq!(rejected.server_code.as_deref(), Some("forbidden"));
        let offline = JsError::from(ChatError::Offline {
            detail: "d".into(),
            retry_after_secs: Some(7),
        });
        assert_eq!(offline.retry_after_secs, Some(7));
        // as_str and the serialized form are the same strings.
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn replies_and_events_have_the_shapes_js_reads() {
        let ok: Reply<Option<JsSession>> = Reply::Ok(None);
        assert_eq!(ok.to_json(), r#"{"ok":null}"#);
        let err: Reply<()> = Reply::from(Err::<(), _>(ChatError::Rejected {
            code: "forbidden".into(),
            detail: "rejected by server (forbidden): no".into(),
        }));
        assert_eq!(
            err.to_json(),
            r#"{"err":{"code":"E_REJECTED","message":"rejected by server (forbidden): no","retryAfterSecs":null,"serverCode":"forbidden"}}"#
        );
        let event = JsClientEvent::from(ClientEvent::SyncStateChanged {
            state: SyncState::BackingOff,
        });
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"type":"syncStateChanged","state":"backing_off"}"#
        );
        let event = JsClientEvent::from(ClientEvent::MessagesChanged {
            room_id: "r1".into(),
            ids: vec!["7".into()],
        });
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r#"{"type":"messagesChanged","roomId":"r1","ids":["7"]}"#
        );
        let diff: JsDiff<JsRoom> = JsDiff::Remove { index: 3 };
        assert_eq!(
            serde_json::to_string(&diff).unwrap(),
            r#"{"kind":"remove","index":3}"#
        );
    }
}
