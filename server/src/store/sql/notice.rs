//! Commit notices: what a PostgreSQL instance's `NOTIFY` tells the other instances about each
//! of its commits. The commit's changes themselves when they fit in a notification (PostgreSQL
//! refuses payloads of 8000 bytes or more), so that the others hand them to their feeds without
//! reading the database; else only the new head, and the others read the changes.
//!
//! Reading every other instance's commits back cost each instance a read transaction and the
//! decoding of its rows per commit (about as much server CPU as making the commit), which is what
//! kept three instances from carrying the load of one (BENCHMARKS.md). Members are not carried:
//! a room's members never change once it exists, so each instance takes them from its room
//! cache, and a new room's notice carries the room.
//!
//! Payload: `"<first pos> <head pos>\n<json>"`, or only `"<head pos>"`. The positions come
//! first so that a listener skips its own commits (and ones it already read) without decoding.

use std::collections::HashMap;
use std::sync::Arc;

use chatsync_protocol::Room;
use serde::{Deserialize, Serialize};

use crate::store::{Change, Committed, Head, MessageState, ReadState, UpdateKind};
use crate::sync_token::SyncPosition;

/// Longest payload PostgreSQL takes (it refuses 8000 bytes or more).
pub(super) const MAX_PAYLOAD: usize = 7_999;

/// A notice as a listener first sees it: positions only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Heard<'a> {
    /// A commit whose changes the payload does not carry: the stream's head after it.
    Head(u64),
    /// A commit with its changes: its first position, the head after it, and the changes.
    Commit {
        first: u64,
        head: u64,
        json: &'a str,
    },
}

impl Heard<'_> {
    /// The stream's head after the commit.
    pub(super) fn head(&self) -> u64 {
        match *self {
            Heard::Head(head) | Heard::Commit { head, .. } => head,
        }
    }
}

/// Reads a payload's positions; `None` when it is not a commit notice.
pub(super) fn hear(payload: &str) -> Option<Heard<'_>> {
    let Some((positions, json)) = payload.split_once('\n') else {
        return payload.parse().ok().map(Heard::Head);
    };
    let (first, head) = positions.split_once(' ')?;
    Some(Heard::Commit {
        first: first.parse().ok()?,
        head: head.parse().ok()?,
        json,
    })
}

/// The payload that announces `commit` (whose changes are not empty).
pub(super) fn payload(commit_changes: &[Change], head: &Head) -> String {
    let Some(first) = commit_changes.first().map(Change::pos) else {
        return head.pos.to_string();
    };
    let body = Body {
        v1: (head.v1.message_id, head.v1.membership_seq),
        changes: commit_changes.iter().map(Out::of).collect(),
    };
    match serde_json::to_string(&body) {
        Ok(json) => {
            let payload = format!("{first} {}\n{json}", head.pos);
            if payload.len() <= MAX_PAYLOAD {
                payload
            } else {
                head.pos.to_string()
            }
        }
        Err(_) => head.pos.to_string(),
    }
}

/// A commit taken from its notice, with the rooms it creates (for the room cache).
pub(super) type Carried = (Committed, Vec<Arc<Room>>);

/// The commit a [`Heard::Commit`] carries. `members` gives a room's members (from the room
/// cache); `None` when one is not known there: then the caller reads the commit instead. The
/// rooms the commit creates are returned apart too, for the cache.
pub(super) fn commit(
    json: &str,
    head: u64,
    mut members: impl FnMut(&str) -> Option<Arc<[String]>>,
) -> Result<Option<Carried>, serde_json::Error> {
    let body: Parsed = serde_json::from_str(json)?;
    let mut fresh: HashMap<String, Arc<[String]>> = HashMap::new();
    let mut rooms = Vec::new();
    let mut changes = Vec::with_capacity(body.changes.len());
    // The rooms this commit creates are nowhere else yet.
    let mut members_of = |fresh: &HashMap<String, Arc<[String]>>, room_id: &str| {
        fresh.get(room_id).cloned().or_else(|| members(room_id))
    };
    for change in body.changes {
        changes.push(match change {
            In::Message { pos, kind, message } => {
                let Some(members) = members_of(&fresh, &message.room_id) else {
                    return Ok(None);
                };
                let message = Arc::new(message);
                match kind {
                    0 => Change::Message {
                        pos,
                        message,
                        members,
                    },
                    kind => Change::Updated {
                        pos,
                        kind: match kind {
                            1 => UpdateKind::Edit,
                            2 => UpdateKind::Deletion,
                            _ => UpdateKind::Reaction,
                        },
                        message,
                        members,
                    },
                }
            }
            In::Receipt {
                pos,
                room_id,
                user_id,
                read_upto,
                unread,
            } => {
                let Some(members) = members_of(&fresh, &room_id) else {
                    return Ok(None);
                };
                Change::Receipt {
                    pos,
                    room_id: room_id.into(),
                    user_id: user_id.into(),
                    read: ReadState { read_upto, unread },
                    members,
                }
            }
            In::Room { pos, room, seqs } => {
                let room = Arc::new(room);
                fresh.insert(room.id.clone(), room.member_ids.clone().into());
                rooms.push(Arc::clone(&room));
                Change::Room {
                    pos,
                    room,
                    seqs: seqs.into(),
                }
            }
        });
    }
    let head = Head {
        v1: SyncPosition {
            message_id: body.v1.0,
            membership_seq: body.v1.1,
        },
        pos: head,
    };
    Ok(Some((Committed { changes, head }, rooms)))
}

#[derive(Serialize)]
struct Body<'a> {
    v1: (u64, u64),
    changes: Vec<Out<'a>>,
}

#[derive(Deserialize)]
struct Parsed {
    v1: (u64, u64),
    changes: Vec<In>,
}

/// A change as sent: its message's whole state, without the room's members.
#[derive(Serialize)]
enum Out<'a> {
    #[serde(rename = "m")]
    Message {
        pos: u64,
        /// 0 new, 1 edit, 2 deletion, 3 reaction.
        kind: u8,
        message: &'a MessageState,
    },
    #[serde(rename = "r")]
    Receipt {
        pos: u64,
        room_id: &'a str,
        user_id: &'a str,
        read_upto: u64,
        unread: u32,
    },
    #[serde(rename = "n")]
    Room {
        pos: u64,
        room: &'a Room,
        seqs: &'a [u64],
    },
}

impl<'a> Out<'a> {
    fn of(change: &'a Change) -> Out<'a> {
        match change {
            Change::Message { pos, message, .. } => Out::Message {
                pos: *pos,
                kind: 0,
                message,
            },
            Change::Updated {
                pos, kind, message, ..
            } => Out::Message {
                pos: *pos,
                kind: match kind {
                    UpdateKind::Edit => 1,
                    UpdateKind::Deletion => 2,
                    UpdateKind::Reaction => 3,
                },
                message,
            },
            Change::Receipt {
                pos,
                room_id,
                user_id,
                read,
                ..
            } => Out::Receipt {
                pos: *pos,
                room_id,
                user_id,
                read_upto: read.read_upto,
                unread: read.unread,
            },
            Change::Room { pos, room, seqs } => Out::Room {
                pos: *pos,
                room,
                seqs,
            },
        }
    }
}

/// [`Out`] as received.
#[derive(Deserialize)]
enum In {
    #[serde(rename = "m")]
    Message {
        pos: u64,
        kind: u8,
        message: MessageState,
    },
    #[serde(rename = "r")]
    Receipt {
        pos: u64,
        room_id: String,
        user_id: String,
        read_upto: u64,
        unread: u32,
    },
    #[serde(rename = "n")]
    Room {
        pos: u64,
        room: Room,
        seqs: Vec<u64>,
    },
}

#[cfg(test)]
mod tests {
    use chatsync_protocol::Part;

    use super::*;

    fn message(id: u64, text: &str) -> Arc<MessageState> {
        Arc::new(MessageState {
            id,
            room_id: "r1".into(),
            user_id: "ann".into(),
            parts: vec![Part::text(text)],
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:01.000Z".into(),
            edited_at: Some("2026-01-01T00:00:01.000Z".into()),
            deleted: false,
            reactions: vec![("👍".into(), vec!["bob".into()])],
            txn_id: "t\"1\n".into(),
        })
    }

    fn commit_of(changes: Vec<Change>) -> Committed {
        let head = Head {
            v1: SyncPosition {
                message_id: 7,
                membership_seq: 3,
            },
            pos: changes.last().map_or(0, Change::pos),
        };
        Committed { changes, head }
    }

    #[test]
    fn a_commit_crosses_whole_and_members_come_from_the_cache_or_its_new_rooms() {
        let room = Arc::new(Room {
            id: "r1".into(),
            name: Some("it's \"quoted\"".into()),
            member_ids: vec!["ann".into(), "bob".into()],
            created_at: "2026-01-01T00:00:00.000Z".into(),
        });
        let members: Arc<[String]> = room.member_ids.clone().into();
        let sent = commit_of(vec![
            Change::Room {
                pos: 4,
                room: Arc::clone(&room),
                seqs: vec![2, 3].into(),
            },
            Change::Message {
                pos: 5,
                message: message(7, "hi 🎉 \\ '"),
                members: Arc::clone(&members),
            },
            Change::Updated {
                pos: 6,
                kind: UpdateKind::Reaction,
                message: message(7, "hi"),
                members: Arc::clone(&members),
            },
            Change::Receipt {
                pos: 7,
                room_id: "r1".into(),
                user_id: "bob".into(),
                read: ReadState {
                    read_upto: 7,
                    unread: 0,
                },
                members: Arc::clone(&members),
            },
        ]);
        let sent_payload = payload(&sent.changes, &sent.head);
        let Some(Heard::Commit { first, head, json }) = hear(&sent_payload) else {
            panic!("carries the commit: {sent_payload}")
        };
        assert_eq!((first, head), (4, 7));
        // The room is new in this commit: nothing from the cache is needed.
        let (got, rooms) = commit(json, head, |_| None).unwrap().expect("complete");
        assert_eq!(format!("{:?}", got), format!("{:?}", sent));
        assert_eq!(rooms, vec![room]);

        // A message in a room the listener does not know: it must read instead.
        let later = commit_of(vec![Change::Message {
            pos: 8,
            message: message(8, "x"),
            members,
        }]);
        let later_payload = payload(&later.changes, &later.head);
        let Some(Heard::Commit { json, head, .. }) = hear(&later_payload) else {
            panic!("carries the commit")
        };
        assert!(commit(json, head, |_| None).unwrap().is_none());
    }

    #[test]
    fn a_commit_too_big_for_a_notification_announces_its_head_only() {
        let members: Arc<[String]> = vec!["ann".to_string()].into();
        let big = commit_of(vec![Change::Message {
            pos: 9,
            message: message(9, &"é".repeat(MAX_PAYLOAD)),
            members,
        }]);
        let big_payload = payload(&big.changes, &big.head);
        assert_eq!(big_payload, "9");
        assert_eq!(hear(&big_payload), Some(Heard::Head(9)));
        assert_eq!(hear("not a notice"), None);
    }
}
