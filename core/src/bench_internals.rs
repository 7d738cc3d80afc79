//! Store internals for the benchmarks only (feature `bench-internals`, used by `chatsync-bench`).
//!
//! The benchmarks must time the store's own write path (one received message applied as a sync
//! batch and flushed, exactly what `Engine::sync_request` does after the network) and fill a
//! store with a million messages in seconds, which the public API can only do through a server.
//! This module is that door and nothing more: no app, CLI or binding enables the feature.

use std::path::Path;

use chatsync_protocol::v2::{RoomSync, SyncResponse};
use chatsync_protocol::Message;

use crate::store::Store;

/// A store opened directly, without a client, runtime or server.
pub struct BenchStore {
    /// The real store, as the engine holds it.
    store: Store,
    /// Runs [`Store::flush`] the way the engine does (on tokio's blocking pool).
    runtime: tokio::runtime::Runtime,
    /// Counter for the `next_batch` tokens written with each batch.
    batches: u64,
}

impl BenchStore {
    /// Opens (or creates) the store in `dir` with a page cache of `cache_bytes`.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<BenchStore, String> {
        let store = Store::open(dir, cache_bytes).map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(BenchStore {
            store,
            runtime,
            batches: 0,
        })
    }

    /// Applies `messages` as one `/v2/sync` answer (grouped by room, not limited), as one
    /// transaction, moving the sync token; does not flush. Returns how many were new.
    pub fn apply_sync_batch(&mut self, messages: &[Message]) -> Result<usize, String> {
        let mut rooms = std::collections::BTreeMap::<String, RoomSync>::new();
        for m in messages {
            rooms
                .entry(m.room_id.clone())
                .or_default()
                .messages
                .push(m.clone().into());
        }
        self.batches += 1;
        let response = SyncResponse {
            next_batch: chatsync_protocol::v2::token(self.batches),
            has_more: false,
            rooms,
        };
        let since = self.store.meta.sync_token().map_err(|e| e.to_string())?;
        let new = self
            .store
            .apply_sync(&response, since.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(new.new.values().map(Vec::len).sum())
    }

    /// Makes every write so far durable, as the engine does before telling the app "saved".
    pub fn flush(&self) -> Result<(), String> {
        self.runtime
            .block_on(self.store.flush())
            .map_err(|e| e.to_string())
    }

    /// The newest `limit` messages of `room_id`, newest first, read straight from the tree.
    pub fn newest(&self, room_id: &str, limit: usize) -> Result<Vec<Message>, String> {
        Ok(self
            .store
            .messages
            .page_desc(room_id, 0, u64::MAX, limit)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|s| s.message)
            .collect())
    }
}
