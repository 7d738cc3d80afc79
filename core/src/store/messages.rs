//! The `messages` tree: every held message of every room, keyed by room then server id (see
//! `keys`), so a room's history is read with range scans and never rewritten as a whole.

use chatsync_protocol::Message;
use serde::{Deserialize, Serialize};

use super::keys::{message_key, room_prefix};
use super::{decode, StoreError};

/// A stored message: the server's message plus, for messages sent from this device, the txn id
/// its local echo had (so the app can match the echo it showed with the message that replaced it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredMessage {
    pub message: Message,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_id: Option<String>,
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
