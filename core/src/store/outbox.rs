//! The `outbox` tree: messages the user sent that the server has not accepted yet, keyed by an
//! increasing sequence number so iteration order is send order.

use chatsync_protocol::Part;
use serde::{Deserialize, Serialize};

use crate::model::MessageState;

use super::keys::outbox_seq_of_key;
use super::{decode, StoreError};

/// One queued message.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutboxRecord {
    /// Client txn id (UUID v4); also the GiftedChat `_id` of the local echo.
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
