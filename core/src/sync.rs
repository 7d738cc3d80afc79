//! The sync service: it owns the sync token and brings the server's changes into the store.
//! One `/v1/sync` request from the stored token for all rooms, applied as one transaction
//! (idempotent: the same batch twice changes nothing); then the gaps a `limited` room leaves are
//! filled by paging back, and rooms over the cap are trimmed from the old end. It also pages
//! older history in from an explicit anchor (for the timelines), opens direct rooms, uploads the
//! login profile and fetches the profiles of new senders.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chatsync_protocol::{Direction, HISTORY_MAX_LIMIT, SYNC_MAX_LIMIT};

use crate::api::{Api, ApiError};
use crate::changes::{Change, Changes};
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::events::{ClientEvent, EventHub};
use crate::model::*;
use crate::reads::check_room_id;
use crate::store::rooms::RoomInfo;
use crate::store::{SharedStore, Store};

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
    /// The server has more changes waiting: sync again at once.
    pub has_more: bool,
}

/// The sync service.
pub(crate) struct SyncService {
    store: SharedStore,
    api: Arc<Api>,
    events: EventHub,
    changes: Changes,
    user_id: String,
    page_size: u32,
    max_messages_per_room: u32,
    /// One sync batch applied (and its gaps filled) at a time.
    sync_lock: tokio::sync::Mutex<()>,
    /// Who types where, as the last answer said (ephemeral: never stored).
    typing: std::sync::Mutex<BTreeMap<String, Vec<String>>>,
}

impl SyncService {
    pub fn new(
        config: &ClientConfig,
        store: SharedStore,
        api: Arc<Api>,
        events: EventHub,
        changes: Changes,
    ) -> Self {
        SyncService {
            store,
            api,
            events,
            changes,
            user_id: config.user_id.clone(),
            page_size: config.page_size,
            max_messages_per_room: config.max_messages_per_room,
            sync_lock: tokio::sync::Mutex::new(()),
            typing: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Records who types in the rooms of an answer; tells the app where it changed.
    fn note_typing(&self, response: &chatsync_protocol::v2::SyncResponse) {
        let mut typing = self.typing.lock().unwrap_or_else(|p| p.into_inner());
        for (room_id, room) in &response.rooms {
            let now: Vec<String> = room
                .typing
                .iter()
                .filter(|u| **u != self.user_id)
                .cloned()
                .collect();
            let before = typing.get(room_id).cloned().unwrap_or_default();
            if before != now {
                if now.is_empty() {
                    typing.remove(room_id);
                } else {
                    typing.insert(room_id.clone(), now.clone());
                }
                self.events.emit(ClientEvent::TypingChanged {
                    room_id: room_id.clone(),
                    user_ids: now,
                });
            }
        }
    }

    /// Who types in `room_id` now, as the last sync said.
    pub fn typing(&self, room_id: &str) -> Vec<String> {
        self.typing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(room_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Tells the server the user is (or stopped) typing in `room_id`. Ephemeral: not queued; a
    /// failure is returned and nothing is retried.
    pub async fn set_typing(&self, room_id: &str, typing: bool) -> Result<()> {
        check_room_id(room_id)?;
        Ok(self.api.typing(room_id, typing).await?)
    }

    fn store(&self) -> Result<Store> {
        self.store.get().ok_or(Error::ShutDown)
    }

    /// Syncs until caught up: one `/v2/sync` holding up to `timeout_ms`, then, while the server
    /// says more changes are waiting (`has_more`: its answers are bounded), more at once.
    pub async fn sync_request(&self, timeout_ms: u64) -> Result<SyncOutcome> {
        /// Rounds of one call at most (500 changes each): the rest comes with the next call.
        const MAX_ROUNDS: u32 = 20;
        let mut outcome = self.sync_round(timeout_ms).await?;
        let mut rounds = 1;
        while outcome.has_more && rounds < MAX_ROUNDS {
            let more = self.sync_round(0).await?;
            for (room, n) in more.new_messages {
                *outcome.new_messages.entry(room).or_default() += n;
            }
            outcome.previews.extend(more.previews);
            outcome.has_more = more.has_more;
            rounds += 1;
        }
        Ok(outcome)
    }

    /// One `/v2/sync` (holding up to `timeout_ms`), applied and flushed, gaps filled, rooms
    /// trimmed, views and listeners told.
    async fn sync_round(&self, timeout_ms: u64) -> Result<SyncOutcome> {
        let store = self.store()?;
        let limit = self.page_size.clamp(1, SYNC_MAX_LIMIT);
        let mut since = store.meta.sync_token()?;
        // No lock across the request: a long-poll may hold it for its whole timeout, and an
        // app's explicit sync must not wait behind it. Two batches from the same token are
        // safe to apply in any order (idempotent); only the first moves the token.
        let response = match self.api.sync(since.as_deref(), timeout_ms, limit).await {
            // A token the server no longer understands: start over from the newest messages.
            // Held history stays; the initial page opens a gap where it cannot be joined.
            Err(ApiError::Rejected { status: 400, .. }) if since.is_some() => {
                tracing::warn!("the server refused the sync token; starting a fresh sync");
                store.meta.clear_sync_token()?;
                since = None;
                self.api.sync(None, timeout_ms, limit).await?
            }
            other => other?,
        };
        let _one_batch = self.sync_lock.lock().await;
        let applied = store.apply_sync(&response, since.as_deref())?;
        store.flush().await?;
        self.note_typing(&response);

        let mut changed: BTreeMap<String, Vec<u64>> = applied.new;
        self.fetch_unknown_rooms(&store, response.rooms.keys())
            .await;
        for room_id in response.rooms.keys() {
            match self.fill_gaps(&store, room_id).await {
                Ok(ids) => changed.entry(room_id.clone()).or_default().extend(ids),
                // Left recorded as a gap; readers stop above it.
                Err(e) => tracing::debug!("gap in {room_id} left for later: {e}"),
            }
            store.evict(room_id, u64::from(self.max_messages_per_room))?;
        }
        store.flush().await?;

        let mut outcome = SyncOutcome {
            has_more: response.has_more,
            ..SyncOutcome::default()
        };
        let mut senders = BTreeSet::new();
        for (room_id, ids) in &changed {
            if ids.is_empty() {
                continue;
            }
            outcome
                .new_messages
                .insert(room_id.clone(), ids.len() as u32);
            // Read on another device of the user: no notification for it.
            let read_up_to = store
                .room(room_id)?
                .and_then(|r| r.receipts.get(&self.user_id).copied())
                .unwrap_or(0);
            for id in ids {
                if let Some(stored) = store.messages.get(room_id, *id)? {
                    let m = stored.message;
                    if m.user_id != self.user_id && m.id > read_up_to && !stored.deleted {
                        senders.insert(m.user_id.clone());
                        outcome.previews.push(NewMessagePreview {
                            room_id: room_id.clone(),
                            message_id: m.id,
                            sender_id: m.user_id.clone(),
                            sender_name: m.user_id.clone(),
                            preview: preview_of(m.text().unwrap_or("")),
                        });
                    }
                }
            }
        }
        self.fetch_unknown_users(&store, senders).await;
        for p in &mut outcome.previews {
            if let Some(user) = store.users.get(&p.sender_id)? {
                p.sender_name = user.name;
            }
        }
        // Held messages whose content the batch changed are not new (no count, no preview),
        // but a screen showing them must redraw: they are listed in the event too (after the
        // new ones; never twice, as a replaced id was held and gap fills store only new ids).
        for (room_id, ids) in applied.replaced {
            changed.entry(room_id).or_default().extend(ids);
        }
        // Every room of the answer may have changed (its record at least): the views re-read.
        self.changes.rooms(response.rooms.keys());
        if !applied.completed.is_empty() {
            let (pending, failed) = crate::send_queue::counts(&store)?;
            self.events
                .emit(ClientEvent::OutboxChanged { pending, failed });
        }
        self.events.emit(ClientEvent::UnreadChanged {
            total: store.unread_total()?,
        });
        for (room_id, ids) in changed {
            self.events.emit(ClientEvent::MessagesChanged {
                room_id,
                ids: ids.iter().map(u64::to_string).collect(),
            });
        }
        Ok(outcome)
    }

    /// Uploads the login profile when it has not reached the server yet.
    pub async fn upload_profile_if_owed(&self) {
        let Ok(store) = self.store() else { return };
        if !store.meta.profile_dirty().unwrap_or(false) {
            return;
        }
        let Ok(Some(session)) = store.meta.session() else {
            return;
        };
        match self
            .api
            .put_user(&session.user.name, session.user.avatar.as_deref())
            .await
        {
            Ok(_) => {
                if store.meta.set_profile_dirty(false).is_ok() {
                    let _ = store.flush().await;
                }
            }
            Err(e) => tracing::debug!("profile upload postponed: {e}"),
        }
    }

    /// Fetches the description of rooms held without one (one request for all of them).
    async fn fetch_unknown_rooms<'a>(
        &self,
        store: &Store,
        room_ids: impl Iterator<Item = &'a String>,
    ) {
        let mut unknown = false;
        for id in room_ids {
            if !matches!(store.room(id), Ok(Some(r)) if r.info.is_some()) {
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
                    if let Err(e) = store.put_room_info(&room.id, info) {
                        tracing::warn!("cannot store room {}: {e}", room.id);
                    }
                }
            }
            Err(e) => tracing::debug!("room list postponed: {e}"),
        }
    }

    /// Fetches the profiles of senders not known yet (names and avatars for the screen).
    async fn fetch_unknown_users(&self, store: &Store, user_ids: BTreeSet<String>) {
        let mut fetched = false;
        for id in user_ids {
            if id == self.user_id || matches!(store.users.get(&id), Ok(Some(_))) {
                continue;
            }
            match self.api.get_user(&id).await {
                Ok(user) => {
                    fetched |= store.users.put(&user).is_ok();
                }
                Err(ApiError::NotFound(_)) => {}
                Err(e) => {
                    tracing::debug!("profile of {id} postponed: {e}");
                    break;
                }
            }
        }
        if fetched {
            self.changes.send(Change::Profiles);
        }
    }

    /// Pages back through the gaps of `room_id`, newest gap first, at most
    /// `MAX_GAP_FILL_PAGES` pages. Returns the ids it stored.
    async fn fill_gaps(&self, store: &Store, room_id: &str) -> Result<Vec<u64>> {
        let page_limit = self.page_size.clamp(1, HISTORY_MAX_LIMIT);
        let mut stored = Vec::new();
        for _ in 0..MAX_GAP_FILL_PAGES {
            let Some(room) = store.room(room_id)? else {
                break;
            };
            let Some(gap) = room.gaps.last().copied() else {
                break;
            };
            let page = self
                .api
                .history(room_id, Some(gap.before), Direction::Older, page_limit)
                .await?;
            stored.extend(store.apply_older_page(room_id, gap.before, &page)?);
            store.flush().await?;
            let after = store.room(room_id)?.and_then(|r| r.gaps.last().copied());
            if after == Some(gap) {
                break; // no progress: leave it for later
            }
        }
        Ok(stored)
    }

    /// One page of server history of `room_id` older than `before` (the newest page when
    /// `None`), stored. Returns whether the server has older messages still.
    pub async fn page_older(&self, room_id: &str, before: Option<u64>, limit: u32) -> Result<bool> {
        check_room_id(room_id)?;
        let store = self.store()?;
        let history = self
            .api
            .history(
                room_id,
                before,
                Direction::Older,
                limit.clamp(1, HISTORY_MAX_LIMIT),
            )
            .await?;
        // Nothing held below `before`... so the page joins it; with no anchor the page is the
        // newest history and nothing is above it.
        let join = before.unwrap_or_else(|| {
            history
                .messages
                .last()
                .map_or(0, |m| m.id.saturating_add(1))
        });
        let ids = store.apply_older_page(room_id, join, &history)?;
        store.flush().await?;
        let senders = history.messages.iter().map(|m| m.user_id.clone()).collect();
        self.fetch_unknown_users(&store, senders).await;
        if !ids.is_empty() {
            self.changes.send(Change::Room(room_id.to_owned()));
            self.events.emit(ClientEvent::MessagesChanged {
                room_id: room_id.to_owned(),
                ids: ids.iter().map(u64::to_string).collect(),
            });
        }
        Ok(history.has_more)
    }

    /// The direct room with `user_id`: from the store when held, else got or created on the
    /// server (and stored).
    pub async fn direct_room(&self, user_id: &str) -> Result<String> {
        chatsync_protocol::limits::check_id("user id", user_id)?;
        let store = self.store()?;
        let mut members = vec![self.user_id.clone(), user_id.to_owned()];
        members.sort();
        members.dedup();
        let held = store.rooms()?.into_iter().find(|(_, r)| {
            r.info
                .as_ref()
                .is_some_and(|i| i.member_ids == members && i.name.is_none())
        });
        if let Some((id, _)) = held {
            return Ok(id);
        }
        let room = self.api.direct_room(user_id).await?;
        check_room_id(&room.id)?;
        store.put_room_info(
            &room.id,
            RoomInfo {
                name: room.name,
                member_ids: room.member_ids,
            },
        )?;
        store.flush().await?;
        self.fetch_unknown_users(&store, [user_id.to_owned()].into_iter().collect())
            .await;
        self.changes.send(Change::Room(room.id.clone()));
        Ok(room.id)
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

