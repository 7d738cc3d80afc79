//! Incremental sync: one `/v1/sync` request from the stored token for all rooms, applied as one
//! transaction (idempotent: the same batch twice changes nothing), then the gaps a `limited`
//! room leaves are filled by paging back, and rooms over the cap are trimmed from the old end.
//! Also `load_older`: history from the store first, then from the server.

use std::collections::{BTreeMap, BTreeSet};

use chatsync_protocol::{Direction, HISTORY_MAX_LIMIT, SYNC_MAX_LIMIT};

use crate::api::ApiError;
use crate::engine::{check_limit, check_room_id, Engine};
use crate::error::ChatError;
use crate::events::ClientEvent;
use crate::model::*;
use crate::store::rooms::{RoomInfo, RoomRecord};

/// History pages (of `page_size` messages, bounded batches) fetched per room and sync to close
/// gaps; what is left stays recorded as a gap (never shown as complete) and is filled when the
/// user scrolls there.
const MAX_GAP_FILL_PAGES: u32 = 10;
/// Characters of a notification preview.
const PREVIEW_CHARS: usize = 100;

/// `text` as a one-line notification preview: whitespace runs flattened to one space, cut to
/// `PREVIEW_CHARS` characters (on a character boundary) with an ellipsis when cut.
pub(crate) fn preview_of(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= PREVIEW_CHARS {
        return flat;
    }
    let mut cut: String = flat.chars().take(PREVIEW_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// What one sync request brought.
#[derive(Clone, Debug, Default)]
pub(crate) struct SyncOutcome {
    /// New messages stored, per room.
    pub new_messages: BTreeMap<String, u32>,
    /// New messages from other users, for notifications.
    pub previews: Vec<NewMessagePreview>,
}

impl Engine {
    /// One `/v1/sync` (holding up to `timeout_ms`), applied and flushed, gaps filled, rooms
    /// trimmed, listeners told. Network failures come back as `ChatError::Offline`.
    pub async fn sync_request(&self, timeout_ms: u64) -> Result<SyncOutcome, ChatError> {
        let limit = self.config.page_size.clamp(1, SYNC_MAX_LIMIT);
        let mut since = self.store.meta.sync_token()?;
        // No lock across the request: a long-poll may hold it for its whole timeout, and an
        // app's explicit sync must not wait behind it. Two batches from the same token are
        // safe to apply in any order (idempotent); only the first moves the token.
        let response = match self.api.sync(since.as_deref(), timeout_ms, limit).await {
            // A token the server no longer understands: start over from the newest messages.
            // Held history stays; the initial page opens a gap where it cannot be joined.
            Err(ApiError::Rejected { status: 400, .. }) if since.is_some() => {
                tracing::warn!("the server refused the sync token; starting a fresh sync");
                self.store.meta.clear_sync_token()?;
                since = None;
                self.api.sync(None, timeout_ms, limit).await?
            }
            other => other?,
        };
        let _one_batch = self.sync_lock.lock().await;
        let applied = self.store.apply_sync(&response, since.as_deref())?;
        self.store.flush().await?;

        let mut changed: BTreeMap<String, Vec<u64>> = applied.new;
        self.fetch_unknown_rooms(response.rooms.keys()).await;
        for room_id in response.rooms.keys() {
            match self.fill_gaps(room_id).await {
                Ok(ids) => changed.entry(room_id.clone()).or_default().extend(ids),
                // Left recorded as a gap; readers stop above it.
                Err(e) => tracing::debug!("gap in {room_id} left for later: {e}"),
            }
            self.store
                .evict(room_id, u64::from(self.config.max_messages_per_room))?;
        }
        self.store.flush().await?;

        let mut outcome = SyncOutcome::default();
        let mut senders = BTreeSet::new();
        for (room_id, ids) in &changed {
            if ids.is_empty() {
                continue;
            }
            outcome
                .new_messages
                .insert(room_id.clone(), ids.len() as u32);
            for id in ids {
                if let Some(stored) = self.store.messages.get(room_id, *id)? {
                    let m = stored.message;
                    if m.user_id != self.config.user_id {
                        senders.insert(m.user_id.clone());
                        let text = m.text().unwrap_or("");
                        outcome.previews.push(NewMessagePreview {
                            room_id: room_id.clone(),
                            message_id: m.id,
                            sender_id: m.user_id.clone(),
                            sender_name: m.user_id.clone(),
                            preview: preview_of(text),
                        });
                    }
                }
            }
        }
        self.fetch_unknown_users(senders).await;
        for p in &mut outcome.previews {
            p.sender_name = self.chat_user(&p.sender_id)?.name;
        }
        // Held messages whose content the batch changed are not new (no count, no preview),
        // but a screen showing them must redraw: they are listed in the event too (after the
        // new ones; never twice, as a replaced id was held and gap fills store only new ids).
        for (room_id, ids) in applied.replaced {
            changed.entry(room_id).or_default().extend(ids);
        }
        self.emit_changed(
            changed
                .into_iter()
                .map(|(room, ids)| (room, ids.iter().map(u64::to_string).collect()))
                .collect(),
        );
        Ok(outcome)
    }

    /// `ChatClient::sync_once`: a sync, the profile upload if one is owed, an outbox flush.
    /// Offline is a report (`online: false`), not an error.
    pub async fn sync_once(&self) -> Result<SyncReport, ChatError> {
        self.events.emit(ClientEvent::SyncStateChanged {
            state: SyncState::Syncing,
        });
        let result = self.sync_once_inner().await;
        self.events.emit(ClientEvent::SyncStateChanged {
            state: SyncState::Idle,
        });
        result
    }

    async fn sync_once_inner(&self) -> Result<SyncReport, ChatError> {
        let mut report = SyncReport::default();
        match self.sync_request(0).await {
            Ok(outcome) => {
                report.online = true;
                report.new_messages = outcome.new_messages;
            }
            Err(ChatError::Offline(reason)) => {
                tracing::debug!("sync_once offline: {reason}");
                let (pending, failed) = self.outbox_counts()?;
                report.pending = pending;
                report.failed = failed;
                return Ok(report);
            }
            Err(e) => return Err(e),
        }
        self.upload_profile_if_owed().await;
        let flush = self.flush_outbox().await?;
        report.sent = flush.sent;
        report.pending = flush.pending;
        report.failed = flush.failed;
        Ok(report)
    }

    /// Uploads the login profile when it has not reached the server yet.
    pub async fn upload_profile_if_owed(&self) {
        let owed = self.store.meta.profile_dirty().unwrap_or(false);
        if !owed {
            return;
        }
        let Ok(Some(session)) = self.store.meta.session() else {
            return;
        };
        match self
            .api
            .put_user(&session.user.name, session.user.avatar.as_deref())
            .await
        {
            Ok(_) => {
                if self.store.meta.set_profile_dirty(false).is_ok() {
                    let _ = self.store.flush().await;
                }
            }
            Err(e) => tracing::debug!("profile upload postponed: {e}"),
        }
    }

    /// Fetches the description of rooms held without one (one request for all of them).
    async fn fetch_unknown_rooms<'a>(&self, room_ids: impl Iterator<Item = &'a String>) {
        let mut unknown = false;
        for id in room_ids {
            if !matches!(self.store.room(id), Ok(Some(r)) if r.info.is_some()) {
                unknown = true;
            }
        }
        if !unknown {
            return;
        }
        match self.api.list_rooms().await {
            Ok(list) => {
                for room in list.rooms {
                    let info = RoomInfo {
                        name: room.name,
                        member_ids: room.member_ids,
                    };
                    if let Err(e) = self.store.put_room_info(&room.id, info) {
                        tracing::warn!("cannot store room {}: {e}", room.id);
                    }
                }
            }
            Err(e) => tracing::debug!("room list postponed: {e}"),
        }
    }

    /// Fetches the profiles of senders not known yet (names and avatars for the screen).
    pub async fn fetch_unknown_users(&self, user_ids: BTreeSet<String>) {
        for id in user_ids {
            if id == self.config.user_id || matches!(self.store.users.get(&id), Ok(Some(_))) {
                continue;
            }
            match self.api.get_user(&id).await {
                Ok(user) => {
                    let _ = self.store.users.put(&user);
                }
                Err(ApiError::NotFound(_)) => {}
                Err(e) => {
                    tracing::debug!("profile of {id} postponed: {e}");
                    return;
                }
            }
        }
    }

    /// Pages back through the gaps of `room_id`, newest gap first, at most
    /// `MAX_GAP_FILL_PAGES` pages. Returns the ids it stored.
    async fn fill_gaps(&self, room_id: &str) -> Result<Vec<u64>, ChatError> {
        let page_limit = self.config.page_size.clamp(1, HISTORY_MAX_LIMIT);
        let mut stored = Vec::new();
        for _ in 0..MAX_GAP_FILL_PAGES {
            let Some(room) = self.store.room(room_id)? else {
                break;
            };
            let Some(gap) = room.gaps.last().copied() else {
                break;
            };
            let page = self
                .api
                .history(room_id, Some(gap.before), Direction::Older, page_limit)
                .await?;
            stored.extend(self.store.apply_older_page(room_id, gap.before, &page)?);
            self.store.flush().await?;
            let after = self
                .store
                .room(room_id)?
                .and_then(|r| r.gaps.last().copied());
            if after == Some(gap) {
                break; // no progress: leave it for later
            }
        }
        Ok(stored)
    }

    /// `ChatClient::load_older`: continues below the oldest message handed to the app, from
    /// the store while it holds a contiguous run there, else from the server.
    pub async fn load_older(
        &self,
        room_id: &str,
        limit: u32,
    ) -> Result<LoadOlderResult, ChatError> {
        check_room_id(room_id)?;
        let limit = check_limit(limit)?;
        let cursor = self
            .cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(room_id)
            .copied();
        let page = self.store_page(room_id, limit, cursor)?;
        let room = self
            .store
            .room(room_id)?
            .unwrap_or_else(RoomRecord::first_seen);
        if page.messages.is_empty()
            && !page.hit_gap
            && cursor.is_some()
            && !room.older_exists
            && !room.gaps.iter().any(|g| Some(g.after) < cursor)
        {
            // The start of the room's history is held and already shown: nothing to ask for.
            return Ok(LoadOlderResult {
                messages: Vec::new(),
                has_more: false,
            });
        }
        let (messages, oldest) = if !page.messages.is_empty() {
            let merged = self.merge_echoes(room_id, &page, limit, cursor)?;
            (merged, page.messages.last().map(|m| m.message.id))
        } else {
            let server_limit = limit.min(HISTORY_MAX_LIMIT);
            let history = self
                .api
                .history(room_id, cursor, Direction::Older, server_limit)
                .await?;
            let ids = match cursor {
                Some(before) => self.store.apply_older_page(room_id, before, &history)?,
                None => {
                    // Nothing held and nothing shown: this page is the newest history.
                    let before = history
                        .messages
                        .last()
                        .map_or(0, |m| m.id.saturating_add(1));
                    self.store.apply_older_page(room_id, before, &history)?
                }
            };
            self.store.flush().await?;
            let senders = history.messages.iter().map(|m| m.user_id.clone()).collect();
            self.fetch_unknown_users(senders).await;
            let mut out = Vec::with_capacity(history.messages.len());
            for m in history.messages.iter().rev() {
                if let Some(stored) = self.store.messages.get(room_id, m.id)? {
                    out.push(self.chat_message(&stored)?);
                }
            }
            if !ids.is_empty() {
                self.emit_changed(BTreeMap::from([(
                    room_id.to_owned(),
                    ids.iter().map(u64::to_string).collect(),
                )]));
            }
            let oldest = history.messages.first().map(|m| m.id);
            if oldest.is_none() {
                return Ok(LoadOlderResult {
                    messages: out,
                    has_more: history.has_more,
                });
            }
            (out, oldest)
        };
        let Some(oldest) = oldest else {
            return Ok(LoadOlderResult {
                messages,
                has_more: false,
            });
        };
        self.cursors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(room_id.to_owned(), oldest);
        let room = self
            .store
            .room(room_id)?
            .unwrap_or_else(RoomRecord::first_seen);
        let has_more = room.older_exists || self.store.messages.any_below(room_id, oldest)?;
        Ok(LoadOlderResult { messages, has_more })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_one_line_and_cut_on_a_char_boundary() {
        assert_eq!(preview_of("hello\n  world "), "hello world");
        let p = preview_of(&"é".repeat(300));
        assert_eq!(p.chars().count(), PREVIEW_CHARS);
        assert!(p.ends_with('…'));
        assert_eq!(
            preview_of(&"a".repeat(PREVIEW_CHARS)),
            "a".repeat(PREVIEW_CHARS)
        );
    }
}
