//! Messages, rooms, reports and states as UniFFI records and enums, each converted from (or to)
//! its core twin with `From`. Field names and meanings are the core's (what a chat is; no UI
//! library's shape: GiftedChat's is made in JavaScript); the core's docs are repeated here
//! because they become the Kotlin and Swift docs.

use std::collections::HashMap;

/// A user as shown next to a message.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ChatUser {
    /// The user id.
    pub id: String,
    /// Display name; the user id when no profile is known.
    pub name: String,
    /// Avatar URL, when the user set one.
    pub avatar_url: Option<String>,
}

/// Delivery state of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum MessageState {
    /// Stored on the server.
    Sent,
    /// Queued on the device, not yet accepted by the server.
    Pending,
    /// Rejected by the server for good; see `failure_reason`. `retry` or `discard` it.
    Failed,
}

/// One part of a multipart message, kept even when it is not text.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct MessagePart {
    /// The part's MIME type, e.g. `text/plain`.
    pub mime_type: String,
    /// The part's content, when it has one.
    pub content: Option<String>,
    /// Other fields of the part as a JSON object string, when there are any.
    pub extra_json: Option<String>,
}

/// A message of a room: sent (on the server) or sent from this device and still queued.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct ChatMessage {
    /// Stable identity across its life: the local id (txn id) for a message sent from this
    /// device, pending, failed or sent; the server id otherwise. A timeline item keeps it when
    /// its echo turns sent.
    pub id: String,
    /// The server's id once sent; `None` while pending or failed.
    pub server_id: Option<u64>,
    /// The client txn id, for messages sent from this device.
    pub local_id: Option<String>,
    /// The room it belongs to.
    pub room_id: String,
    /// The sender, with the display name and avatar of their stored profile.
    pub sender: ChatUser,
    /// Text of the first `text/plain` part ("" when there is none).
    pub text: String,
    /// Every part of the message, text or not, in order.
    pub parts: Vec<MessagePart>,
    /// RFC 3339, UTC, with milliseconds.
    pub created_at: String,
    /// Delivery state.
    pub state: MessageState,
    /// The server's reason, when failed.
    pub failure_reason: Option<String>,
    /// When the sender last edited it, RFC 3339; `None` when never edited. An edit still queued
    /// shows at once (with `pending_change`).
    pub edited_at: Option<String>,
    /// Deleted by its sender: a tombstone (`text` empty, no parts, no reactions) that keeps its
    /// place in the timeline.
    pub deleted: bool,
    /// Reactions by key, in key order, with whether the user reacted (queued toggles shown
    /// already).
    pub reactions: Vec<ReactionSummary>,
    /// Members other than the sender who have read it (their read receipt is at or after it).
    pub read_by: Vec<String>,
    /// A change of this user to the message (an edit, a deletion, a reaction) is queued and
    /// shown ahead of the server.
    pub pending_change: bool,
}

/// The reactions of one key on a message.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct ReactionSummary {
    /// The key (an emoji, a short code).
    pub key: String,
    /// How many members reacted with it.
    pub count: u32,
    /// Whether the user did.
    pub me: bool,
}

/// What a queued change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum ChangeKind {
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

/// Who is logged in on this device.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct Session {
    /// The logged-in user and the profile given at login.
    pub user: ChatUser,
}

/// A room as the device knows it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct RoomSummary {
    /// The room id.
    pub id: String,
    /// The room's name, if it has one.
    pub name: Option<String>,
    /// Ids of the room's members.
    pub member_ids: Vec<String>,
    /// Newest message held on the device, if any.
    pub last_message: Option<ChatMessage>,
    /// The user's unread messages in the room, as the server counted them (0 at once when the
    /// user marks it read on this device).
    pub unread: u32,
}

/// Result of `Timeline.paginate_backwards`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Record)]
pub struct PaginationOutcome {
    /// Messages added at the top of the timeline.
    pub added: u32,
    /// Whether still older messages exist (on the device or the server).
    pub has_more: bool,
}

/// Result of `load_older`.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct LoadOlderResult {
    /// Newest first, like `messages`.
    pub messages: Vec<ChatMessage>,
    /// Whether still older messages exist (on the device or the server).
    pub has_more: bool,
}

/// Result of `sync_once`.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct SyncReport {
    /// Whether the server answered.
    pub online: bool,
    /// New messages stored, per room id.
    pub new_messages: HashMap<String, u32>,
    /// Outbox messages accepted by the server during this call.
    pub sent: u32,
    /// Outbox messages still waiting.
    pub pending: u32,
    /// Outbox messages rejected for good.
    pub failed: u32,
}

/// A new message summarized for a local notification.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct NewMessagePreview {
    /// The room of the message.
    pub room_id: String,
    /// The server id of the message.
    pub message_id: u64,
    /// Who sent it.
    pub sender_id: String,
    /// The sender's display name.
    pub sender_name: String,
    /// The text, cut to a notification-sized preview.
    pub preview: String,
}

/// How a background sync ended, for the OS task that ran it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum BackgroundOutcome {
    /// Synced and flushed.
    Completed,
    /// The budget ran out first; what was done is kept.
    TimedOut,
    /// The server could not be reached, or answered with an error or "busy".
    Offline,
    /// Another process (the app itself) holds the store.
    Busy,
    /// The token was refused: the user must sign in again; retrying will not help.
    Unauthorized,
    /// Anything else (a damaged store, a protocol error, a bug): see `error`.
    Failed,
}

/// Result of `background_sync`.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct BackgroundSyncReport {
    /// How it ended.
    pub outcome: BackgroundOutcome,
    /// Whether the OS task should run again soon (Android JobScheduler's
    /// `jobFinished(params, wantsReschedule)`, iOS's `setTaskCompleted(success: false)`): true
    /// for `TimedOut`, `Offline` and `Busy`.
    pub retry_later: bool,
    /// Whether the server answered.
    pub online: bool,
    /// New messages from other users, for notifications.
    pub new_messages: Vec<NewMessagePreview>,
    /// Outbox messages accepted by the server during this call.
    pub sent: u32,
    /// Outbox messages still pending afterwards.
    pub pending: u32,
    /// Outbox messages failed afterwards.
    pub failed: u32,
    /// What went wrong, in words, when it did not complete.
    pub error: Option<String>,
}

/// An entry of the outbox, as `outbox()` lists it.
#[derive(Clone, Debug, PartialEq, uniffi::Record)]
pub struct OutboxEntry {
    /// The local id (txn id) of the queued change; for a send, also the message's `id`.
    pub local_id: String,
    /// What it does.
    pub kind: ChangeKind,
    /// The message a change is about (its `id`), for edits, deletions and reactions.
    pub target_id: Option<String>,
    /// The room it goes to.
    pub room_id: String,
    /// A send's or an edit's text; a reaction's key.
    pub text: String,
    /// When it was queued, RFC 3339.
    pub created_at: String,
    /// `Pending` or `Failed`.
    pub state: MessageState,
    /// How many times sending was tried.
    pub attempts: u32,
    /// Why the server rejected it, when it did.
    pub failure_reason: Option<String>,
}

/// Network status as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum NetworkStatus {
    /// Before the first answer.
    Unknown,
    /// The server answers.
    Online,
    /// The server does not answer (or the platform says there is no network).
    Offline,
}

/// App lifecycle state, forwarded by the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum AppState {
    /// In the foreground and interactive.
    Active,
    /// Visible but not interactive (iOS), or transitioning.
    Inactive,
    /// In the background.
    Background,
}

/// What the sync engine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum SyncState {
    /// Nothing running.
    Idle,
    /// A sync request is running.
    Syncing,
    /// Holding a live long-poll.
    Live,
    /// Waiting after failures before trying again.
    BackingOff,
    /// Shut down: nothing runs any more (final).
    Stopped,
}

/// Converts a list of core values into a list of FFI values.
pub(crate) fn convert_all<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}

impl From<chatsync_core::ChatUser> for ChatUser {
    fn from(u: chatsync_core::ChatUser) -> Self {
        ChatUser {
            id: u.id,
            name: u.name,
            avatar_url: u.avatar_url,
        }
    }
}

impl From<chatsync_core::MessageState> for MessageState {
    fn from(s: chatsync_core::MessageState) -> Self {
        use chatsync_core::MessageState as S;
        match s {
            S::Sent => MessageState::Sent,
            S::Pending => MessageState::Pending,
            S::Failed => MessageState::Failed,
        }
    }
}

impl From<chatsync_core::MessagePart> for MessagePart {
    fn from(p: chatsync_core::MessagePart) -> Self {
        MessagePart {
            mime_type: p.mime_type,
            content: p.content,
            extra_json: p.extra_json,
        }
    }
}

impl From<chatsync_core::ChatMessage> for ChatMessage {
    fn from(m: chatsync_core::ChatMessage) -> Self {
        ChatMessage {
            id: m.id,
            server_id: m.server_id,
            local_id: m.local_id,
            room_id: m.room_id,
            sender: m.sender.into(),
            text: m.text,
            parts: convert_all(m.parts),
            created_at: m.created_at,
            state: m.state.into(),
            failure_reason: m.failure_reason,
            edited_at: m.edited_at,
            deleted: m.deleted,
            reactions: convert_all(m.reactions),
            read_by: m.read_by,
            pending_change: m.pending_change,
        }
    }
}

impl From<chatsync_core::ReactionSummary> for ReactionSummary {
    fn from(r: chatsync_core::ReactionSummary) -> Self {
        ReactionSummary {
            key: r.key,
            count: r.count,
            me: r.me,
        }
    }
}

impl From<chatsync_core::ChangeKind> for ChangeKind {
    fn from(k: chatsync_core::ChangeKind) -> Self {
        use chatsync_core::ChangeKind as K;
        match k {
            K::Send => ChangeKind::Send,
            K::Edit => ChangeKind::Edit,
            K::Delete => ChangeKind::Delete,
            K::React => ChangeKind::React,
            K::Receipt => ChangeKind::Receipt,
        }
    }
}

impl From<chatsync_core::Session> for Session {
    fn from(s: chatsync_core::Session) -> Self {
        Session {
            user: s.user.into(),
        }
    }
}

impl From<chatsync_core::RoomSummary> for RoomSummary {
    fn from(r: chatsync_core::RoomSummary) -> Self {
        RoomSummary {
            id: r.id,
            name: r.name,
            member_ids: r.member_ids,
            last_message: r.last_message.map(Into::into),
            unread: r.unread,
        }
    }
}

impl From<chatsync_core::PaginationOutcome> for PaginationOutcome {
    fn from(p: chatsync_core::PaginationOutcome) -> Self {
        PaginationOutcome {
            added: p.added,
            has_more: p.has_more,
        }
    }
}

impl From<chatsync_core::LoadOlderResult> for LoadOlderResult {
    fn from(r: chatsync_core::LoadOlderResult) -> Self {
        LoadOlderResult {
            messages: convert_all(r.messages),
            has_more: r.has_more,
        }
    }
}

impl From<chatsync_core::SyncReport> for SyncReport {
    fn from(r: chatsync_core::SyncReport) -> Self {
        SyncReport {
            online: r.online,
            new_messages: r.new_messages.into_iter().collect(),
            sent: r.sent,
            pending: r.pending,
            failed: r.failed,
        }
    }
}

impl From<chatsync_core::NewMessagePreview> for NewMessagePreview {
    fn from(p: chatsync_core::NewMessagePreview) -> Self {
        NewMessagePreview {
            room_id: p.room_id,
            message_id: p.message_id,
            sender_id: p.sender_id,
            sender_name: p.sender_name,
            preview: p.preview,
        }
    }
}

impl From<chatsync_core::BackgroundSyncReport> for BackgroundSyncReport {
    fn from(r: chatsync_core::BackgroundSyncReport) -> Self {
        BackgroundSyncReport {
            outcome: r.outcome.into(),
            retry_later: r.retry_later,
            online: r.online,
            new_messages: convert_all(r.new_messages),
            sent: r.sent,
            pending: r.pending,
            failed: r.failed,
            error: r.error,
        }
    }
}

impl From<chatsync_core::BackgroundOutcome> for BackgroundOutcome {
    fn from(o: chatsync_core::BackgroundOutcome) -> Self {
        use chatsync_core::BackgroundOutcome as O;
        match o {
            O::Completed => BackgroundOutcome::Completed,
            O::TimedOut => BackgroundOutcome::TimedOut,
            O::Offline => BackgroundOutcome::Offline,
            O::Busy => BackgroundOutcome::Busy,
            O::Unauthorized => BackgroundOutcome::Unauthorized,
            O::Failed => BackgroundOutcome::Failed,
        }
    }
}

impl From<chatsync_core::OutboxEntry> for OutboxEntry {
    fn from(e: chatsync_core::OutboxEntry) -> Self {
        OutboxEntry {
            local_id: e.local_id,
            kind: e.kind.into(),
            target_id: e.target_id,
            room_id: e.room_id,
            text: e.text,
            created_at: e.created_at,
            state: e.state.into(),
            attempts: e.attempts,
            failure_reason: e.failure_reason,
        }
    }
}

impl From<chatsync_core::NetworkStatus> for NetworkStatus {
    fn from(s: chatsync_core::NetworkStatus) -> Self {
        use chatsync_core::NetworkStatus as S;
        match s {
            S::Unknown => NetworkStatus::Unknown,
            S::Online => NetworkStatus::Online,
            S::Offline => NetworkStatus::Offline,
        }
    }
}

impl From<AppState> for chatsync_core::AppState {
    fn from(s: AppState) -> Self {
        use chatsync_core::AppState as S;
        match s {
            AppState::Active => S::Active,
            AppState::Inactive => S::Inactive,
            AppState::Background => S::Background,
        }
    }
}

impl From<chatsync_core::SyncState> for SyncState {
    fn from(s: chatsync_core::SyncState) -> Self {
        use chatsync_core::SyncState as S;
        match s {
            S::Idle => SyncState::Idle,
            S::Syncing => SyncState::Syncing,
            S::Live => SyncState::Live,
            S::BackingOff => SyncState::BackingOff,
            S::Stopped => SyncState::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_report_keeps_every_room_count() {
        let mut core = chatsync_core::SyncReport {
            online: true,
            sent: 2,
            pending: 1,
            failed: 0,
            ..Default::default()
        };
        core.new_messages.insert("r1".into(), 3);
        core.new_messages.insert("r2".into(), 5);
        let ffi = SyncReport::from(core);
        assert_eq!(ffi.new_messages.len(), 2);
        assert_eq!(ffi.new_messages["r2"], 5);
        assert_eq!(
            (ffi.online, ffi.sent, ffi.pending, ffi.failed),
            (true, 2, 1, 0)
        );
    }

    /// Issue 13: a background sync reported failure as free text, so the Android job said
    /// "done" for Busy or Unauthorized.
    #[test]
    fn a_background_report_keeps_its_typed_outcome_and_retry_advice() {
        use chatsync_core::BackgroundOutcome as O;
        let pairs = [
            (O::Completed, BackgroundOutcome::Completed),
            (O::TimedOut, BackgroundOutcome::TimedOut),
            (O::Offline, BackgroundOutcome::Offline),
            (O::Busy, BackgroundOutcome::Busy),
            (O::Unauthorized, BackgroundOutcome::Unauthorized),
            (O::Failed, BackgroundOutcome::Failed),
        ];
        for (core, ffi) in pairs {
            let report = BackgroundSyncReport::from(chatsync_core::BackgroundSyncReport {
                outcome: core,
                retry_later: core.retry_later(),
                error: Some("why".into()),
                ..Default::default()
            });
            assert_eq!(report.outcome, ffi);
            assert_eq!(report.retry_later, core.retry_later());
            assert_eq!(report.error.as_deref(), Some("why"));
        }
    }
}

/// How a damaged store was read by [`crate::client::recover_store`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
pub enum RecoveryMethod {
    /// The storage engine still opened it: entries were read one by one.
    Opened,
    /// It would not open: its files were scanned for what the store writes.
    Scanned,
}

/// What [`crate::client::recover_store`] found and did.
#[derive(Clone, Debug, PartialEq, Eq, uniffi::Record)]
pub struct RecoveryReport {
    /// Whether the store was damaged and rebuilt (false: healthy, nothing changed).
    pub recovered: bool,
    /// What was wrong with it, when it was damaged.
    pub damage: Option<String>,
    /// Where the damaged directory was moved (contents untouched), when rebuilt.
    pub damaged_dir: Option<String>,
    /// How the damaged store was read, when rebuilt.
    pub method: Option<RecoveryMethod>,
    /// Queued messages kept, under their original txn ids.
    pub requeued: u32,
    /// Whether the login was carried over.
    pub session_restored: bool,
    /// What could not be read (empty: nothing queued was lost).
    pub unreadable: Vec<String>,
}

impl From<chatsync_core::RecoveryReport> for RecoveryReport {
    fn from(r: chatsync_core::RecoveryReport) -> Self {
        RecoveryReport {
            recovered: r.recovered,
            damage: r.damage,
            damaged_dir: r.damaged_dir,
            method: r.method.map(|m| match m {
                chatsync_core::RecoveryMethod::Opened => RecoveryMethod::Opened,
                chatsync_core::RecoveryMethod::Scanned => RecoveryMethod::Scanned,
            }),
            requeued: r.requeued,
            session_restored: r.session_restored,
            unreadable: r.unreadable,
        }
    }
}
