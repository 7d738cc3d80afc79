//! What the app renders, read from the store only: messages with their queued echoes merged in
//! place, rooms with their last message, the session, the outbox. Every read is a pure function
//! of the store (no cursor, no hidden state), so reading never changes what the next read
//! returns. The timeline and room list build their windows from these reads.

use chatsync_protocol::{Part, TEXT_PLAIN};

use crate::error::{Error, Result};
use crate::model::*;
use crate::store::messages::StoredMessage;
use crate::store::meta::StoredSession;
use crate::store::outbox::{Op, OutboxRecord, Target};
use crate::store::rooms::{RoomRecord, VisibleFloor};
use crate::store::{SharedStore, Store};

/// Largest `limit` a read accepts; a screen never needs more and it bounds memory.
pub(crate) const MAX_READ_LIMIT: u32 = 1_000;

/// Reads for rendering, shared by the facade and the views.
#[derive(Clone)]
pub(crate) struct Reads {
    store: SharedStore,
    /// The device's user: their messages' sender comes from the session's profile.
    user_id: String,
}

/// A page read from the store, before echoes are merged.
pub(crate) struct StorePage {
    /// Newest first.
    pub messages: Vec<StoredMessage>,
    /// Whether the page stopped at a gap (or started inside one).
    pub hit_gap: bool,
}

/// What a timeline shows: every message from `anchor` up, contiguous, oldest first, with the
/// echoes that belong in that span.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Window {
    pub items: Vec<ChatMessage>,
    /// The oldest server id in the window (`None`: the room holds no message yet).
    pub anchor: Option<u64>,
}

impl Reads {
    pub fn new(store: SharedStore, user_id: String) -> Reads {
        Reads { store, user_id }
    }

    /// The open store, or `ShutDown`.
    pub fn store(&self) -> Result<Store> {
        self.store.get().ok_or(Error::ShutDown)
    }

    /// The stored session as the API shows it.
    pub fn session(&self) -> Result<Option<Session>> {
        Ok(self.store()?.meta.session()?.map(session_of))
    }

    /// A user's display name and avatar from the stored profiles (the id when unknown).
    pub fn chat_user(&self, store: &Store, user_id: &str) -> Result<ChatUser> {
        if user_id == self.user_id {
            if let Some(session) = store.meta.session()? {
                return Ok(session_of(session).user);
            }
        }
        Ok(match store.users.get(user_id)? {
            Some(u) => ChatUser {
                id: u.id,
                name: u.name,
                avatar_url: u.avatar_url,
            },
            None => ChatUser {
                id: user_id.to_owned(),
                name: user_id.to_owned(),
                avatar_url: None,
            },
        })
    }

    /// What rendering a room's messages needs besides the messages: its record (receipts) and
    /// the changes this device has queued about them (shown ahead of the server).
    pub fn room_context(&self, store: &Store, room_id: &str) -> Result<RoomContext> {
        let record = store.room(room_id)?.unwrap_or_else(RoomRecord::first_seen);
        let changes = store
            .outbox
            .entries()?
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.room_id == room_id && !r.op.is_send())
            .collect();
        Ok(RoomContext { record, changes })
    }

    /// A stored message as the app renders it.
    pub fn chat_message(
        &self,
        store: &Store,
        ctx: &RoomContext,
        stored: &StoredMessage,
    ) -> Result<ChatMessage> {
        let m = &stored.message;
        let mut view = ChatMessage {
            id: stored
                .local_id
                .clone()
                .unwrap_or_else(|| m.id.to_string()),
            server_id: Some(m.id),
            local_id: stored.local_id.clone(),
            room_id: m.room_id.clone(),
            sender: self.chat_user(store, &m.user_id)?,
            text: if stored.deleted {
                String::new()
            } else {
                m.text().unwrap_or("").to_owned()
            },
            parts: if stored.deleted {
                Vec::new()
            } else {
                m.parts.iter().map(message_part).collect()
            },
            created_at: m.created_at.clone(),
            state: MessageState::Sent,
            failure_reason: None,
            edited_at: stored.edited_at.clone(),
            deleted: stored.deleted,
            reactions: stored
                .reactions
                .iter()
                .map(|r| ReactionSummary {
                    key: r.key.clone(),
                    count: r.count,
                    me: r.me,
                })
                .collect(),
            read_by: ctx
                .record
                .receipts
                .iter()
                .filter(|(user, read)| **read >= m.id && **user != m.user_id)
                .map(|(user, _)| user.clone())
                .collect(),
            pending_change: false,
        };
        overlay(&mut view, &ctx.changes);
        Ok(view)
    }

    /// The echo of a queued send.
    pub fn echo(&self, store: &Store, ctx: &RoomContext, record: &OutboxRecord) -> Result<ChatMessage> {
        let mut view = ChatMessage {
            id: record.local_id.clone(),
            server_id: None,
            local_id: Some(record.local_id.clone()),
            room_id: record.room_id.clone(),
            sender: self.chat_user(store, &self.user_id)?,
            text: text_of(&record.parts),
            parts: record.parts.iter().map(message_part).collect(),
            created_at: record.created_at.clone(),
            state: record.state,
            failure_reason: record.failure_reason.clone(),
            edited_at: None,
            deleted: false,
            reactions: Vec::new(),
            read_by: Vec::new(),
            pending_change: false,
        };
        overlay(&mut view, &ctx.changes);
        Ok(view)
    }

    /// Up to `limit` stored messages of `room_id` below `before`, newest first, never reading
    /// across a gap.
    pub fn store_page(
        &self,
        store: &Store,
        room_id: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<StorePage> {
        let Some(room) = store.room(room_id)? else {
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
                let messages = store
                    .messages
                    .page_desc(room_id, floor, start, limit as usize)?;
                let hit_gap = floor > 0 && messages.len() < limit as usize;
                Ok(StorePage { messages, hit_gap })
            }
        }
    }

    /// The queued sends of one room (their echoes), in queue order.
    fn room_echoes(&self, store: &Store, room_id: &str) -> Result<Vec<(u64, OutboxRecord)>> {
        Ok(store
            .outbox
            .entries()?
            .into_iter()
            .filter(|(_, r)| r.room_id == room_id && r.op.is_send())
            .collect())
    }

    /// `page` (newest first) with the echoes whose place is inside its span: an echo sits right
    /// above the message that was newest when it was queued (`after_id`). `lower` is the lowest
    /// `after_id` that belongs (the page's oldest id, or 0 when the page reaches the room's
    /// start), `upper` the first that does not. With `keep_below`, echoes whose place lies below
    /// `lower` are kept too, at the newest end (a timeline never hides a queued message just
    /// because newer ones arrived since it was written). Newest first.
    fn merge(
        &self,
        store: &Store,
        room_id: &str,
        page: &[StoredMessage],
        lower: u64,
        upper: u64,
        keep_below: bool,
    ) -> Result<Vec<ChatMessage>> {
        // Sort key, larger is newer: a message by (id, 0, 0), an echo right above the message it
        // was queued after by (after_id, 1, seq).
        let ctx = self.room_context(store, room_id)?;
        let mut items: Vec<((u64, u8, u64), ChatMessage)> = Vec::with_capacity(page.len());
        for stored in page {
            items.push(((stored.message.id, 0, 0), self.chat_message(store, &ctx, stored)?));
        }
        if lower < upper {
            for (seq, record) in self.room_echoes(store, room_id)? {
                let after = record.after_id.unwrap_or(0);
                if after >= lower && after < upper {
                    items.push(((after, 1, seq), self.echo(store, &ctx, &record)?));
                } else if keep_below && after < lower {
                    items.push(((u64::MAX, 1, seq), self.echo(store, &ctx, &record)?));
                }
            }
        }
        items.sort_by_key(|item| std::cmp::Reverse(item.0));
        Ok(items.into_iter().map(|(_, m)| m).collect())
    }

    /// `ChatClient::messages`: up to `limit` stored messages below `before` (all when `None`),
    /// newest first, never across a gap, with the echoes that belong in that span on top of
    /// `limit`. A pure read.
    pub fn messages(
        &self,
        room_id: &str,
        limit: u32,
        before: Option<u64>,
    ) -> Result<Vec<ChatMessage>> {
        check_room_id(room_id)?;
        let limit = check_limit(limit)?;
        let store = self.store()?;
        let page = self.store_page(&store, room_id, limit, before)?;
        let upper = before.unwrap_or(u64::MAX);
        let full = page.messages.len() >= limit as usize;
        let lower = match page.messages.last() {
            Some(last) if page.hit_gap => last.message.id,
            Some(last) if full && !self.at_start(&store, room_id, last.message.id)? => {
                last.message.id
            }
            _ if page.hit_gap => upper, // a hole: no echo can be placed
            _ => 0,
        };
        self.merge(&store, room_id, &page.messages, lower, upper, false)
    }

    /// The window of a timeline: with no anchor, the newest `initial` messages; with one, every
    /// message from the anchor up. Stops at a gap (the anchor moves above it), never reads
    /// across one. Oldest first.
    pub fn window(&self, room_id: &str, anchor: Option<u64>, initial: u32) -> Result<Window> {
        let store = self.store()?;
        let Some(room) = store.room(room_id)? else {
            // Nothing synced yet: only what was queued for the room.
            let mut items = self.merge(&store, room_id, &[], 0, u64::MAX, true)?;
            items.reverse();
            return Ok(Window {
                items,
                anchor: None,
            });
        };
        let messages = match (anchor, room.visible_floor(u64::MAX)) {
            (_, VisibleFloor::Hole) => Vec::new(),
            (None, VisibleFloor::Visible(floor)) => {
                store
                    .messages
                    .page_desc(room_id, floor, u64::MAX, initial as usize)?
            }
            (Some(anchor), VisibleFloor::Visible(floor)) => {
                store
                    .messages
                    .page_desc(room_id, floor.max(anchor), u64::MAX, usize::MAX)?
            }
        };
        let anchor = messages.last().map(|m| m.message.id);
        let lower = match anchor {
            Some(oldest) if !at_start(&store, &room, room_id, oldest)? => oldest,
            _ => 0,
        };
        let mut items = self.merge(&store, room_id, &messages, lower, u64::MAX, true)?;
        items.reverse();
        Ok(Window { items, anchor })
    }

    /// The message the app's id names (a server id, or the local id of a message sent from this
    /// device, queued or sent), wherever it is held; `None` when it is not on the device.
    pub fn message(&self, id: &str) -> Result<Option<ChatMessage>> {
        let store = self.store()?;
        for (_, record) in store.outbox.entries()? {
            if record.op.is_send() && record.local_id == id {
                let ctx = self.room_context(&store, &record.room_id)?;
                return Ok(Some(self.echo(&store, &ctx, &record)?));
            }
        }
        for (room_id, _) in store.rooms()? {
            let server_id = match id.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => store.server_id_of(&room_id, id)?,
            };
            if let Some(stored) = server_id
                .map(|n| store.messages.get(&room_id, n))
                .transpose()?
                .flatten()
            {
                let ctx = self.room_context(&store, &room_id)?;
                return Ok(Some(self.chat_message(&store, &ctx, &stored)?));
            }
        }
        Ok(None)
    }

    /// Whether stored or server history exists below `id` in `room_id`.
    pub fn has_older(&self, room_id: &str, id: u64) -> Result<bool> {
        let store = self.store()?;
        Ok(!self.at_start(&store, room_id, id)?)
    }

    fn at_start(&self, store: &Store, room_id: &str, id: u64) -> Result<bool> {
        let room = store.room(room_id)?.unwrap_or_else(RoomRecord::first_seen);
        at_start(store, &room, room_id, id)
    }

    /// The rooms held on the device with their newest visible message, most recently active
    /// first (a room without messages by its id, after the others).
    pub fn rooms(&self) -> Result<Vec<RoomSummary>> {
        let store = self.store()?;
        let mut out = Vec::new();
        for (id, record) in store.rooms()? {
            let unread = store.unread_shown(&id, &record)?;
            let page = self.store_page(&store, &id, 1, None)?;
            let lower = page.messages.last().map_or(0, |m| m.message.id);
            let last_message = self
                .merge(&store, &id, &page.messages, lower, u64::MAX, true)?
                .into_iter()
                .next();
            let (name, member_ids) = match record.info {
                Some(info) => (info.name, info.member_ids),
                None => (None, Vec::new()),
            };
            out.push(RoomSummary {
                id,
                name,
                member_ids,
                last_message,
                unread,
            });
        }
        out.sort_by(|a, b| {
            let t = |r: &RoomSummary| r.last_message.as_ref().map(|m| m.created_at.clone());
            t(b).cmp(&t(a)).then_with(|| a.id.cmp(&b.id))
        });
        Ok(out)
    }

    /// The app badge: every room's unread count as [`Reads::rooms`] shows it.
    pub fn unread_total(&self) -> Result<u32> {
        Ok(self.store()?.unread_total()?)
    }

    /// Every queued message (pending and failed), in send order.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        Ok(self
            .store()?
            .outbox
            .entries()?
            .into_iter()
            .map(|(_, r)| OutboxEntry {
                kind: match &r.op {
                    Op::Send => ChangeKind::Send,
                    Op::Edit { .. } => ChangeKind::Edit,
                    Op::Delete { .. } => ChangeKind::Delete,
                    Op::React { .. } => ChangeKind::React,
                    Op::Receipt { .. } => ChangeKind::Receipt,
                },
                target_id: match &r.op {
                    Op::Edit { target } | Op::Delete { target } | Op::React { target, .. } => target
                        .local_id
                        .clone()
                        .or_else(|| target.server_id.map(|id| id.to_string())),
                    _ => None,
                },
                text: match &r.op {
                    Op::React { key, .. } => key.clone(),
                    _ => text_of(&r.parts),
                },
                local_id: r.local_id,
                room_id: r.room_id,
                created_at: r.created_at,
                state: r.state,
                attempts: r.attempts,
                failure_reason: r.failure_reason,
            })
            .collect())
    }
}

/// Whether nothing older than `id` exists for `room_id`, on the device or on the server.
fn at_start(store: &Store, room: &RoomRecord, room_id: &str, id: u64) -> Result<bool> {
    Ok(!room.older_exists
        && !room.gaps.iter().any(|g| g.after < id)
        && !store.messages.any_below(room_id, id)?)
}

fn session_of(s: StoredSession) -> Session {
    Session {
        user: ChatUser {
            id: s.user.id,
            name: s.user.name,
            avatar_url: s.user.avatar,
        },
    }
}

/// The content of the first `text/plain` part ("" when there is none).
pub(crate) fn text_of(parts: &[Part]) -> String {
    parts
        .iter()
        .find(|p| p.mime_type == TEXT_PLAIN)
        .and_then(|p| p.content.clone())
        .unwrap_or_default()
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
pub(crate) fn check_room_id(room_id: &str) -> Result<()> {
    Ok(chatsync_protocol::limits::check_id("room id", room_id)?)
}

/// Refuses a zero limit and caps large ones.
pub(crate) fn check_limit(limit: u32) -> Result<u32> {
    if limit == 0 {
        return Err(Error::InvalidInput("limit must be at least 1".into()));
    }
    Ok(limit.min(MAX_READ_LIMIT))
}

/// A room's record and the changes this device has queued about its messages.
pub(crate) struct RoomContext {
    pub record: RoomRecord,
    /// Queued edits, deletions, reactions and receipts of the room, in queue order.
    pub changes: Vec<OutboxRecord>,
}

/// Whether `target` names the message shown as `view`.
fn names(target: &Target, view: &ChatMessage) -> bool {
    (target.server_id.is_some() && target.server_id == view.server_id)
        || (target.local_id.is_some() && target.local_id == view.local_id)
}

/// Shows this device's queued changes to a message ahead of the server: an edit's text, a
/// deletion's tombstone, a reaction toggled.
fn overlay(view: &mut ChatMessage, changes: &[OutboxRecord]) {
    for change in changes {
        match &change.op {
            Op::Edit { target } if names(target, view) => {
                view.text = text_of(&change.parts);
                view.parts = change.parts.iter().map(message_part).collect();
                view.edited_at = Some(change.created_at.clone());
                view.pending_change = true;
            }
            Op::Delete { target } if names(target, view) => {
                view.deleted = true;
                view.text.clear();
                view.parts.clear();
                view.reactions.clear();
                view.pending_change = true;
            }
            Op::React { target, key, on } if names(target, view) => {
                let at = view.reactions.iter().position(|r| r.key == *key);
                match (at, *on) {
                    (Some(i), true) if !view.reactions[i].me => {
                        view.reactions[i].count += 1;
                        view.reactions[i].me = true;
                    }
                    (None, true) => view.reactions.push(ReactionSummary {
                        key: key.clone(),
                        count: 1,
                        me: true,
                    }),
                    (Some(i), false) if view.reactions[i].me => {
                        view.reactions[i].count = view.reactions[i].count.saturating_sub(1);
                        view.reactions[i].me = false;
                        if view.reactions[i].count == 0 {
                            view.reactions.remove(i);
                        }
                    }
                    _ => {}
                }
                view.pending_change = true;
            }
            _ => {}
        }
    }
}
