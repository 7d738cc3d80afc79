//! The `outbox` tree: messages the user sent that the server has not accepted yet, keyed by an
//! increasing sequence number so iteration order is send order.

use chatsync_protocol::Part;
use serde::{Deserialize, Serialize};

use crate::model::MessageState;

use super::keys::outbox_seq_of_key;
use super::{decode, StoreError};

/// The message a queued change is about: sent (its server id) or still queued (the local id of
/// its send).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
}

impl Target {
    /// Whether both name the same message: by server id, or by the local id of its send (a
    /// change queued while its message was itself queued names it by local id only, and keeps
    /// naming it after the send completed).
    pub fn same_message(&self, other: &Target) -> bool {
        (self.server_id.is_some() && self.server_id == other.server_id)
            || (self.local_id.is_some() && self.local_id == other.local_id)
    }
}

/// What a queued entry does (format 2; a format 1 entry is a send).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Op {
    /// A new message (`parts`).
    #[default]
    Send,
    /// New content (`parts`) for `target`.
    Edit { target: Target },
    /// Delete `target`.
    Delete { target: Target },
    /// Add (`on`) or remove the user's reaction `key` on `target`.
    React { target: Target, key: String, on: bool },
    /// The user has read the room up to `message_id` (only forward; one entry per room).
    Receipt { message_id: u64 },
}

impl Op {
    pub fn is_send(&self) -> bool {
        matches!(self, Op::Send)
    }
}

/// One queued change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutboxRecord {
    /// Client txn id (UUID v4); for a send, also the id of its local echo.
    pub local_id: String,
    pub room_id: String,
    pub parts: Vec<Part>,
    /// RFC 3339, when the user sent it.
    pub created_at: String,
    /// `Pending` or `Failed`.
    pub state: MessageState,
    pub attempts: u32,
    pub failure_reason: Option<String>,
    /// Newest message id held in the room when it was queued: the echo is shown right above it.
    pub after_id: Option<u64>,
    /// What it does (absent: a send, as format 1 wrote them).
    #[serde(default, skip_serializing_if = "Op::is_send")]
    pub op: Op,
    /// A request with its txn id may have reached the server (set durably before each request,
    /// cleared when the connection could not even be made). The server answers a repeated txn
    /// id with what it did the first time, so such an entry must not be rewritten or cancelled
    /// in place: a change to it follows it as a new entry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maybe_sent: bool,
}

/// The `outbox` tree: seq -> [`OutboxRecord`].
#[derive(Clone)]
pub(crate) struct OutboxTree(pub(super) sled::Tree);

impl OutboxTree {
    /// Every entry in queue order.
    pub fn entries(&self) -> Result<Vec<(u64, OutboxRecord)>, StoreError> {
        let mut out = Vec::new();
        for item in self.0.iter() {
            let (key, value) = item?;
            let seq = outbox_seq_of_key(&key)
                .ok_or_else(|| StoreError::Corrupt("malformed outbox key".into()))?;
            out.push((seq, decode(&value)?));
        }
        Ok(out)
    }

    /// The entry with txn id `local_id`.
    pub fn find(&self, local_id: &str) -> Result<Option<(u64, OutboxRecord)>, StoreError> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|(_, r)| r.local_id == local_id))
    }
}
