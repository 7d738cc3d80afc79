//! Sync protocol v2: one ordered stream of changes per user, and what happens to messages after
//! they are sent (edits, deletions, reactions), who has read what (receipts, unread counts) and
//! who is typing. docs/protocol.md ("Protocol v2") is the prose; v1's shapes and routes are
//! unchanged and still served.
//!
//! Every change in a room (a new message, an edit, a deletion, a reaction added or removed, a
//! read receipt, a member joining) takes a position in one strictly increasing stream; a sync
//! token is a position (`p<pos>`). A device that syncs from a token receives every change after
//! it, once, in order of position: new messages as in v1 (a `limited` room keeps v1's gap
//! machinery), and changes to messages it may already hold as their current state (`updates`).
//! An answer is bounded: with `has_more`, the device syncs again at once from `next_batch`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

use crate::{Part, TEXT_PLAIN};

/// Longest reaction key, in bytes (an emoji sequence, a short code).
pub const MAX_REACTION_KEY_BYTES: usize = 32;
/// Most changes to older messages (updates, receipts, members) in one sync answer; the rest
/// follow with `has_more`.
pub const SYNC_MAX_CHANGES: usize = 500;
/// Most reaction keys one user has on one message at once; adding another is a 409 (a bound on
/// what one member can make every sync of the message carry).
pub const MAX_REACTION_KEYS_PER_USER: usize = 20;
/// How long a "typing" lasts unless renewed, in milliseconds.
pub const TYPING_TTL_MS: u64 = 6_000;
/// Fewest milliseconds between two typing notices of one user in one room; faster ones are 429.
pub const TYPING_MIN_INTERVAL_MS: u64 = 1_000;

/// A sync token of protocol v2: the position in the change stream the device has seen.
pub fn token(pos: u64) -> String {
    format!("p{pos}")
}

/// The position a v2 sync token stands for; `None` for anything else (a v1 token included).
/// A server may append `_<n>` of its own after the position (the reference server's typing mark,
/// see docs/protocol.md); the position is what comes before it. Plain decimal only: no sign.
pub fn parse_token(token: &str) -> Option<u64> {
    let rest = token.strip_prefix('p')?;
    let pos = match rest.split_once('_') {
        Some((pos, mark)) => {
            decimal(mark)?;
            pos
        }
        None => rest,
    };
    decimal(pos)
}

/// A plain decimal number (no sign, not empty).
fn decimal(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The reactions of one key on a message, as the requesting user sees them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Reaction {
    /// The key (an emoji, a short code), at most [`MAX_REACTION_KEY_BYTES`] bytes.
    pub key: String,
    /// How many members reacted with it.
    pub count: u32,
    /// Whether the requesting user is one of them.
    pub me: bool,
}

/// A message with its state: v1's fields plus what happened to it after it was sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
// Named `v2.Message` in the OpenAPI document, beside v1's `Message`.
#[cfg_attr(feature = "openapi", schema(as = v2::Message))]
pub struct Message {
    /// Server-assigned, strictly increasing across all rooms; never reused.
    pub id: u64,
    /// The sender.
    pub user_id: String,
    /// The room it was sent to.
    pub room_id: String,
    /// Its content, in the order sent (edited: the new content; deleted: empty).
    pub parts: Vec<Part>,
    /// RFC 3339, UTC: when it was sent.
    pub created_at: String,
    /// RFC 3339, UTC: its last change.
    pub updated_at: String,
    /// When its sender last edited it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// Deleted by its sender: a tombstone (no parts, no reactions); its place is kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Reactions by key, in the order they were first given.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// The sending device's txn id, only in answers to its sender (so a device that crashed
    /// between the server's accept and its own record recognises its message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txn_id: Option<String>,
}

impl Message {
    /// The content of the first `text/plain` part, which is what a chat screen shows.
    pub fn text(&self) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.mime_type == TEXT_PLAIN)
            .and_then(|p| p.content.as_deref())
    }

    /// The v1 shape of this message (v1 clients see current content; a deleted one is not
    /// shown to them at all).
    pub fn to_v1(&self) -> crate::Message {
        crate::Message {
            id: self.id,
            user_id: self.user_id.clone(),
            room_id: self.room_id.clone(),
            parts: self.parts.clone(),
            created_at: self.created_at.clone(),
            updated_at: self.updated_at.clone(),
        }
    }
}

impl From<crate::Message> for Message {
    /// A v1 message as v2 states it: never edited, not deleted, no reactions.
    fn from(m: crate::Message) -> Self {
        Message {
            id: m.id,
            user_id: m.user_id,
            room_id: m.room_id,
            parts: m.parts,
            created_at: m.created_at,
            updated_at: m.updated_at,
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            txn_id: None,
        }
    }
}

/// Body of `PUT /v2/rooms/{room_id}/messages/{message_id}/edits/{txn_id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EditRequest {
    /// The new content (the same rules as a send).
    pub parts: Vec<Part>,
}

/// Body of `PUT /v2/rooms/{room_id}/messages/{message_id}/reactions/{txn_id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReactionRequest {
    /// The key.
    pub key: String,
    /// `true` to add the user's reaction with this key, `false` to remove it (either is a
    /// no-op when already so).
    pub on: bool,
}

/// Body of `PUT /v2/rooms/{room_id}/receipt/{txn_id}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReceiptRequest {
    /// The newest message of the room the user has read (a message of this room).
    pub message_id: u64,
}

/// Answer of a receipt: the user's read-up-to now (receipts only move forward, so it may be
/// newer than the one sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReceiptResponse {
    /// The effective read-up-to message id.
    pub message_id: u64,
    /// The user's unread count in the room now.
    pub unread: u32,
}

/// Body of `PUT /v2/rooms/{room_id}/typing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TypingRequest {
    /// Started (or still) typing, or stopped.
    pub typing: bool,
}

/// One room in a v2 sync answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
// Named `v2.RoomSync` in the OpenAPI document, beside v1's `RoomSync`.
#[cfg_attr(feature = "openapi", schema(as = v2::RoomSync))]
pub struct RoomSync {
    /// New messages since the token, ascending; the newest `limit` of them when `limited`.
    #[serde(default)]
    pub messages: Vec<Message>,
    /// More new messages exist below `messages` than were sent (as v1: page back to fill).
    #[serde(default)]
    pub limited: bool,
    /// Messages sent before the token whose state changed since (edited, deleted, reacted to):
    /// their current state, ascending by id.
    #[serde(default)]
    pub updates: Vec<Message>,
    /// Members' read-up-to message ids that changed since the token (every member's on an
    /// initial sync or when the room is new to the device).
    #[serde(default)]
    pub receipts: BTreeMap<String, u64>,
    /// The requesting user's unread messages in the room now: messages from others after their
    /// read-up-to, not deleted.
    #[serde(default)]
    pub unread: u32,
    /// Members typing now (the requesting user excluded).
    #[serde(default)]
    pub typing: Vec<String>,
}

/// Answer of `GET /v2/sync`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
// Named `v2.SyncResponse` in the OpenAPI document, beside v1's `SyncResponse`.
#[cfg_attr(feature = "openapi", schema(as = v2::SyncResponse))]
pub struct SyncResponse {
    /// The token of the next sync (a position in the change stream).
    pub next_batch: String,
    /// Changes beyond this answer's bound are waiting: sync again at once from `next_batch`.
    #[serde(default)]
    pub has_more: bool,
    /// Rooms with a change, and on an initial sync every room of the user.
    pub rooms: BTreeMap<String, RoomSync>,
}

/// A page of v2 history (`GET /v2/rooms/{room_id}/messages`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
// Named `v2.HistoryResponse` in the OpenAPI document, beside v1's `HistoryResponse`.
#[cfg_attr(feature = "openapi", schema(as = v2::HistoryResponse))]
pub struct HistoryResponse {
    /// Ascending by id, with their current state.
    pub messages: Vec<Message>,
    /// Whether more exist in the requested direction.
    pub has_more: bool,
}

/// Checks a reaction key: 1 to [`MAX_REACTION_KEY_BYTES`] bytes, no control characters or
/// whitespace.
pub fn check_reaction_key(key: &str) -> Result<(), crate::limits::Invalid> {
    use crate::limits::Invalid;
    if key.is_empty() {
        return Err(Invalid::Empty {
            what: "reaction key",
        });
    }
    if key.len() > MAX_REACTION_KEY_BYTES {
        return Err(Invalid::TooLong {
            what: "reaction key",
            limit: MAX_REACTION_KEY_BYTES,
        });
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Invalid::BadCharacter {
            what: "reaction key",
            rule: "whitespace or control characters",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_positions_and_v1_tokens_are_not() {
        assert_eq!(token(42), "p42");
        assert_eq!(parse_token("p42"), Some(42));
        assert_eq!(parse_token("s42_1"), None);
        assert_eq!(parse_token("p"), None);
        assert_eq!(
            parse_token("p42_7"),
            Some(42),
            "a server's own mark after the position"
        );
        for bad in [
            "p+4", "p-4", "p4_", "p_4", "p4_x", "p4_5_6", "42", "P4", "p 4",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_message_without_news_has_v1s_shape_and_state_fields_only_when_set() {
        let m = Message {
            id: 7,
            user_id: "bob".into(),
            room_id: "r".into(),
            parts: vec![Part::text("hi")],
            created_at: "2026-12-02T00:00:00.000Z".into(),
            updated_at: "2026-12-02T00:00:00.000Z".into(),
            edited_at: None,
            deleted: false,
            reactions: vec![],
            txn_id: None,
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::to_value(m.to_v1()).unwrap()
        );
        let edited = Message {
            edited_at: Some("2026-12-02T00:01:00.000Z".into()),
            reactions: vec![Reaction {
                key: "👍".into(),
                count: 2,
                me: true,
            }],
            txn_id: Some("t1".into()),
            ..m
        };
        insta::assert_json_snapshot!(edited);
    }

    #[test]
    fn reaction_keys_are_bounded() {
        assert!(check_reaction_key("👍").is_ok());
        assert!(check_reaction_key("").is_err());
        assert!(check_reaction_key(&"x".repeat(33)).is_err());
        assert!(check_reaction_key("a b").is_err());
    }
}
