//! App-facing types. Messages come in the shape react-native-gifted-chat renders (`_id`, `text`,
//! `createdAt`, `user {_id, name, avatar}`, `pending` / `sent` / `failed`), so the JSON the CLI
//! prints is exactly what the apps get.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A user as shown next to a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUser {
    #[serde(rename = "_id")]
    /// User id.
    pub id: String,
    /// Display name; the user id when no profile is known.
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Avatar URL, when the user set one.
    pub avatar: Option<String>,
}

/// Delivery state of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Stored on the server.
    Sent,
    /// Queued on the device, not yet accepted by the server.
    Pending,
    /// Rejected by the server for good; see `failure_reason`. `retry` or `discard` it.
    Failed,
}

/// One part of a multipart message, kept even when it is not text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessagePart {
    #[serde(rename = "type")]
    /// MIME type, e.g. `text/plain`.
    pub mime_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Inline content (the text of a `text/plain` part).
    pub content: Option<String>,
    /// Other fields of the part as a JSON object string, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_json: Option<String>,
}

/// A message as a chat screen shows it (GiftedChat's shape).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    /// The server id as a string once sent; the local id (txn id) while pending or failed.
    #[serde(rename = "_id")]
    pub id: String,
    /// The server's id once sent; `None` while pending or failed.
    pub server_id: Option<u64>,
    /// The client txn id, for messages sent from this device.
    pub local_id: Option<String>,
    /// The room it belongs to.
    pub room_id: String,
    /// Text of the first text/plain part ("" when there is none).
    pub text: String,
    /// RFC 3339.
    pub created_at: String,
    /// The sender, with the display name and avatar of their stored profile.
    pub user: ChatUser,
    /// Delivery state; `pending`, `sent` and `failed` repeat it as GiftedChat's booleans.
    pub state: MessageState,
    /// Queued, not yet accepted by the server (GiftedChat's clock icon).
    pub pending: bool,
    /// Stored on the server (GiftedChat's tick).
    pub sent: bool,
    /// Rejected for good; see `failure_reason`.
    pub failed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The server's reason, when failed.
    pub failure_reason: Option<String>,
    /// Every part of the message, text or not, in order.
    pub parts: Vec<MessagePart>,
}

/// What the app remembers between launches: who is logged in, the friend, the open room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The logged-in user and the profile given at login.
    pub user: ChatUser,
    /// The friend chosen with `set_friend`.
    pub friend_id: Option<String>,
    /// The direct room with the friend, once opened.
    pub room_id: Option<String>,
}

/// A room as the device knows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoomSummary {
    /// Room id.
    pub id: String,
    /// Display name; `None` for direct rooms.
    pub name: Option<String>,
    /// Member user ids, sorted.
    pub member_ids: Vec<String>,
    /// Newest message held on the device, if any.
    pub last_message: Option<ChatMessage>,
}

/// Result of `load_older`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadOlderResult {
    /// Newest first, like `messages`.
    pub messages: Vec<ChatMessage>,
    /// Whether still older messages exist (on the device or the server).
    pub has_more: bool,
}

/// Result of `sync_once` (and of the CLI's `sync`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// Whether the server answered the sync (offline is a report, not an error).
    pub online: bool,
    /// New messages stored, per room id.
    pub new_messages: BTreeMap<String, u32>,
    /// Outbox messages accepted by the server during this call.
    pub sent: u32,
    /// Outbox messages still pending after this call.
    pub pending: u32,
    /// Outbox messages failed (waiting for retry or discard).
    pub failed: u32,
}

/// A new message summarized for a local notification.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewMessagePreview {
    /// Room of the message.
    pub room_id: String,
    /// Server id of the message.
    pub message_id: u64,
    /// User id of the sender.
    pub sender_id: String,
    /// Display name of the sender (the id when no profile is known).
    pub sender_name: String,
    /// The text, cut to a notification-sized preview.
    pub preview: String,
}

/// Result of `background_sync`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackgroundSyncReport {
    /// False when the budget ran out before sync and flush completed.
    pub finished: bool,
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
    /// Why it did not finish, when it did not (offline, busy store, unauthorized...).
    pub error: Option<String>,
}

/// An entry of the outbox, as `outbox()` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The client txn id, also the echo's `_id`.
    pub local_id: String,
    /// Room it is sent to.
    pub room_id: String,
    /// Text of its text/plain part.
    pub text: String,
    /// RFC 3339, when it was queued.
    pub created_at: String,
    /// `Pending` or `Failed`.
    pub state: MessageState,
    /// Send attempts so far.
    pub attempts: u32,
    /// The server's reason, when failed.
    pub failure_reason: Option<String>,
}

/// Network status as the core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkStatus {
    /// Before the first answer.
    Unknown,
    /// The server answers.
    Online,
    /// The server cannot be reached.
    Offline,
}

/// App lifecycle state, forwarded by the platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppState {
    /// In the foreground, interactive.
    Active,
    /// In the foreground, not interactive (a call, the app switcher).
    Inactive,
    /// In the background.
    Background,
}

/// What the sync engine is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Nothing running.
    Idle,
    /// A sync or flush is in progress.
    Syncing,
    /// Holding a live long-poll.
    Live,
    /// Waiting after failures before trying again.
    BackingOff,
    /// Shut down: nothing runs any more.
    Stopped,
}

pub(crate) use chatsync_protocol::time::now_rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_messages_serialize_in_gifted_chat_shape() {
        let m = ChatMessage {
            id: "42".into(),
            server_id: Some(42),
            local_id: None,
            room_id: "r1".into(),
            text: "hi".into(),
            created_at: "2026-11-25T06:00:00.000Z".into(),
            user: ChatUser {
                id: "alice".into(),
                name: "Alice".into(),
                avatar: None,
            },
            state: MessageState::Sent,
            pending: false,
            sent: true,
            failed: false,
            failure_reason: None,
            parts: vec![],
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["_id"], "42");
        assert_eq!(v["createdAt"], "2026-11-25T06:00:00.000Z");
        assert_eq!(v["user"]["_id"], "alice");
        assert_eq!(v["user"]["name"], "Alice");
        assert_eq!(v["sent"], true);
        assert_eq!(v["pending"], false);
    }
}
