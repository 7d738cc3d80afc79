//! Sync protocol v1: the JSON shapes that cross the wire between the reference server
//! (`chatsync-server`) and the device core (`chatsync-core`).
//!
//! Both sides compile against these types, so the server and the client cannot disagree about a
//! field name. docs/protocol.md is the prose description; the OpenAPI document served at
//! `GET /v1/openapi.json` is derived from these types (feature `openapi`), so it cannot drift
//! either. Snapshot tests at the bottom pin the JSON so a rename is never accidental.

use std::collections::BTreeMap;

pub mod limits;
pub mod time;
pub mod v2;

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Largest request body the server accepts, in bytes (413 beyond).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Largest `text/plain` part content, in bytes (413 beyond).
pub const MAX_TEXT_PART_BYTES: usize = 16 * 1024;
/// Default and maximum `limit` of `/v1/rooms/{id}/messages`.
pub const HISTORY_DEFAULT_LIMIT: u32 = 20;
/// Largest `limit` of `/v1/rooms/{id}/messages` and of `GET /messages` (larger values are clamped).
pub const HISTORY_MAX_LIMIT: u32 = 100;
/// Default `limit` of the compatibility route `GET /messages`.
pub const COMPAT_DEFAULT_LIMIT: u32 = 10;
/// Default and maximum per-room `limit` of `/v1/sync`.
pub const SYNC_DEFAULT_LIMIT: u32 = 50;
/// Largest per-room `limit` of `/v1/sync` (larger values are clamped).
pub const SYNC_MAX_LIMIT: u32 = 100;
/// Longest long-poll the server holds, in milliseconds.
pub const SYNC_MAX_TIMEOUT_MS: u64 = 30_000;
/// Longest user, room or transaction id, in bytes of UTF-8 (400 beyond); ids are never empty.
pub const MAX_ID_BYTES: usize = 255;
/// What an id may contain, as the ECMA-262 regular expression the OpenAPI document states: no
/// Unicode control character (Cc), no Unicode white space, no `/`. (The class lists exactly the
/// characters Rust's `char::is_control` and `char::is_whitespace` match, and `/`.)
pub const ID_PATTERN: &str =
    r"^[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000/]+$";
/// Longest request target (path and query), in bytes (414 beyond).
pub const MAX_REQUEST_TARGET_BYTES: usize = 16 * 1024;
/// Largest request head (request line and header fields), in bytes (431 beyond).
pub const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in one request (431 beyond).
pub const MAX_REQUEST_HEADERS: usize = 100;
/// MIME type of a plain text part.
pub const TEXT_PLAIN: &str = "text/plain";

/// One part of a multipart message (Chatkit's shape). Parts of unknown types are stored and
/// returned untouched: every field other than `type` and `content` is kept in `extra`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Part {
    /// MIME type, for example `text/plain`.
    #[serde(rename = "type")]
    pub mime_type: String,
    /// Inline content (the text of a `text/plain` part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Any other fields (a URL, an attachment descriptor, ...), kept as they came.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(additional_properties))]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Part {
    /// A `text/plain` part.
    pub fn text(content: impl Into<String>) -> Self {
        Part {
            mime_type: TEXT_PLAIN.to_owned(),
            content: Some(content.into()),
            extra: BTreeMap::new(),
        }
    }
}

/// A stored message. Ids are assigned by the server from one increasing sequence, so a larger id
/// is newer, across all rooms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Message {
    /// Server-assigned, strictly increasing across all rooms; never reused.
    pub id: u64,
    /// The sender.
    pub user_id: String,
    /// The room it was sent to.
    pub room_id: String,
    /// At least one part, in the order sent.
    pub parts: Vec<Part>,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

impl Message {
    /// The content of the first `text/plain` part, which is what a chat screen shows.
    pub fn text(&self) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.mime_type == TEXT_PLAIN)
            .and_then(|p| p.content.as_deref())
    }
}

/// Body of `PUT /v1/rooms/{room_id}/messages/{txn_id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SendMessageRequest {
    /// At least one part; a `text/plain` part at most [`MAX_TEXT_PART_BYTES`].
    pub parts: Vec<Part>,
}

/// Error body of every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ErrorBody {
    /// snake_case code, one of [`error_code`].
    pub error: String,
    /// Human-readable text.
    pub error_description: String,
}

/// The `error` codes the server uses.
pub mod error_code {
    /// 400: malformed input.
    pub const BAD_REQUEST: &str = "bad_request";
    /// 401: missing, invalid or expired token.
    pub const UNAUTHORIZED: &str = "unauthorized";
    /// 403: not allowed (not a member, not yourself).
    pub const FORBIDDEN: &str = "forbidden";
    /// 404: unknown route or resource.
    pub const NOT_FOUND: &str = "not_found";
    /// 405: a method the route does not support.
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    /// 408: the request head or body did not arrive in time (the connection is closed after it).
    pub const REQUEST_TIMEOUT: &str = "request_timeout";
    /// 409: the write conflicts with the message's state (editing or reacting to a deleted
    /// message, too many reactions of one user on one message).
    pub const CONFLICT: &str = "conflict";
    /// 413: body over 64 KiB or a text part over 16 KiB.
    pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
    /// 414: a request target (path and query) over 16 KiB.
    pub const URI_TOO_LONG: &str = "uri_too_long";
    /// 429: too many requests of one kind (typing notices); the answer carries `Retry-After`.
    pub const TOO_MANY_REQUESTS: &str = "too_many_requests";
    /// 431: a request head over 64 KiB or with more than 100 header fields.
    pub const HEADERS_TOO_LARGE: &str = "request_header_fields_too_large";
    /// 500: a fault of the server, never caused by client input.
    pub const INTERNAL: &str = "internal_error";
    /// 503: the server is shutting down or at its connection cap (answers carry `Retry-After`).
    pub const UNAVAILABLE: &str = "unavailable";
}

/// Body of `POST /v1/token` (dev mode only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenRequest {
    /// The user to issue a token for.
    pub user_id: String,
}

/// Answer of `POST /v1/token`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct TokenResponse {
    /// The bearer token (an HS256 JWT).
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Body of `PUT /v1/users/{user_id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct PutUserRequest {
    /// Display name.
    pub name: String,
    /// Avatar image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// A user profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    /// The user id (a token's `sub`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Avatar image URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_url: Option<String>,
}

/// Body of `POST /v1/rooms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateRoomRequest {
    /// Optional room name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Other members; the caller is added anyway.
    pub member_ids: Vec<String>,
}

/// Body of `POST /v1/rooms/direct`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DirectRoomRequest {
    /// The other user.
    pub user_id: String,
}

/// A room.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Room {
    /// Server-assigned room id.
    pub id: String,
    /// Optional room name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sorted.
    pub member_ids: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Answer of `GET /v1/rooms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RoomList {
    /// The caller's rooms, oldest membership first.
    pub rooms: Vec<Room>,
}

/// `direction` of a history request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Messages with ids below `initial_id`.
    Older,
    /// Messages with ids above `initial_id`.
    Newer,
}

/// Answer of `GET /v1/rooms/{room_id}/messages`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HistoryResponse {
    /// Ascending by id.
    pub messages: Vec<Message>,
    /// Whether more messages exist beyond this page in the requested direction (exact).
    pub has_more: bool,
}

/// One room's part of a sync answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RoomSync {
    /// Ascending by id.
    pub messages: Vec<Message>,
    /// True when older new messages were left out: the client must page back from the oldest
    /// message here to fill the gap (or, on an initial sync, older history exists).
    pub limited: bool,
}

/// Answer of `GET /v1/sync`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SyncResponse {
    /// Opaque token to pass as `since` next time.
    pub next_batch: String,
    /// Rooms with something new, keyed by room id. Rooms joined since the token appear even
    /// when they hold no message yet.
    pub rooms: BTreeMap<String, RoomSync>,
}

/// Answer of the compatibility route `GET /messages` (the original tutorial server).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CompatMessages {
    /// Newest first.
    pub messages: Vec<Message>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Message {
        let mut extra = BTreeMap::new();
        extra.insert(
            "url".to_owned(),
            serde_json::json!("https://example.com/a.png"),
        );
        Message {
            id: 42,
            user_id: "alice".into(),
            room_id: "r1".into(),
            parts: vec![
                Part::text("hello!"),
                Part {
                    mime_type: "image/png".into(),
                    content: None,
                    extra,
                },
            ],
            created_at: "2026-11-25T06:00:00.000Z".into(),
            updated_at: "2026-11-25T06:00:00.000Z".into(),
        }
    }

    #[test]
    fn message_wire_shape_is_stable() {
        insta::assert_json_snapshot!(sample());
    }

    #[test]
    fn unknown_part_fields_round_trip_untouched() {
        let raw = r#"{"type":"application/x-poll","options":["a","b"],"meta":{"k":1}}"#;
        let part: Part = serde_json::from_str(raw).unwrap();
        assert_eq!(part.mime_type, "application/x-poll");
        assert_eq!(
            serde_json::to_value(&part).unwrap(),
            serde_json::from_str::<serde_json::Value>(raw).unwrap()
        );
    }

    #[test]
    fn text_is_the_first_plain_part() {
        assert_eq!(sample().text(), Some("hello!"));
    }

    #[test]
    fn sync_wire_shape_is_stable() {
        let mut rooms = BTreeMap::new();
        rooms.insert(
            "r1".to_owned(),
            RoomSync {
                messages: vec![sample()],
                limited: true,
            },
        );
        insta::assert_json_snapshot!(SyncResponse {
            next_batch: "s42".into(),
            rooms
        });
    }
}
