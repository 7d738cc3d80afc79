//! The engine behind [`crate::ChatClient`]: the store, the API client, the event hub and the
//! small in-memory state (backoff, read cursors) shared by the sync and outbox halves. It lives
//! in an `Arc` so work can be spawned onto the client's runtime and outlive the caller's stack.
//!
//! This module holds the store-only reads (what the app renders); `sync` and `outbox` add the
//! network halves as further `impl Engine` blocks.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chatsync_protocol::Part;

use crate::api::Api;
use crate::config::ClientConfig;
use crate::error::ChatError;
use crate::events::{ClientEvent, EventHub};
use crate::model::*;
use crate::outbox::Backoff;
use crate::store::messages::StoredMessage;
use crate::store::outbox::OutboxRecord;
use crate::store::rooms::VisibleFloor;
use crate::store::Store;

/// Largest `limit` a read accepts; a screen never needs more and it bounds memory.
pub(crate) const MAX_READ_LIMIT: u32 = 1_000;

/// Shared state of one client.
pub(crate) struct Engine {
    pub config: ClientConfig,
    pub store: Store,
    pub api: Api,
    pub events: EventHub,
    /// Outbox retry timing; a std Mutex, never held across an await.
    pub backoff: Mutex<Backoff>,
    /// One outbox flush at a time, so per-room order holds.
    pub flush_lock: tokio::sync::Mutex<()>,
    /// One sync batch applied (and its gaps filled) at a time.
    pub sync_lock: tokio::sync::Mutex<()>,
    /// Per room, the oldest server id handed to the app: where `load_older` continues.
    pub cursors: Mutex<HashMap<String, u64>>,
}

/// A page read from the store, before echoes are merged.
pub(crate) struct StorePage {
    /// Newest first.
    pub messages: Vec<StoredMessage>,
    /// Whether the page stopped at a gap (or started inside one).
    pub hit_gap: bool,
}

impl Engine {
    pub fn new(config: ClientConfig, store: Store, api: Api) -> Engine {
        Engine {
            config,
            store,
            api,
            events: EventHub::default(),
            backoff: Mutex::new(Backoff::default()),
            flush_lock: tokio::sync::Mutex::new(()),
            sync_lock: tokio::sync::Mutex::new(()),
            cursors: Mutex::new(HashMap::new()),
        }
    }

    /// Converts a stored message to what the app renders.
    pub fn chat_message(&self, stored: &StoredMessage) -> Result<ChatMessage, ChatError> {
        let m = &stored.message;
        Ok(ChatMessage {
            id: m.id.to_string(),
            server_id: Some(m.id),
            local_id: stored.local_id.clone(),
            room_id: m.room_id.clone(),
            text: m.text().unwrap_or("").to_owned(),
            created_at: m.created_at.clone(),
            user: self.chat_user(&m.user_id)?,
            state: MessageState::Sent,
            pending: false,
            sent: true,
            failed: false,
            failure_reason: None,
            parts: m.parts.iter().map(message_part).collect(),
        })
    }

    /// The local echo of a queued message.
    pub fn echo(&self, record: &OutboxRecord) -> Result<ChatMessage, ChatError> {
        let failed = record.state == MessageState::Failed;
        Ok(ChatMessage {
            id: record.local_id.clone(),
            server_id: None,
            local_id: Some(record.local_id.clone()),
            room_id: record.room_id.clone(),
            text: record
                .parts
                .iter()
                .find(|p| p.mime_type == chatsync_protocol::TEXT_PLAIN)
                .and_then(|p| p.content.clone())
                .unwrap_or_default(),
            created_at: record.created_at.clone(),
            user: self.chat_user(&self.config.user_id)?,
            state: record.state,
            pending: !failed,
            sent: false,
            failed,
            failure_reason: record.failure_reason.clone(),
            parts: record.parts.iter().map(message_part).collect(),
        })
    }

    /// A user's display name and avatar from the stored profiles (the id when unknown).
    pub fn chat_user(&self, user_id: &str) -> Result<ChatUser, ChatError> {
        if user_id == self.config.user_id {
            if let Some(session) = self.store.meta.session()? {
                return Ok(session.user);
            }
        }
        Ok(match self.store.users.get(user_id)? {
            Some(u) => ChatUser {
                id: u.id,
                name: u.name,
                avatar: u.avatar_url,
            },
            None => ChatUser {
                id: user_id.to_owned(),
                name: user_id.to_owned(),
                avatar: None,
            },
        })
    }

    /// Up to `limit` stored messages of `room_id` below `before`, newest first, never reading
    /// across a gap.
    pub fn store_page(
        &self,
        room_id: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<StorePage, ChatError> {
        let Some(room) = self.store.room(room_id)? else {
            return Ok(StorePage {
                messages: Vec::new(),
                hit_gap: false,
            });
        };
        let start = before.unwrap_or(u64::MAX);
        match room.visible_floor(start) {
            VisibleFloor::Hole => Ok(StorePage {
                messages: Vec::new(),
                hit_gap: true,
            }),
            VisibleFloor::Visible(floor) => {
                let messages =
                    self.store
                        .messages
                        .page_desc(room_id, floor, start, limit as usize)?;
                let hit_gap = floor > 0 && messages.len() < limit as usize;
                Ok(StorePage { messages, hit_gap })
            }
        }
    }

    /// The outbox entries of one room, in queue order.
    pub fn room_echoes(&self, room_id: &str) -> Result<Vec<(u64, OutboxRecord)>, ChatError> {
        Ok(self
            .store
            .outbox
            .entries()?
            .into_iter()
            .filter(|(_, r)| r.room_id == room_id)
            .collect())
    }

    /// Merges a store page with the echoes that belong in its span (see `messages`).
    pub fn merge_echoes(
        &self,
        room_id: &str,
        page: &StorePage,
        limit: u32,
        before: Option<u64>,
    ) -> Result<Vec<ChatMessage>, ChatError> {
        let upper = before.unwrap_or(u64::MAX);
        let full = page.messages.len() >= limit as usize;
        let lower = match page.messages.last() {
            Some(last) if full || page.hit_gap => last.message.id,
            _ if page.hit_gap => upper, // a hole: no echo can be placed
            _ => 0,
        };
        // Sort key, larger is newer: a message by (id, 0, 0), an echo right above the message it
        // was queued after by (after_id, 1, seq).
        let mut items: Vec<((u64, u8, u64), ChatMessage)> = Vec::with_capacity(page.messages.len());
        for stored in &page.messages {
            items.push(((stored.message.id, 0, 0), self.chat_message(stored)?));
        }
        if lower < upper || (lower == 0 && upper == u64::MAX) {
            for (seq, record) in self.room_echoes(room_id)? {
                let after = record.after_id.unwrap_or(0);
                if after >= lower && after < upper {
                    items.push(((after, 1, seq), self.echo(&record)?));
                }
            }
        }
        items.sort_by_key(|item| std::cmp::Reverse(item.0));
        Ok(items.into_iter().map(|(_, m)| m).collect())
    }

    /// `ChatClient::messages`: newest first, echoes merged in place. `limit` counts stored
    /// messages; echoes whose place falls inside the page come on top of it.
    pub fn messages(
        &self,
        room_id: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<Vec<ChatMessage>, ChatError> {
        check_room_id(room_id)?;
        let limit = check_limit(limit)?;
        let page = self.store_page(room_id, limit, before)?;
        let merged = self.merge_echoes(room_id, &page, limit, before)?;
        let oldest = page.messages.last().map(|m| m.message.id).or(before);
        if let Some(oldest) = oldest {
            self.cursors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(room_id.to_owned(), oldest);
        }
        Ok(merged)
    }

    /// The rooms held on the device with their newest visible message.
    pub fn rooms(&self) -> Result<Vec<RoomSummary>, ChatError> {
        let mut out = Vec::new();
        for (id, record) in self.store.rooms()? {
            let page = self.store_page(&id, 1, None)?;
            let last_message = self.merge_echoes(&id, &page, 1, None)?.into_iter().next();
            let (name, member_ids) = match record.info {
                Some(info) => (info.name, info.member_ids),
                None => (None, Vec::new()),
            };
            out.push(RoomSummary {
                id,
                name,
                member_ids,
                last_message,
            });
        }
        Ok(out)
    }

    /// Pending and failed counts of the outbox.
    pub fn outbox_counts(&self) -> Result<(u32, u32), ChatError> {
        let entries = self.store.outbox.entries()?;
        let failed = entries
            .iter()
            .filter(|(_, r)| r.state == MessageState::Failed)
            .count() as u32;
        Ok((entries.len() as u32 - failed, failed))
    }

    /// Emits the outbox counts (the hub drops it when unchanged).
    pub fn emit_outbox_counts(&self) {
        match self.outbox_counts() {
            Ok((pending, failed)) => self
                .events
                .emit(ClientEvent::OutboxChanged { pending, failed }),
            Err(e) => tracing::warn!("cannot count the outbox: {e}"),
        }
    }

    /// Emits one `MessagesChanged` per room with something in `ids`.
    pub fn emit_changed(&self, changed: BTreeMap<String, Vec<String>>) {
        for (room_id, ids) in changed {
            self.events
                .emit(ClientEvent::MessagesChanged { room_id, ids });
        }
    }
}

fn message_part(part: &Part) -> MessagePart {
    MessagePart {
        mime_type: part.mime_type.clone(),
        content: part.content.clone(),
        extra_json: if part.extra.is_empty() {
            None
        } else {
            serde_json::to_string(&part.extra).ok()
        },
    }
}

/// Refuses room ids the protocol does not allow (the server would refuse them anyway; a
/// message queued for one would only ever fail).
pub(crate) fn check_room_id(room_id: &str) -> Result<(), ChatError> {
    chatsync_protocol::limits::check_id("room id", room_id)
        .map_err(|e| ChatError::InvalidInput(e.to_string()))
}

/// Refuses a zero limit and caps large ones.
pub(crate) fn check_limit(limit: u32) -> Result<u32, ChatError> {
    if limit == 0 {
        return Err(ChatError::InvalidInput("limit must be at least 1".into()));
    }
    Ok(limit.min(MAX_READ_LIMIT))
}
