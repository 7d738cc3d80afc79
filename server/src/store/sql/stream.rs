//! Protocol v2 over SQL: the change stream, the writes that change a message after it was sent
//! (edits, deletions, reactions), read receipts and unread counts, and the v2 reads (history with
//! state, sync from a position).
//!
//! Every change writes one row of `changes`; its `pos` is the previous one plus one, taken inside
//! the transaction that commits it while that transaction holds the database's write lock (see
//! [`super`]). Transactions that take positions therefore commit one after another, so positions
//! are in commit order, and a reader's snapshot holds exactly the positions 1 to its head: a later
//! commit can only bring larger ones. Message ids are assigned the same way (same transaction,
//! same lock), so ids and the positions of their sends grow together: the sends after a position
//! are the messages from some id on. The sync below relies on that
//! (docs/adr/0015-change-stream.md, docs/adr/0017-postgresql.md).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chatsync_protocol::v2::{MAX_REACTION_KEYS_PER_USER, SYNC_MAX_CHANGES};
use chatsync_protocol::{Direction, Room};
use super::value::{args, Sql};
use super::{members_of, query_states, to_i64, RoomCache, MESSAGE_COLUMNS};
use crate::store::{
    Change, Committed, DeleteMessage, EditMessage, Head, HistoryPage, HistoryQuery, MessageState, React,
    ReadReceipt, ReadState, Refusal, StoreError, StreamBatch, StreamRoom, UpdateKind, WriteResult,
};

/// The `kind` column of `changes` (and of `writes`, for the kinds a txn id can make).
pub(crate) mod kind {
    /// A new message.
    pub const SEND: i64 = 0;
    /// A message's parts replaced.
    pub const EDIT: i64 = 1;
    /// A message made a tombstone.
    pub const DELETION: i64 = 2;
    /// A reaction added or removed.
    pub const REACTION: i64 = 3;
    /// A receipt moved forward.
    pub const RECEIPT: i64 = 4;
    /// A room created (its members joined).
    pub const ROOM: i64 = 5;
}

/// Writes the change row and returns its position: the one after the head's, taken under the
/// write lock. `unread` is a receipt's reader's unread count after it (what a follower of the
/// stream reports, [`changes_after`]). The caller moves the room's `last_pos`.
pub(super) fn record_change(
    tx: &dyn Sql,
    room_id: &str,
    kind: i64,
    message_id: Option<u64>,
    user_id: Option<&str>,
    unread: Option<u32>,
    head: &mut Head,
) -> Result<u64, StoreError> {
    let pos = head.pos + 1;
    // Read back only by later transactions (a follower, a sync): held for the commit.
    tx.execute_later(
        "INSERT INTO changes (pos, room_id, kind, message_id, user_id, unread) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        args![
            to_i64(pos),
            room_id,
            kind,
            message_id.map(to_i64),
            user_id,
            unread.map(i64::from)
        ],
    )?;
    head.pos = pos;
    Ok(pos)
}

/// Moves each room's newest change (what a v2 sync uses to skip unchanged rooms) and newest
/// message (v1's) to this transaction's changes: one statement per room, at the end, held for
/// the commit.
pub(super) fn touch_rooms(tx: &dyn Sql, changes: &[Change]) -> Result<(), StoreError> {
    let mut rooms: BTreeMap<&str, (u64, Option<u64>)> = BTreeMap::new();
    for change in changes {
        let room = rooms.entry(change.room_id()).or_default();
        room.0 = room.0.max(change.pos());
        if let Change::Message { message, .. } = change {
            room.1 = Some(room.1.unwrap_or(0).max(message.id));
        }
    }
    for (room_id, (pos, message_id)) in rooms {
        match message_id {
            Some(id) => tx.execute_later(
                "UPDATE rooms SET last_pos = ?1, last_message_id = ?2 WHERE id = ?3",
                args![to_i64(pos), to_i64(id), room_id],
            )?,
            None => tx.execute_later(
                "UPDATE rooms SET last_pos = ?1 WHERE id = ?2",
                args![to_i64(pos), room_id],
            )?,
        };
    }
    Ok(())
}

/// The newest position in a snapshot (0: none yet).
pub(super) fn stream_head(tx: &dyn Sql) -> Result<u64, StoreError> {
    tx.query_one("SELECT COALESCE(MAX(pos), 0) FROM changes", &[])?
        .get(0)
}

/// A message's reactions: by key in the order first given, each with its reactors sorted.
pub(super) fn reactions_of(
    tx: &dyn Sql,
    message_id: u64,
) -> Result<Vec<(String, Vec<String>)>, StoreError> {
    let rows = tx.query(
        "SELECT key, user_id, pos FROM reactions WHERE message_id = ?1 ORDER BY key, user_id",
        args![to_i64(message_id)],
    )?;
    let rows = rows
        .iter()
        .map(|row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(group_reactions(rows))
}

/// Reaction rows (key, user, position given) sorted by key and user, grouped: by key in the order
/// first given, each with its reactors sorted.
pub(super) fn group_reactions(rows: Vec<(String, String, i64)>) -> Vec<(String, Vec<String>)> {
    let mut keys: Vec<(i64, String, Vec<String>)> = Vec::new();
    for (key, user, pos) in rows {
        match keys.last_mut() {
            Some((first, k, users)) if *k == key => {
                *first = (*first).min(pos);
                users.push(user);
            }
            _ => keys.push((pos, key, vec![user])),
        }
    }
    keys.sort_by_key(|(first, _, _)| *first);
    keys.into_iter().map(|(_, k, users)| (k, users)).collect()
}

/// A message with its reactions, if it exists.
fn load_state(tx: &dyn Sql, message_id: u64) -> Result<Option<MessageState>, StoreError> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1");
    Ok(query_states(tx, &sql, args![to_i64(message_id)], true)?
        .into_iter()
        .next())
}

/// A message as it is now; it exists (messages are never removed, only made tombstones).
fn current(tx: &dyn Sql, message_id: u64) -> Result<MessageState, StoreError> {
    load_state(tx, message_id)?
        .ok_or_else(|| StoreError::Corrupt(format!("message {message_id} vanished")))
}

/// A message of this room, or `None` (no such message, or in another room: both a 404).
fn load_in_room(
    tx: &dyn Sql,
    message_id: u64,
    room_id: &str,
) -> Result<Option<MessageState>, StoreError> {
    Ok(load_state(tx, message_id)?.filter(|m| m.room_id == room_id))
}

/// What a txn id of this user and kind did before: its room and message.
fn repeated(
    tx: &dyn Sql,
    user_id: &str,
    kind: i64,
    txn_id: &str,
) -> Result<Option<(String, Option<u64>)>, StoreError> {
    tx.query_opt(
        "SELECT room_id, message_id FROM writes WHERE user_id = ?1 AND kind = ?2 AND txn_id = ?3",
        args![user_id, kind, txn_id],
    )?
    .map(|row| Ok((row.get(0)?, row.get(1)?)))
    .transpose()
}

/// Records that a txn id did its write (whether or not it changed anything), so a repeat
/// changes nothing.
fn record_write(
    tx: &dyn Sql,
    user_id: &str,
    kind: i64,
    txn_id: &str,
    room_id: &str,
    message_id: Option<u64>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO writes (user_id, kind, txn_id, room_id, message_id) VALUES (?1, ?2, ?3, ?4, ?5)",
        args![user_id, kind, txn_id, room_id, message_id.map(to_i64)],
    )?;
    Ok(())
}

/// The answer to a repeated txn id of a message write: the message as it is now (not as it was
/// then: an old state would move a device's copy backwards).
fn repeated_message(
    tx: &dyn Sql,
    user_id: &str,
    kind: i64,
    txn_id: &str,
) -> Result<Option<MessageState>, StoreError> {
    match repeated(tx, user_id, kind, txn_id)? {
        Some((_, Some(id))) => Ok(Some(current(tx, id)?)),
        Some((_, None)) => Err(StoreError::Corrupt(format!(
            "the write record of txn {txn_id} has no message"
        ))),
        None => Ok(None),
    }
}

/// Replaces a message's parts.
pub(super) fn edit(
    tx: &dyn Sql,
    edit: &EditMessage,
    rooms: &RoomCache,
    head: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<WriteResult<MessageState>, StoreError> {
    if let Some(message) = repeated_message(tx, &edit.user_id, kind::EDIT, &edit.txn_id)? {
        return Ok(Ok(message));
    }
    let Some(mut message) = load_in_room(tx, edit.message_id, &edit.room_id)? else {
        return Ok(Err(Refusal::NoSuchMessage));
    };
    if message.user_id != edit.user_id {
        return Ok(Err(Refusal::NotSender));
    }
    if message.deleted {
        return Ok(Err(Refusal::Deleted));
    }
    let parts =
        serde_json::to_string(&edit.parts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    tx.execute(
        "UPDATE messages SET parts = ?1, edited_at = ?2, updated_at = ?2 WHERE id = ?3",
        args![parts.as_str(), &edit.now, to_i64(message.id)],
    )?;
    let pos = record_change(tx, &edit.room_id, kind::EDIT, Some(message.id), None, None, head)?;
    record_write(
        tx,
        &edit.user_id,
        kind::EDIT,
        &edit.txn_id,
        &edit.room_id,
        Some(message.id),
    )?;
    message.parts = edit.parts.clone();
    message.edited_at = Some(edit.now.clone());
    message.updated_at = edit.now.clone();
    changes.push(Change::Updated {
        pos,
        kind: UpdateKind::Edit,
        message: Arc::new(message.clone()),
        members: members_of(tx, rooms, &edit.room_id)?,
    });
    Ok(Ok(message))
}

/// Makes a message a tombstone: its parts, its edit time and its reactions are gone from the
/// database, its id and place stay.
pub(super) fn delete(
    tx: &dyn Sql,
    delete: &DeleteMessage,
    rooms: &RoomCache,
    head: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<WriteResult<MessageState>, StoreError> {
    if let Some(message) = repeated_message(tx, &delete.user_id, kind::DELETION, &delete.txn_id)? {
        return Ok(Ok(message));
    }
    let Some(mut message) = load_in_room(tx, delete.message_id, &delete.room_id)? else {
        return Ok(Err(Refusal::NoSuchMessage));
    };
    if message.user_id != delete.user_id {
        return Ok(Err(Refusal::NotSender));
    }
    let id = message.id;
    record_write(
        tx,
        &delete.user_id,
        kind::DELETION,
        &delete.txn_id,
        &delete.room_id,
        Some(id),
    )?;
    if message.deleted {
        // Deleting again changes nothing.
        return Ok(Ok(message));
    }
    tx.execute(
        "UPDATE messages SET parts = '[]', edited_at = NULL, deleted = 1, updated_at = ?1 WHERE id = ?2",
        args![&delete.now, to_i64(id)],
    )?;
    tx.execute(
        "DELETE FROM reactions WHERE message_id = ?1",
        args![to_i64(id)],
    )?;
    let pos = record_change(tx, &delete.room_id, kind::DELETION, Some(id), None, None, head)?;
    message.parts = Vec::new();
    message.edited_at = None;
    message.deleted = true;
    message.reactions = Vec::new();
    message.updated_at = delete.now.clone();
    changes.push(Change::Updated {
        pos,
        kind: UpdateKind::Deletion,
        message: Arc::new(message.clone()),
        members: members_of(tx, rooms, &delete.room_id)?,
    });
    Ok(Ok(message))
}

/// Adds or removes one user's reaction with one key.
pub(super) fn react(
    tx: &dyn Sql,
    react: &React,
    rooms: &RoomCache,
    head: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<WriteResult<MessageState>, StoreError> {
    if let Some(message) = repeated_message(tx, &react.user_id, kind::REACTION, &react.txn_id)? {
        return Ok(Ok(message));
    }
    let Some(mut message) = load_in_room(tx, react.message_id, &react.room_id)? else {
        return Ok(Err(Refusal::NoSuchMessage));
    };
    if message.deleted {
        return Ok(Err(Refusal::Deleted));
    }
    let id = to_i64(message.id);
    let exists = tx
        .query_opt(
            "SELECT 1 FROM reactions WHERE message_id = ?1 AND key = ?2 AND user_id = ?3",
            args![id, &react.key, &react.user_id],
        )?
        .is_some();
    let changed = match (react.on, exists) {
        (true, false) => {
            let keys: i64 = tx
                .query_one(
                    "SELECT COUNT(*) FROM reactions WHERE message_id = ?1 AND user_id = ?2",
                    args![id, &react.user_id],
                )?
                .get(0)?;
            if keys as usize >= MAX_REACTION_KEYS_PER_USER {
                return Ok(Err(Refusal::TooManyReactions));
            }
            let pos = record_change(
                tx,
                &react.room_id,
                kind::REACTION,
                Some(message.id),
                Some(&react.user_id),
                None,
                head,
            )?;
            tx.execute(
                "INSERT INTO reactions (message_id, key, user_id, pos) VALUES (?1, ?2, ?3, ?4)",
                args![id, &react.key, &react.user_id, to_i64(pos)],
            )?;
            Some(pos)
        }
        (false, true) => {
            tx.execute(
                "DELETE FROM reactions WHERE message_id = ?1 AND key = ?2 AND user_id = ?3",
                args![id, &react.key, &react.user_id],
            )?;
            Some(record_change(
                tx,
                &react.room_id,
                kind::REACTION,
                Some(message.id),
                Some(&react.user_id),
                None,
                head,
            )?)
        }
        // Already so: nothing changes.
        _ => None,
    };
    record_write(
        tx,
        &react.user_id,
        kind::REACTION,
        &react.txn_id,
        &react.room_id,
        Some(message.id),
    )?;
    message.reactions = reactions_of(tx, message.id)?;
    if let Some(pos) = changed {
        changes.push(Change::Updated {
            pos,
            kind: UpdateKind::Reaction,
            message: Arc::new(message.clone()),
            members: members_of(tx, rooms, &react.room_id)?,
        });
    }
    Ok(Ok(message))
}

/// Moves a user's read-up-to forward (an older one changes nothing) and answers where it is.
pub(super) fn receipt(
    tx: &dyn Sql,
    receipt: &ReadReceipt,
    rooms: &RoomCache,
    head: &mut Head,
    changes: &mut Vec<Change>,
) -> Result<WriteResult<ReadState>, StoreError> {
    if let Some((room_id, _)) = repeated(tx, &receipt.user_id, kind::RECEIPT, &receipt.txn_id)? {
        return Ok(Ok(read_state(tx, &room_id, &receipt.user_id)?));
    }
    let in_room: Option<String> = tx
        .query_opt(
            "SELECT room_id FROM messages WHERE id = ?1",
            args![to_i64(receipt.message_id)],
        )?
        .map(|row| row.get(0))
        .transpose()?;
    if in_room.as_deref() != Some(receipt.room_id.as_str()) {
        return Ok(Err(Refusal::NoSuchMessage));
    }
    let before = read_upto(tx, &receipt.room_id, &receipt.user_id)?;
    let moved = receipt.message_id > before;
    let pos = if moved {
        let pos = record_change(
            tx,
            &receipt.room_id,
            kind::RECEIPT,
            Some(receipt.message_id),
            Some(&receipt.user_id),
            None,
            head,
        )?;
        tx.execute(
            "INSERT INTO receipts (room_id, user_id, message_id, pos) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (room_id, user_id) DO UPDATE SET message_id = excluded.message_id, pos = excluded.pos",
            args![
                &receipt.room_id,
                &receipt.user_id,
                to_i64(receipt.message_id),
                to_i64(pos)
            ],
        )?;
        Some(pos)
    } else {
        None
    };
    record_write(
        tx,
        &receipt.user_id,
        kind::RECEIPT,
        &receipt.txn_id,
        &receipt.room_id,
        None,
    )?;
    let read = read_state(tx, &receipt.room_id, &receipt.user_id)?;
    if let Some(pos) = pos {
        // The count as of this change, for a follower of the stream ([`changes_after`]).
        tx.execute_later(
            "UPDATE changes SET unread = ?1 WHERE pos = ?2",
            args![i64::from(read.unread), to_i64(pos)],
        )?;
        changes.push(Change::Receipt {
            pos,
            room_id: receipt.room_id.as_str().into(),
            user_id: receipt.user_id.as_str().into(),
            read,
            members: members_of(tx, rooms, &receipt.room_id)?,
        });
    }
    Ok(Ok(read))
}

/// A user's read-up-to message id in a room (0: none).
fn read_upto(tx: &dyn Sql, room_id: &str, user_id: &str) -> Result<u64, StoreError> {
    let id: Option<u64> = tx
        .query_opt(
            "SELECT message_id FROM receipts WHERE room_id = ?1 AND user_id = ?2",
            args![room_id, user_id],
        )?
        .map(|row| row.get(0))
        .transpose()?;
    Ok(id.unwrap_or(0))
}

/// A user's read-up-to in a room and the messages from others after it, not deleted. The count
/// walks the room's messages after the receipt (index `messages_by_room`).
pub(super) fn read_state(
    tx: &dyn Sql,
    room_id: &str,
    user_id: &str,
) -> Result<ReadState, StoreError> {
    let read_upto = read_upto(tx, room_id, user_id)?;
    let unread: i64 = tx
        .query_one(
            "SELECT COUNT(*) FROM messages
             WHERE room_id = ?1 AND id > ?2 AND user_id <> ?3 AND deleted = 0",
            args![room_id, to_i64(read_upto), user_id],
        )?
        .get(0)?;
    Ok(ReadState {
        read_upto,
        unread: u32::try_from(unread).unwrap_or(u32::MAX),
    })
}

/// A page of v2 history: v1's paging, messages in their state, tombstones included.
pub(super) fn history(
    tx: &dyn Sql,
    room_id: &str,
    query: HistoryQuery,
) -> Result<HistoryPage<MessageState>, StoreError> {
    let fetch = query.limit as i64 + 1;
    let mut messages = match query.direction {
        Direction::Older => {
            let before = query.initial_id.map_or(i64::MAX, to_i64);
            let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3");
            query_states(tx, &sql, args![room_id, before, fetch], true)?
        }
        Direction::Newer => {
            let after = query.initial_id.map_or(0, to_i64);
            let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 ORDER BY id ASC LIMIT ?3");
            query_states(tx, &sql, args![room_id, after, fetch], true)?
        }
    };
    let has_more = messages.len() > query.limit as usize;
    messages.truncate(query.limit as usize);
    if query.direction == Direction::Older {
        messages.reverse();
    }
    Ok(HistoryPage { messages, has_more })
}

/// The newest `limit` messages of a room with `after < id <= upto` in their state, ascending,
/// and whether older ones in that range were left out.
fn newest_in_range(
    tx: &dyn Sql,
    room_id: &str,
    after: u64,
    upto: u64,
    limit: u32,
) -> Result<(Vec<MessageState>, bool), StoreError> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE room_id = ?1 AND id > ?2 AND id <= ?3 ORDER BY id DESC LIMIT ?4"
    );
    let mut messages = query_states(
        tx,
        &sql,
        args![room_id, to_i64(after), to_i64(upto), limit as i64 + 1],
        true,
    )?;
    let limited = messages.len() > limit as usize;
    messages.truncate(limit as usize);
    messages.reverse();
    Ok((messages, limited))
}

/// Every member's read-up-to in a room.
fn receipts_of(tx: &dyn Sql, room_id: &str) -> Result<BTreeMap<String, u64>, StoreError> {
    tx.query(
        "SELECT user_id, message_id FROM receipts WHERE room_id = ?1",
        args![room_id],
    )?
    .iter()
    .map(|row| Ok((row.get(0)?, row.get(1)?)))
    .collect()
}

/// A room as a device that does not know it gets it: its newest messages up to `upto`, every
/// member's receipt, the user's unread count.
fn whole_room(
    tx: &dyn Sql,
    room_id: &str,
    user_id: &str,
    upto: u64,
    limit: u32,
) -> Result<StreamRoom, StoreError> {
    let (messages, limited) = newest_in_range(tx, room_id, 0, upto, limit)?;
    Ok(StreamRoom {
        messages,
        limited,
        updates: Vec::new(),
        receipts: receipts_of(tx, room_id)?,
        unread: read_state(tx, room_id, user_id)?.unread,
    })
}

/// Whether a room was created after position `upto` (rooms from before the stream have no
/// creation row: never).
fn created_after(tx: &dyn Sql, room_id: &str, upto: u64) -> Result<bool, StoreError> {
    let pos: Option<u64> = tx
        .query_opt(
            "SELECT pos FROM changes WHERE room_id = ?1 AND kind = 5",
            args![room_id],
        )?
        .map(|row| row.get(0))
        .transpose()?;
    Ok(pos.is_some_and(|pos| pos > upto))
}

/// One change row other than a send.
struct ChangeRow {
    pos: u64,
    room: usize,
    kind: i64,
    message_id: Option<u64>,
    user_id: Option<String>,
}

/// A v2 sync from the database, in one snapshot (see [`crate::store::Store::sync_v2`]).
pub(super) fn sync(
    tx: &dyn Sql,
    user_id: &str,
    since: Option<u64>,
    limit: u32,
    also: &[String],
) -> Result<StreamBatch, StoreError> {
    let head = stream_head(tx)?;
    // The user's rooms, oldest membership first, with each one's newest change.
    let rooms: Vec<(String, u64)> = tx
        .query(
            "SELECT m.room_id, r.last_pos FROM members m JOIN rooms r ON r.id = m.room_id
             WHERE m.user_id = ?1 ORDER BY m.seq",
            args![user_id],
        )?
        .iter()
        .map(|row| Ok((row.get(0)?, row.get(1)?)))
        .collect::<Result<_, StoreError>>()?;
    let mut out = BTreeMap::new();
    let Some(since) = since else {
        for (room_id, _) in &rooms {
            let room = whole_room(tx, room_id, user_id, u64::MAX, limit)?;
            out.insert(room_id.clone(), room);
        }
        return Ok(StreamBatch {
            pos: head,
            has_more: false,
            rooms: out,
        });
    };
    if since > head {
        // Not from this database: the route refuses it.
        return Ok(StreamBatch {
            pos: head,
            has_more: false,
            rooms: out,
        });
    }
    // The changes other than sends in the user's rooms after `since`, in order; one more than
    // the bound tells whether the answer must stop before the end.
    let cap = SYNC_MAX_CHANGES + 1;
    let mut found: Vec<ChangeRow> = Vec::new();
    for (i, (room_id, last)) in rooms.iter().enumerate() {
        if *last <= since {
            continue;
        }
        let rows = tx.query(
            "SELECT pos, kind, message_id, user_id FROM changes
             WHERE room_id = ?1 AND pos > ?2 AND kind <> 0 ORDER BY pos LIMIT ?3",
            args![room_id, to_i64(since), cap as i64],
        )?;
        for row in rows {
            found.push(ChangeRow {
                pos: row.get(0)?,
                room: i,
                kind: row.get(1)?,
                message_id: row.get(2)?,
                user_id: row.get(3)?,
            });
        }
    }
    found.sort_by_key(|row| row.pos);
    // (A room's rows past its first `cap` come after `cap` rows in order: never among the
    // first `cap` overall.)
    let (upto, has_more) = if found.len() > SYNC_MAX_CHANGES {
        let upto = found[SYNC_MAX_CHANGES].pos - 1;
        found.truncate(SYNC_MAX_CHANGES);
        (upto, true)
    } else {
        (head, false)
    };
    // The first message sent after `since` splits new messages from older ones; the newest
    // sent up to `upto` bounds what the answer shows (ids grow with positions).
    let first_new: Option<u64> = tx
        .query_opt(
            "SELECT message_id FROM changes WHERE pos > ?1 AND kind = 0 ORDER BY pos LIMIT 1",
            args![to_i64(since)],
        )?
        .map(|row| row.get(0))
        .transpose()?;
    let last_new: Option<u64> = tx
        .query_opt(
            "SELECT message_id FROM changes WHERE pos > ?1 AND pos <= ?2 AND kind = 0
             ORDER BY pos DESC LIMIT 1",
            args![to_i64(since), to_i64(upto)],
        )?
        .map(|row| row.get(0))
        .transpose()?;
    let older = |id: u64| first_new.is_none_or(|first| id < first);
    let mut per_room: BTreeMap<usize, Vec<&ChangeRow>> = BTreeMap::new();
    for row in &found {
        per_room.entry(row.room).or_default().push(row);
    }
    for (i, (room_id, last)) in rooms.iter().enumerate() {
        let typing_only = also.contains(room_id);
        if *last <= since && !typing_only {
            continue;
        }
        let rows = per_room.get(&i).map(Vec::as_slice).unwrap_or_default();
        if rows.iter().any(|row| row.kind == kind::ROOM) {
            // Joined after `since`: the whole room, as on an initial sync.
            let room = whole_room(tx, room_id, user_id, last_new.unwrap_or(0), limit)?;
            out.insert(room_id.clone(), room);
            continue;
        }
        let (messages, limited) = match (first_new, last_new) {
            (Some(first), Some(last)) => newest_in_range(tx, room_id, first - 1, last, limit)?,
            _ => (Vec::new(), false),
        };
        let updated: BTreeSet<u64> = rows
            .iter()
            .filter(|row| matches!(row.kind, kind::EDIT | kind::DELETION | kind::REACTION))
            .filter_map(|row| row.message_id)
            .filter(|id| older(*id))
            .collect();
        let mut updates = Vec::with_capacity(updated.len());
        for id in updated {
            updates.push(current(tx, id)?);
        }
        let mut receipts = BTreeMap::new();
        for row in rows.iter().filter(|row| row.kind == kind::RECEIPT) {
            if let Some(reader) = &row.user_id {
                receipts.insert(reader.clone(), read_upto(tx, room_id, reader)?);
            }
        }
        if messages.is_empty() && updates.is_empty() && receipts.is_empty() {
            // Only someone's typing: shown once the device knows the room (created by `upto`).
            if !typing_only || created_after(tx, room_id, upto)? {
                continue;
            }
        }
        let unread = read_state(tx, room_id, user_id)?.unread;
        out.insert(
            room_id.clone(),
            StreamRoom {
                messages,
                limited,
                updates,
                receipts,
                unread,
            },
        );
    }
    Ok(StreamBatch {
        pos: upto,
        has_more,
        rooms: out,
    })
}

/// The changes after position `after` (at most `max`), as their commits reported them, with each
/// message as it is in this snapshot (what every answer shows at the head anyway), and the head
/// they bring the store to. How a follower of the stream learns of commits it did not make: each
/// PostgreSQL instance hands other instances' commits to its feed this way
/// ([`super::postgres::Follower`]).
pub(super) fn changes_after(
    tx: &dyn Sql,
    rooms: &RoomCache,
    after: u64,
    max: usize,
) -> Result<Committed, StoreError> {
    let rows = tx.query(
        "SELECT pos, room_id, kind, message_id, user_id, unread FROM changes
         WHERE pos > ?1 ORDER BY pos LIMIT ?2",
        args![to_i64(after), i64::try_from(max).unwrap_or(i64::MAX)],
    )?;
    let complete = rows.len() < max;
    let Some(last) = rows.last().map(|row| row.get::<u64>(0)).transpose()? else {
        return Ok(Committed {
            changes: Vec::new(),
            head: Head {
                v1: Default::default(),
                pos: after,
            },
        });
    };
    // Every message these changes are about, with its reactions: two queries in all.
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id IN
         (SELECT message_id FROM changes WHERE pos > ?1 AND pos <= ?2 AND kind <= 3)"
    );
    let mut states: HashMap<u64, Arc<MessageState>> =
        query_states(tx, &sql, args![to_i64(after), to_i64(last)], true)?
            .into_iter()
            .map(|m| (m.id, Arc::new(m)))
            .collect();
    let mut changes = Vec::with_capacity(rows.len());
    for row in &rows {
        let pos: u64 = row.get(0)?;
        let room_id: String = row.get(1)?;
        let change_kind: i64 = row.get(2)?;
        let message_id: Option<u64> = row.get(3)?;
        let missing = |what: &str| StoreError::Corrupt(format!("change {pos} has no {what}"));
        let change = match change_kind {
            kind::SEND | kind::EDIT | kind::DELETION | kind::REACTION => {
                let id = message_id.ok_or_else(|| missing("message"))?;
                let message = match states.get(&id) {
                    Some(message) => Arc::clone(message),
                    None => {
                        let message = Arc::new(current(tx, id)?);
                        states.insert(id, Arc::clone(&message));
                        message
                    }
                };
                let members = members_of(tx, rooms, &room_id)?;
                let update = match change_kind {
                    kind::EDIT => Some(UpdateKind::Edit),
                    kind::DELETION => Some(UpdateKind::Deletion),
                    kind::REACTION => Some(UpdateKind::Reaction),
                    _ => None,
                };
                match update {
                    None => Change::Message {
                        pos,
                        message,
                        members,
                    },
                    Some(kind) => Change::Updated {
                        pos,
                        kind,
                        message,
                        members,
                    },
                }
            }
            kind::RECEIPT => {
                let user_id: String = row.get::<Option<String>>(4)?.ok_or_else(|| missing("user"))?;
                let unread: u64 = row.get::<Option<u64>>(5)?.unwrap_or(0);
                Change::Receipt {
                    pos,
                    members: members_of(tx, rooms, &room_id)?,
                    room_id: room_id.into(),
                    user_id: user_id.into(),
                    read: ReadState {
                        read_upto: message_id.unwrap_or(0),
                        unread: u32::try_from(unread).unwrap_or(u32::MAX),
                    },
                }
            }
            kind::ROOM => {
                let members = tx.query(
                    "SELECT user_id, seq FROM members WHERE room_id = ?1 ORDER BY user_id",
                    args![&room_id],
                )?;
                let room = tx
                    .query_one(
                        "SELECT name, created_at FROM rooms WHERE id = ?1",
                        args![&room_id],
                    )?;
                let mut member_ids = Vec::with_capacity(members.len());
                let mut seqs = Vec::with_capacity(members.len());
                for member in &members {
                    member_ids.push(member.get(0)?);
                    seqs.push(member.get(1)?);
                }
                Change::Room {
                    pos,
                    room: Arc::new(Room {
                        id: room_id,
                        name: room.get(0)?,
                        member_ids,
                        created_at: room.get(1)?,
                    }),
                    seqs: seqs.into(),
                }
            }
            other => return Err(StoreError::Corrupt(format!("change {pos} has kind {other}"))),
        };
        changes.push(change);
    }
    let head = if complete {
        super::current_head(tx)?
    } else {
        // A part: the feed takes v1's position from the changes themselves.
        Head {
            v1: Default::default(),
            pos: changes.last().map_or(after, Change::pos),
        }
    };
    Ok(Committed { changes, head })
}
