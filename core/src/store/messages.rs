//! The `messages` tree: every held message of every room, keyed by room then server id (see
//! `keys`), so a room's history is read with range scans and never rewritten as a whole.

use chatsync_protocol::Message;
use serde::{Deserialize, Serialize};

use super::keys::{message_key, room_prefix};
use super::{decode, StoreError};

/// A stored message: the server's message (its v1 fields, as format 1 stored them) plus, for
/// messages sent from this device, the txn id its local echo had (so the app can match the echo
/// it showed with the message that replaced it), and since format 2 what happened to it after
/// it was sent. Each added field is absent when unset, so a format 1 value reads as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    pub message: Message,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
    /// When its sender last edited it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<String>,
    /// A tombstone: deleted by its sender (no parts, no reactions; its place is kept).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    /// Reactions by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<StoredReaction>,
}

/// The reactions of one key on a stored message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredReaction {
    pub key: String,
    pub count: u32,
    /// Whether this device's user reacted with it.
    pub me: bool,
}

impl StoredMessage {
    /// A message as protocol v2 sends it, with the local id it had on this device (if any).
    pub fn from_v2(m: &chatsync_protocol::v2::Message, local_id: Option<String>) -> StoredMessage {
        StoredMessage {
            message: m.to_v1(),
            local_id: local_id.or_else(|| m.txn_id.clone()),
            edited_at: m.edited_at.clone(),
            deleted: m.deleted,
            reactions: m
                .reactions
                .iter()
                .map(|r| StoredReaction {
                    key: r.key.clone(),
                    count: r.count,
                    me: r.me,
                })
                .collect(),
        }
    }
}

/// Read access to the `messages` tree.
#[derive(Clone)]
pub(crate) struct MessagesTree(pub(super) sled::Tree);

impl MessagesTree {
    /// Up to `limit` messages of `room_id` with `floor <= id < start`, newest first.
    pub fn page_desc(
        &self,
        room_id: &str,
        floor: u64,
        start: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if start <= floor || limit == 0 {
            return Ok(Vec::new());
        }
        let range = message_key(room_id, floor)..message_key(room_id, start);
        let mut out = Vec::with_capacity(limit.min(256));
        for item in self.0.range(range).rev() {
            let (_, value) = item?;
            out.push(decode(&value)?);
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    /// Whether any message of `room_id` with an id below `id` is held.
    pub fn any_below(&self, room_id: &str, id: u64) -> Result<bool, StoreError> {
        Ok(self
            .0
            .range(room_prefix(room_id)..message_key(room_id, id))
            .next()
            .transpose()?
            .is_some())
    }

    /// One message.
    pub fn get(&self, room_id: &str, id: u64) -> Result<Option<StoredMessage>, StoreError> {
        self.0
            .get(message_key(room_id, id))?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The keys of the `n` oldest messages of `room_id` and the id of the oldest one left after
    /// them (for eviction).
    pub fn oldest_keys(
        &self,
        room_id: &str,
        n: usize,
    ) -> Result<(Vec<sled::IVec>, Option<u64>), StoreError> {
        let mut keys = Vec::with_capacity(n);
        let mut next_oldest = None;
        for item in self.0.scan_prefix(room_prefix(room_id)) {
            let (key, _) = item?;
            if keys.len() == n {
                next_oldest = super::keys::message_id_of_key(&key);
                break;
            }
            keys.push(key);
        }
        Ok((keys, next_oldest))
    }
}
