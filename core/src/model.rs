//! What a chat is, as the app sees it: messages with their sender, parts, time and delivery
//! state; rooms; the reports of sync calls; the states of the network and the sync. These are
//! the API's types only: the store has its own (`store::*`), so an API change never changes the
//! stored format, and no UI library's shape lives here (GiftedChat's is made in JavaScript).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) use chatsync_protocol::time::now_rfc3339;

/// A user as shown next to a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUser {
    /// User id.
    pub id: String,
    /// Display name; the user id when no profile is known.
    pub name: String,
    /// Avatar URL, when the user set one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
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
    /// MIME type, e.g. `text/plain`.
    #[serde(rename = "type")]
    pub mime_type: String,
    /// Inline content (the text of a `text/plain` part).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Other fields of the part as a JSON object string, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_json: Option<String>,
}

/// A message of a room: sent (on the server) or sent from this device and still queued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// When the sender last edited it (an edit still queued shows at once, as `pending_change`).
    /// In JSON `edited`: the time, or `false`.
    #[serde(rename = "edited", with = "time_or_false")]
    pub edited_at: Option<String>,
    /// Deleted by its sender: a tombstone (`text` empty, no parts, no reactions; its place kept).
    pub deleted: bool,
    /// Reactions by key, with whether the user reacted (queued toggles shown already). In JSON
    /// an object: key -> `{"count": n, "me": bool}`.
    #[serde(with = "reactions_by_key")]
    pub reactions: Vec<ReactionSummary>,
    /// Members other than the sender who have read it (their receipt is at or after it).
    pub read_by: Vec<String>,
    /// A change of this user to the message is queued, not yet accepted by the server (an edit,
    /// a deletion or a reaction shown ahead of the server).
    pub pending_change: bool,
}

/// `Option<String>` as the time or `false`.
mod time_or_false {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(t) => t.serialize(s),
            None => false.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Edited {
            Time(String),
            Flag(#[allow(dead_code)] bool),
        }
        Ok(match Edited::deserialize(d)? {
            Edited::Time(t) => Some(t),
            Edited::Flag(_) => None,
        })
    }
}

/// Reactions as an object keyed by reaction key, in key order.
mod reactions_by_key {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ReactionSummary;

    #[derive(Serialize, Deserialize)]
    struct Count {
        count: u32,
        me: bool,
    }

    pub fn serialize<S: Serializer>(v: &[ReactionSummary], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|r| (r.key.as_str(), Count { count: r.count, me: r.me }))
            .collect::<BTreeMap<_, _>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ReactionSummary>, D::Error> {
        let map = BTreeMap::<String, Count>::deserialize(d)?;
        Ok(map
            .into_iter()
            .map(|(key, c)| ReactionSummary {
                key,
                count: c.count,
                me: c.me,
            })
            .collect())
    }
}

/// The reactions of one key on a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionSummary {
    /// The key (an emoji, a short code).
    pub key: String,
    /// How many members reacted with it.
    pub count: u32,
    /// Whether the user did.
    pub me: bool,
}

/// Who is logged in on this device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The logged-in user and the profile given at login.
    pub user: ChatUser,
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
    /// Newest message held on the device (a queued one included), if any.
    pub last_message: Option<ChatMessage>,
    /// The user's unread messages in the room, as the server counted them (0 once the user
    /// marked it read on this device, ahead of the server).
    pub unread: u32,
}

/// A change to a list the app renders (a timeline, the room list), in the spirit of
/// matrix-sdk's `VectorDiff`: applied in order to the app's copy, they keep it equal to the
/// core's. Indexes are positions in the list at the moment the diff applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ListDiff<T> {
    /// Replace everything with `items` (the first update a listener gets, and after a jump).
    Reset {
        /// The whole list.
        items: Vec<T>,
    },
    /// Add at the end.
    PushBack {
        /// The new item.
        item: T,
    },
    /// Add at the start.
    PushFront {
        /// The new item.
        item: T,
    },
    /// Add at `index`, shifting the rest back.
    Insert {
        /// Where.
        index: u32,
        /// The new item.
        item: T,
    },
    /// Replace the item at `index` (same identity, new content: an echo turned sent, an edit).
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

/// A change to a timeline's items.
pub type TimelineDiff = ListDiff<ChatMessage>;
/// A change to the room list.
pub type RoomListDiff = ListDiff<RoomSummary>;

/// Result of `Timeline::paginate_backwards`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaginationOutcome {
    /// Messages added at the top of the timeline.
    pub added: u32,
    /// Whether still older messages exist (on the device or the server).
    pub has_more: bool,
}

/// Result of `ChatClient::load_older`.
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

/// How a background sync ended, for the OS task that ran it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackgroundOutcome {
    /// Synced and flushed.
    #[default]
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

impl BackgroundOutcome {
    /// Whether the OS task should be scheduled again soon (Android JobScheduler's
    /// `jobFinished(params, wantsReschedule)`, iOS's `setTaskCompleted(success: false)`).
    pub fn retry_later(self) -> bool {
        matches!(
            self,
            BackgroundOutcome::TimedOut | BackgroundOutcome::Offline | BackgroundOutcome::Busy
        )
    }
}

/// Result of `background_sync`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackgroundSyncReport {
    /// How it ended.
    pub outcome: BackgroundOutcome,
    /// Whether the OS task should run again soon (see [`BackgroundOutcome::retry_later`]).
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

/// What a queued change does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// An entry of the outbox, as `outbox()` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// The client txn id; for a send, also the message's `id`.
    pub local_id: String,
    /// What it does.
    pub kind: ChangeKind,
    /// The message a change is about (its `id`), for edits, deletions and reactions.
    pub target_id: Option<String>,
    /// Room it is sent to.
    pub room_id: String,
    /// Text of its text/plain part (a send's or an edit's; a reaction's key).
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

/// What the sync is doing. `Stopped` is final: after `shutdown()` nothing changes any more.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_serialize_with_their_operation() {
        let d: ListDiff<u32> = ListDiff::Insert { index: 2, item: 7 };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"op":"insert","index":2,"item":7}"#
        );
    }

    #[test]
    fn only_transient_background_outcomes_ask_to_run_again() {
        use BackgroundOutcome::*;
        let again: Vec<_> = [Completed, TimedOut, Offline, Busy, Unauthorized, Failed]
            .into_iter()
            .filter(|o| o.retry_later())
            .collect();
        assert_eq!(again, [TimedOut, Offline, Busy]);
    }
}
