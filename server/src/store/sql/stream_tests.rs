//! Protocol v2 on each backend (a part of the store conformance suite): the writes' rules and idempotency (also inside one group commit), the
//! change stream's positions, v1's views of edited and deleted messages, the v2 sync (bounded and
//! resumable), the migration of a v1 database, and the feed answering every sync (v1 and v2) as
//! the database does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chatsync_protocol::v2::SYNC_MAX_CHANGES;
use chatsync_protocol::{Direction, Part};

use super::tests::{hold, new_message, room, send, store, Commits};
use super::BACKEND;
use crate::feed::{Feed, Miss};
use crate::store::sql::testing::{Backend, TestDb};
use crate::store::sql::value::args;
use crate::store::sql::*;
use crate::sync_token::SyncPosition;
use crate::store::{Refusal, StreamRoom};

const NOW: &str = "2026-12-02T00:00:00.000Z";

fn edit(
    s: &SqlStore,
    room: &str,
    id: u64,
    user: &str,
    txn: &str,
    text: &str,
) -> WriteResult<MessageState> {
    s.edit_message(EditMessage {
        room_id: room.into(),
        message_id: id,
        user_id: user.into(),
        txn_id: txn.into(),
        parts: vec![Part::text(text)],
        now: NOW.into(),
    })
    .wait()
    .unwrap()
}

fn delete(
    s: &SqlStore,
    room: &str,
    id: u64,
    user: &str,
    txn: &str,
) -> WriteResult<MessageState> {
    s.delete_message(DeleteMessage {
        room_id: room.into(),
        message_id: id,
        user_id: user.into(),
        txn_id: txn.into(),
        now: NOW.into(),
    })
    .wait()
    .unwrap()
}

fn react(
    s: &SqlStore,
    room: &str,
    id: u64,
    user: &str,
    txn: &str,
    key: &str,
    on: bool,
) -> WriteResult<MessageState> {
    s.react(React {
        room_id: room.into(),
        message_id: id,
        user_id: user.into(),
        txn_id: txn.into(),
        key: key.into(),
        on,
    })
    .wait()
    .unwrap()
}

fn receipt(s: &SqlStore, room: &str, user: &str, txn: &str, id: u64) -> WriteResult<ReadState> {
    s.read_receipt(ReadReceipt {
        room_id: room.into(),
        user_id: user.into(),
        txn_id: txn.into(),
        message_id: id,
    })
    .wait()
    .unwrap()
}

/// Every row of `changes`: (pos, kind, message id).
fn stream_rows(s: &SqlStore) -> Vec<(u64, i64, Option<u64>)> {
    s.readers
        .with(|tx| {
            tx.query(
                "SELECT pos, kind, message_id FROM changes ORDER BY pos",
                args![],
            )?
            .iter()
            .map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .collect()
        })
        .unwrap()
}

fn texts(messages: &[MessageState]) -> Vec<String> {
    messages
        .iter()
        .map(|m| {
            m.parts
                .first()
                .and_then(|p| p.content.clone())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn edits_deletions_reactions_and_receipts_follow_the_rules_and_refusals_change_nothing() {
    let Some((_d, s)) = store() else { return };
    let r = room(&s, None, &["alice", "bob"]);
    let other = room(&s, None, &["alice"]);
    let m = send(&s, &r.id, "alice", "m1").message;
    let elsewhere = send(&s, &other.id, "alice", "o1").message;
    let before = stream_rows(&s).len();

    // Refusals: nothing written, no position taken.
    assert_eq!(
        edit(&s, &r.id, m.id, "bob", "e0", "x"),
        Err(Refusal::NotSender)
    );
    assert_eq!(
        delete(&s, &r.id, m.id, "bob", "d0"),
        Err(Refusal::NotSender)
    );
    assert_eq!(
        edit(&s, &r.id, 999, "alice", "e0", "x"),
        Err(Refusal::NoSuchMessage)
    );
    assert_eq!(
        edit(&s, &r.id, elsewhere.id, "alice", "e0", "x"),
        Err(Refusal::NoSuchMessage),
        "a message of another room is not found in this one"
    );
    assert_eq!(
        react(&s, &r.id, 999, "bob", "r0", "👍", true),
        Err(Refusal::NoSuchMessage)
    );
    assert_eq!(
        receipt(&s, &r.id, "bob", "c0", elsewhere.id),
        Err(Refusal::NoSuchMessage)
    );
    assert_eq!(stream_rows(&s).len(), before);
    // A refused txn id is not used up: it works once the write is valid.
    let edited = edit(&s, &r.id, m.id, "alice", "e0", "edited").unwrap();
    assert_eq!(texts(std::slice::from_ref(&edited)), ["edited"]);
    assert_eq!(edited.edited_at.as_deref(), Some(NOW));
    assert_eq!(
        (edited.id, edited.created_at.as_str()),
        (m.id, m.created_at.as_str())
    );

    // Reactions: per key, reactors sorted, keys in the order first given; no-ops take no position.
    react(&s, &r.id, m.id, "bob", "r1", "👍", true).unwrap();
    react(&s, &r.id, m.id, "alice", "r2", "🎉", true).unwrap();
    let both = react(&s, &r.id, m.id, "alice", "r3", "👍", true).unwrap();
    assert_eq!(
        both.reactions,
        vec![
            ("👍".to_owned(), vec!["alice".to_owned(), "bob".to_owned()]),
            ("🎉".to_owned(), vec!["alice".to_owned()])
        ]
    );
    let v2 = both.v2_for("bob");
    assert_eq!((v2.reactions[0].count, v2.reactions[0].me), (2, true));
    assert_eq!((v2.reactions[1].count, v2.reactions[1].me), (1, false));
    assert_eq!(v2.txn_id, None, "the txn id is the sender's");
    assert_eq!(both.v2_for("alice").txn_id.as_deref(), Some("m1"));
    let rows = stream_rows(&s).len();
    react(&s, &r.id, m.id, "bob", "r4", "👍", true).unwrap();
    react(&s, &r.id, m.id, "bob", "r5", "😀", false).unwrap();
    assert_eq!(stream_rows(&s).len(), rows, "already so: no change");
    // At most MAX_REACTION_KEYS_PER_USER keys per user and message.
    for i in 0..chatsync_protocol::v2::MAX_REACTION_KEYS_PER_USER - 1 {
        react(
            &s,
            &r.id,
            m.id,
            "bob",
            &format!("k{i}"),
            &format!("k{i}"),
            true,
        )
        .unwrap();
    }
    assert_eq!(
        react(&s, &r.id, m.id, "bob", "k-over", "over", true),
        Err(Refusal::TooManyReactions)
    );

    // Receipts only move forward; the answer is where it is and what is unread after it.
    let m2 = send(&s, &r.id, "alice", "m2").message;
    let m3 = send(&s, &r.id, "bob", "m3").message;
    assert_eq!(
        receipt(&s, &r.id, "bob", "c1", m.id).unwrap(),
        ReadState {
            read_upto: m.id,
            unread: 1
        }
    );
    let rows = stream_rows(&s).len();
    assert_eq!(
        receipt(&s, &r.id, "bob", "c2", m.id).unwrap().read_upto,
        m.id
    );
    assert_eq!(
        receipt(&s, &r.id, "bob", "c3", 0).unwrap_err(),
        Refusal::NoSuchMessage
    );
    assert_eq!(stream_rows(&s).len(), rows, "not forward: no change");
    assert_eq!(
        s.read_states("alice", std::slice::from_ref(&r.id))
            .unwrap()
            .1[0]
            .1
            .unread,
        1,
        "bob's m3"
    );

    // Deletion: a tombstone, reactions gone; again is a no-op; no edit or reaction after it.
    let tomb = delete(&s, &r.id, m2.id, "alice", "d1").unwrap();
    assert!(tomb.deleted && tomb.parts.is_empty() && tomb.edited_at.is_none());
    let gone = delete(&s, &r.id, m.id, "alice", "d2").unwrap();
    assert!(gone.reactions.is_empty());
    let rows = stream_rows(&s).len();
    assert_eq!(delete(&s, &r.id, m.id, "alice", "d3").unwrap(), gone);
    assert_eq!(stream_rows(&s).len(), rows);
    assert_eq!(
        edit(&s, &r.id, m.id, "alice", "e9", "x"),
        Err(Refusal::Deleted)
    );
    assert_eq!(
        react(&s, &r.id, m.id, "bob", "r9", "👍", true),
        Err(Refusal::Deleted)
    );
    // Unread leaves deleted messages out: bob read up to m; m2 is deleted, m3 is his own.
    assert_eq!(
        s.read_states("bob", std::slice::from_ref(&r.id)).unwrap().1[0]
            .1
            .unread,
        0
    );
    let _ = m3;
}

#[test]
fn every_write_is_idempotent_per_user_kind_and_txn_also_inside_one_commit() {
    for group_commit in [true, false] {
        let Some(db) = TestDb::new(BACKEND) else { return };
        let s = db.open_with(SqlOptions {
            group_commit,
            ..SqlOptions::default()
        });
        let commits = Arc::new(Commits::default());
        s.set_commit_sink(commits.clone());
        let r = room(&s, None, &["alice", "bob"]);
        let m = send(&s, &r.id, "alice", "m1").message;
        let n = send(&s, &r.id, "alice", "m2").message;
        let rows = stream_rows(&s).len();
        // Each write twice with the same txn id, the second with other content, all queued
        // while the writer is held: one commit when group commit is on.
        let release = hold(&s);
        let edit_req = |text: &str| EditMessage {
            room_id: r.id.clone(),
            message_id: m.id,
            user_id: "alice".into(),
            txn_id: "same".into(),
            parts: vec![Part::text(text)],
            now: NOW.into(),
        };
        let edits = [
            s.edit_message(edit_req("first")),
            s.edit_message(edit_req("second")),
        ];
        let react_req = |on: bool| React {
            room_id: r.id.clone(),
            message_id: m.id,
            user_id: "bob".into(),
            txn_id: "same".into(),
            key: "👍".into(),
            on,
        };
        // The repeat would undo the first: a repeated txn id must change nothing.
        let reacts = [s.react(react_req(true)), s.react(react_req(false))];
        let receipt_req = |id: u64| ReadReceipt {
            room_id: r.id.clone(),
            user_id: "bob".into(),
            txn_id: "same".into(),
            message_id: id,
        };
        let receipts = [
            s.read_receipt(receipt_req(m.id)),
            s.read_receipt(receipt_req(n.id)),
        ];
        let delete_req = |id: u64| DeleteMessage {
            room_id: r.id.clone(),
            message_id: id,
            user_id: "alice".into(),
            txn_id: "same".into(),
            now: NOW.into(),
        };
        let deletes = [
            s.delete_message(delete_req(n.id)),
            s.delete_message(delete_req(m.id)),
        ];
        drop(release);
        let edits: Vec<_> = edits
            .into_iter()
            .map(|p| p.wait().unwrap().unwrap())
            .collect();
        let reacts: Vec<_> = reacts
            .into_iter()
            .map(|p| p.wait().unwrap().unwrap())
            .collect();
        let receipts: Vec<_> = receipts
            .into_iter()
            .map(|p| p.wait().unwrap().unwrap())
            .collect();
        let deletes: Vec<_> = deletes
            .into_iter()
            .map(|p| p.wait().unwrap().unwrap())
            .collect();
        assert_eq!(
            texts(&edits),
            ["first", "first"],
            "group commit {group_commit}"
        );
        assert_eq!(reacts[0].reactions, reacts[1].reactions);
        assert_eq!(reacts[1].reactions.len(), 1, "the repeat did not remove it");
        assert_eq!(receipts[0], receipts[1]);
        assert_eq!(receipts[1].read_upto, m.id, "the repeat did not move it");
        assert!(deletes[0].deleted && deletes[1].deleted && deletes[1].id == n.id);
        // One change per write: edit, reaction, receipt, deletion.
        let kinds: Vec<i64> = stream_rows(&s)[rows..].iter().map(|r| r.1).collect();
        assert_eq!(
            kinds,
            [kind::EDIT, kind::REACTION, kind::RECEIPT, kind::DELETION]
        );
        if group_commit {
            let commits = commits.0.lock().unwrap();
            assert_eq!(
                commits.last().unwrap().changes.len(),
                4,
                "one commit for all"
            );
        }
        // Later repeats answer the message as it is now, not as it was.
        let now = edit(&s, &r.id, m.id, "alice", "same", "third").unwrap();
        assert_eq!(texts(std::slice::from_ref(&now)), ["first"]);
        assert_eq!(stream_rows(&s).len(), rows + 4);
        // Txn ids are per user and per kind of write: bob's "same" edit is his own.
        assert_eq!(
            edit(&s, &r.id, m.id, "bob", "same", "x"),
            Err(Refusal::NotSender)
        );
    }
}

#[test]
fn positions_are_one_sequence_in_commit_order_and_message_ids_grow_with_them() {
    let Some((db, s)) = store() else { return };
    let commits = Arc::new(Commits::default());
    s.set_commit_sink(commits.clone());
    let r = room(&s, None, &["alice", "bob"]);
    let release = hold(&s);
    let pending: Vec<_> = (0..50)
        .map(|i| {
            s.send_message(new_message(
                &r.id,
                if i % 2 == 0 { "alice" } else { "bob" },
                &format!("t{i}"),
            ))
        })
        .collect();
    drop(release);
    let ids: Vec<u64> = pending
        .into_iter()
        .map(|p| p.wait().unwrap().message.id)
        .collect();
    for (i, id) in ids.iter().enumerate().skip(1) {
        edit(
            &s,
            &r.id,
            *id,
            if i % 2 == 0 { "alice" } else { "bob" },
            &format!("e{i}"),
            "e",
        )
        .unwrap();
        receipt(&s, &r.id, "alice", &format!("c{i}"), *id).unwrap();
    }
    let rows = stream_rows(&s);
    let positions: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(
        positions,
        (1..=rows.len() as u64).collect::<Vec<_>>(),
        "no gap"
    );
    let sent: Vec<u64> = rows
        .iter()
        .filter(|r| r.1 == kind::SEND)
        .filter_map(|r| r.2)
        .collect();
    assert_eq!(sent, ids, "sends in id order");
    // What the sink heard is the stream, in order.
    let reported: Vec<u64> = commits
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|c| c.changes.iter().map(Change::pos))
        .collect();
    assert_eq!(reported, positions);
    assert_eq!(s.head().unwrap().pos, rows.len() as u64);
    // And after a reopen the stream goes on from there.
    s.close();
    let s = db.open();
    edit(&s, &r.id, ids[0], "alice", "after", "x").unwrap();
    assert_eq!(stream_rows(&s).last().unwrap().0, rows.len() as u64 + 1);
}

#[test]
fn v1_shows_current_content_and_never_a_deleted_message() {
    let Some((_d, s)) = store() else { return };
    let r = room(&s, None, &["alice"]);
    let start = s.sync("alice", None, 10).unwrap().position;
    let ids: Vec<u64> = (0..4)
        .map(|i| send(&s, &r.id, "alice", &format!("t{i}")).message.id)
        .collect();
    edit(&s, &r.id, ids[1], "alice", "e", "new text").unwrap();
    delete(&s, &r.id, ids[2], "alice", "d").unwrap();
    delete(&s, &r.id, ids[3], "alice", "d2").unwrap();
    let page = s
        .history(
            &r.id,
            HistoryQuery {
                initial_id: None,
                direction: Direction::Newer,
                limit: 2,
            },
        )
        .unwrap();
    assert_eq!(
        page.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        ids[..2]
    );
    assert!(
        !page.has_more,
        "only deleted messages beyond: has_more is exact"
    );
    assert_eq!(page.messages[1].text(), Some("new text"));
    let older = s
        .history(
            &r.id,
            HistoryQuery {
                initial_id: None,
                direction: Direction::Older,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(older.messages.len(), 2);
    assert_eq!(s.messages_after(&r.id, 0, 10).unwrap().len(), 2);
    let synced = s.sync("alice", Some(start), 1).unwrap();
    let room_sync = &synced.rooms[&r.id];
    assert_eq!(
        room_sync.messages.iter().map(|m| m.id).collect::<Vec<_>>(),
        [ids[1]]
    );
    assert!(room_sync.limited, "one more live message below");
    // A room whose only new messages are deleted has nothing new for v1.
    let after = s.sync("alice", None, 10).unwrap().position;
    let x = send(&s, &r.id, "alice", "x").message;
    delete(&s, &r.id, x.id, "alice", "dx").unwrap();
    assert!(s.sync("alice", Some(after), 10).unwrap().rooms.is_empty());
    // v2 history keeps tombstones in their place.
    let v2 = s
        .history_v2(
            &r.id,
            HistoryQuery {
                initial_id: None,
                direction: Direction::Newer,
                limit: 10,
            },
        )
        .unwrap();
    let shape: Vec<(u64, bool)> = v2.messages.iter().map(|m| (m.id, m.deleted)).collect();
    assert_eq!(
        shape,
        [
            (ids[0], false),
            (ids[1], false),
            (ids[2], true),
            (ids[3], true),
            (x.id, true)
        ]
    );
}

#[test]
fn a_v2_sync_reports_new_messages_updates_to_older_ones_receipts_unread_and_joined_rooms() {
    let Some((_d, s)) = store() else { return };
    let r = room(&s, None, &["alice", "bob"]);
    let old = send(&s, &r.id, "bob", "old").message;
    let initial = s.sync_v2("alice", None, 10, &[]).unwrap();
    assert_eq!(initial.rooms[&r.id].messages.len(), 1);
    assert_eq!(initial.rooms[&r.id].unread, 1);
    let p = initial.pos;
    assert!(s
        .sync_v2("alice", Some(p), 10, &[])
        .unwrap()
        .rooms
        .is_empty());
    // An edit of an older message is an update; a new message and its edit are one new message.
    edit(&s, &r.id, old.id, "bob", "e1", "old, edited").unwrap();
    let new = send(&s, &r.id, "bob", "new").message;
    edit(&s, &r.id, new.id, "bob", "e2", "new, edited").unwrap();
    receipt(&s, &r.id, "bob", "c1", new.id).unwrap();
    let joined = room(&s, None, &["alice", "carol"]);
    let hi = send(&s, &joined.id, "carol", "hi carol").message;
    receipt(&s, &joined.id, "carol", "c2", hi.id).unwrap();
    let b = s.sync_v2("alice", Some(p), 10, &[]).unwrap();
    assert!(!b.has_more);
    let room_sync = &b.rooms[&r.id];
    assert_eq!(texts(&room_sync.messages), ["new, edited"]);
    assert_eq!(texts(&room_sync.updates), ["old, edited"]);
    assert_eq!(
        room_sync.receipts,
        BTreeMap::from([("bob".to_owned(), new.id)])
    );
    assert_eq!(room_sync.unread, 2);
    // A room joined after the token: whole, as on an initial sync.
    let j = &b.rooms[&joined.id];
    assert_eq!(j.messages, std::slice::from_ref(&hi));
    assert_eq!(j.receipts, BTreeMap::from([("carol".to_owned(), hi.id)]));
    assert_eq!(j.unread, 1);
    assert!(j.updates.is_empty());
    // Rooms only listed in `also` (someone's typing) come with their unread count.
    let quiet = s
        .sync_v2("alice", Some(b.pos), 10, std::slice::from_ref(&r.id))
        .unwrap();
    assert_eq!(
        quiet.rooms[&r.id],
        StreamRoom {
            unread: 2,
            ..StreamRoom::default()
        }
    );
    // A position ahead of the stream is answered with a lower one (the route refuses it).
    assert!(s.sync_v2("alice", Some(b.pos + 10), 10, &[]).unwrap().pos < b.pos + 10);
}

#[test]
fn a_v2_sync_is_bounded_and_resumes_where_it_stopped_with_nothing_dropped() {
    let Some((_d, s)) = store() else { return };
    let r = room(&s, None, &["alice", "bob"]);
    let old: Vec<u64> = (0..3)
        .map(|i| send(&s, &r.id, "bob", &format!("o{i}")).message.id)
        .collect();
    let p = s.sync_v2("alice", None, 10, &[]).unwrap().pos;
    // 700 changes to older messages, with new messages among them.
    let mut new_ids = Vec::new();
    for i in 0..700u64 {
        edit(
            &s,
            &r.id,
            old[(i % 3) as usize],
            "bob",
            &format!("e{i}"),
            &format!("edit {i}"),
        )
        .unwrap();
        if i % 100 == 0 {
            new_ids.push(send(&s, &r.id, "bob", &format!("n{i}")).message.id);
        }
    }
    let first = s.sync_v2("alice", Some(p), 100, &[]).unwrap();
    assert!(first.has_more);
    // Exactly the first SYNC_MAX_CHANGES edits are covered: the position stops before the next.
    let rows = stream_rows(&s);
    let edits: Vec<u64> = rows
        .iter()
        .filter(|r| r.1 == kind::EDIT)
        .map(|r| r.0)
        .collect();
    assert_eq!(first.pos, edits[SYNC_MAX_CHANGES] - 1);
    let shown: Vec<u64> = first.rooms[&r.id].messages.iter().map(|m| m.id).collect();
    let sent_before: Vec<u64> = rows
        .iter()
        .filter(|row| row.1 == kind::SEND && row.0 > p && row.0 <= first.pos)
        .filter_map(|row| row.2)
        .collect();
    assert_eq!(
        shown, sent_before,
        "new messages up to the position, not after"
    );
    let second = s.sync_v2("alice", Some(first.pos), 100, &[]).unwrap();
    assert!(!second.has_more);
    assert_eq!(second.pos, s.head().unwrap().pos);
    let mut all: Vec<u64> = shown;
    all.extend(second.rooms[&r.id].messages.iter().map(|m| m.id));
    assert_eq!(
        all, new_ids,
        "every new message once, across the two answers"
    );
    // The older messages, changed in both ranges, arrive in both answers in their final state.
    for answer in [&first, &second] {
        assert_eq!(
            texts(&answer.rooms[&r.id].updates),
            ["edit 699", "edit 697", "edit 698"]
        );
    }
}

#[test]
fn a_v1_database_is_migrated_in_place_and_keeps_its_tokens() {
    if BACKEND != Backend::Sqlite {
        return; // PostgreSQL databases start at protocol v2
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        // A database as the v1 server left it.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(sqlite::MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO rooms (id, name, created_at, last_message_id) VALUES ('r1', NULL, 't', 2);
             INSERT INTO members (room_id, user_id) VALUES ('r1', 'alice'), ('r1', 'bob');
             INSERT INTO messages (room_id, user_id, txn_id, parts, created_at, updated_at)
               VALUES ('r1', 'alice', 't1', '[{\"type\":\"text/plain\",\"content\":\"one\"}]', 't', 't'),
                      ('r1', 'bob', 't2', '[{\"type\":\"text/plain\",\"content\":\"two\"}]', 't', 't');",
        )
        .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let s = SqlStore::open(&path).unwrap();
    let head = s.head().unwrap();
    assert_eq!(head.pos, 0, "the stream starts at the migration");
    assert_eq!(
        head.v1,
        SyncPosition {
            message_id: 2,
            membership_seq: 2
        }
    );
    // v1 tokens keep working; the v1 resend of an old txn id finds its message.
    assert!(s.sync("alice", Some(head.v1), 10).unwrap().rooms.is_empty());
    assert_eq!(send(&s, "r1", "alice", "t1").message.id, 1);
    // v2 over the old data.
    let initial = s.sync_v2("alice", None, 10, &[]).unwrap();
    assert_eq!(texts(&initial.rooms["r1"].messages), ["one", "two"]);
    assert_eq!(initial.rooms["r1"].unread, 1);
    edit(&s, "r1", 1, "alice", "e", "one, edited").unwrap();
    let b = s.sync_v2("bob", Some(initial.pos), 10, &[]).unwrap();
    assert_eq!(texts(&b.rooms["r1"].updates), ["one, edited"]);
    assert_eq!(b.rooms["r1"].unread, 1);
    assert_eq!(
        s.sync("bob", None, 10).unwrap().rooms["r1"].messages[0].text(),
        Some("one, edited")
    );
}

struct FeedSink(Mutex<Feed>);

impl CommitSink for FeedSink {
    fn committed(&self, commit: Committed) {
        self.0.lock().unwrap().push(commit);
    }
}

/// Random rooms (created and direct), sends and resends, edits, deletions, reactions, receipts
/// (alone and in bursts committed together); after each step the feed, fed only by the store's
/// commit reports, answers every v1 sync (user, token, limit) and every v2 sync (user, position,
/// limit, typing rooms) exactly as the database does, at the same position, and renders it byte
/// for byte as serializing the database's answer does.
#[test]
fn the_feed_answers_every_sync_as_the_database_does() {
    let Some((_d, s)) = store() else { return };
    let feed = Arc::new(FeedSink(Mutex::new(Feed::new(s.head().unwrap()))));
    s.set_commit_sink(feed.clone());
    let users = ["ann", "bob", "cat", "dan"];
    let mut rng = fastrand::Rng::with_seed(15);
    let mut rooms: Vec<Room> = Vec::new();
    let mut sent: Vec<(String, u64, String)> = Vec::new(); // (room, id, sender)
    let mut heads = vec![s.head().unwrap()];
    let mut txn = 0u64;
    let mut next_txn = || {
        txn += 1;
        format!("x{txn}")
    };
    let mut bounded = 0;
    for step in 0..400 {
        match rng.u8(..16) {
            0 => {
                let members: Vec<&str> = users.iter().copied().filter(|_| rng.bool()).collect();
                rooms.push(room(&s, None, &members));
            }
            1 => {
                let (a, b) = (users[rng.usize(..4)], users[rng.usize(..4)]);
                if a != b {
                    let (r, _) = s
                        .direct_room(a.into(), b.into(), "t".into())
                        .wait()
                        .unwrap();
                    rooms.push(r);
                }
            }
            2..=6 if !rooms.is_empty() => {
                let r = &rooms[rng.usize(..rooms.len())];
                if !r.member_ids.is_empty() {
                    let sender = &r.member_ids[rng.usize(..r.member_ids.len())];
                    // Now and then a resend of an earlier txn id (no change).
                    let t = format!("t{}", if rng.u8(..8) == 0 { step / 2 } else { step });
                    let out = send(&s, &r.id, sender, &t);
                    if out.created {
                        sent.push((r.id.clone(), out.message.id, sender.clone()));
                    }
                }
            }
            7..=12 if !sent.is_empty() => {
                // One write, or a burst of them committed together.
                let burst = if rng.u8(..4) == 0 { 200 } else { 1 };
                let release = (burst > 1).then(|| hold(&s));
                let mut pending = Vec::new();
                for _ in 0..burst {
                    let (room_id, id, sender) = sent[rng.usize(..sent.len())].clone();
                    let members = &rooms.iter().find(|r| r.id == room_id).unwrap().member_ids;
                    let who = members[rng.usize(..members.len())].clone();
                    let p: Pending<Result<(), Refusal>> = match rng.u8(..30) {
                        0..=1 => {
                            let p = s.edit_message(EditMessage {
                                room_id,
                                message_id: id,
                                user_id: sender,
                                txn_id: next_txn(),
                                parts: vec![Part::text(format!("edit {step} \"é\""))],
                                now: NOW.into(),
                            });
                            map_pending(p)
                        }
                        2 => map_pending(s.delete_message(DeleteMessage {
                            room_id,
                            message_id: id,
                            user_id: sender,
                            txn_id: next_txn(),
                            now: NOW.into(),
                        })),
                        3..=19 => map_pending(s.react(React {
                            room_id,
                            message_id: id,
                            user_id: who,
                            txn_id: next_txn(),
                            key: ["👍", "🎉", "x"][rng.usize(..3)].into(),
                            on: rng.u8(..3) > 0,
                        })),
                        _ => map_pending(s.read_receipt(ReadReceipt {
                            room_id,
                            user_id: who,
                            txn_id: next_txn(),
                            message_id: id,
                        })),
                    };
                    pending.push(p);
                }
                drop(release);
                for p in pending {
                    // Refusals (a deleted message) are fine: they change nothing.
                    let _ = p.wait().unwrap();
                }
            }
            _ => {}
        }
        let head = s.head().unwrap();
        heads.push(head);
        let mut feed = feed.0.lock().unwrap();
        assert_eq!(feed.head(), head, "step {step}");
        for _ in 0..8 {
            let user = users[rng.usize(..4)];
            // v1: tokens the server handed out, and odd ones between them.
            let since = if rng.bool() {
                heads[rng.usize(..heads.len())].v1
            } else {
                SyncPosition {
                    message_id: rng.u64(..=head.v1.message_id),
                    membership_seq: rng.u64(..=head.v1.membership_seq),
                }
            };
            let limit = rng.u32(1..5);
            let from_feed = feed.answer(user, since, limit).expect("covered");
            let from_db = s.sync(user, Some(since), limit).unwrap();
            assert_eq!(
                from_feed, from_db,
                "step {step}: v1 {user} since {since} limit {limit}"
            );
            let rendered = feed.render(user, since, limit).unwrap();
            let expected = serde_json::to_vec(&chatsync_protocol::SyncResponse {
                next_batch: from_db.position.to_string(),
                rooms: from_db.rooms.clone(),
            })
            .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&rendered.body),
                String::from_utf8_lossy(&expected)
            );
            assert_eq!(rendered.empty, from_db.rooms.is_empty());

            // v2: any position, some of the user's rooms as typing rooms.
            let pos = rng.u64(..=head.pos);
            let also: Vec<String> = rooms
                .iter()
                .filter(|r| r.member_ids.iter().any(|m| m == user) && rng.u8(..4) == 0)
                .map(|r| r.id.clone())
                .collect();
            let from_db = s.sync_v2(user, Some(pos), limit, &also).unwrap();
            bounded += usize::from(from_db.has_more);
            let from_feed = match feed.answer_v2(user, pos, limit, &also) {
                Err(Miss::Reads(missing)) => {
                    let (at, states) = s.read_states(user, &missing).unwrap();
                    feed.fill_reads(user, at, states);
                    feed.answer_v2(user, pos, limit, &also)
                }
                other => other,
            }
            .expect("covered, read states filled");
            assert_eq!(
                from_feed, from_db,
                "step {step}: v2 {user} since p{pos} limit {limit}"
            );
            let typing = |room: &str| vec![format!("typist of {room}")];
            let rendered = feed
                .render_v2(user, pos, limit, &also, |p| format!("p{p}_7"), typing)
                .unwrap();
            let expected = serde_json::to_vec(&from_db.clone().into_response(
                user,
                format!("p{}_7", from_db.pos),
                typing,
            ))
            .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&rendered.body),
                String::from_utf8_lossy(&expected),
                "step {step}"
            );
        }
    }
    assert!(
        bounded > 20,
        "answers at the bound (has_more): {bounded}, head {:?} sent {}",
        s.head().unwrap(),
        sent.len()
    );
}

fn map_pending<T: Send + 'static>(p: Pending<WriteResult<T>>) -> Pending<Result<(), Refusal>> {
    let (tx, out) = Pending::channel();
    std::thread::spawn(move || {
        let _ = tx.send(p.wait().map(|r| r.map(|_| ())));
    });
    out
}

#[test]
fn the_feed_keeps_read_states_exact_from_a_fill_behind_its_head() {
    let Some((_d, s)) = store() else { return };
    let r = room(&s, None, &["alice", "bob"]);
    let m = send(&s, &r.id, "bob", "m").message;
    // A feed that starts here knows nothing of alice's read state in r.
    let feed = Arc::new(FeedSink(Mutex::new(Feed::new(s.head().unwrap()))));
    s.set_commit_sink(feed.clone());
    let (at, states) = s.read_states("alice", std::slice::from_ref(&r.id)).unwrap();
    assert_eq!(states[0].1.unread, 1, "m");
    // Changes after the read: sends by bob, a deletion, a send by alice.
    let m2 = send(&s, &r.id, "bob", "m2").message;
    send(&s, &r.id, "bob", "m3");
    delete(&s, &r.id, m2.id, "bob", "d").unwrap();
    send(&s, &r.id, "alice", "mine");
    let unread = |feed: &Feed| {
        let since = feed.head().pos;
        feed.answer_v2("alice", since, 10, std::slice::from_ref(&r.id))
            .map(|b| b.rooms[&r.id].unread)
    };
    let db_unread = || {
        s.read_states("alice", std::slice::from_ref(&r.id))
            .unwrap()
            .1[0]
            .1
            .unread
    };
    let mut guard = feed.0.lock().unwrap();
    assert_eq!(unread(&guard), Err(Miss::Reads(vec![r.id.clone()])));
    // Filled from behind the head: the kept changes after the read bring it up to date.
    guard.fill_reads("alice", at, states.clone());
    assert_eq!(unread(&guard), Ok(2), "m and m3");
    assert_eq!(db_unread(), 2);
    drop(guard);
    // A receipt sets it; a fill from before the receipt replays it.
    receipt(&s, &r.id, "alice", "c", m.id).unwrap();
    let mut guard = feed.0.lock().unwrap();
    assert_eq!(unread(&guard), Ok(1));
    guard.fill_reads("alice", at, states.clone());
    assert_eq!(unread(&guard), Ok(1));
    assert_eq!(db_unread(), 1);
    // A snapshot ahead of the feed's head is not taken (it would count a change twice).
    let ahead = guard.head().pos + 1;
    guard.fill_reads("bob", ahead, vec![(r.id.clone(), ReadState::default())]);
    let since = guard.head().pos;
    assert!(matches!(
        guard.answer_v2("bob", since, 10, std::slice::from_ref(&r.id)),
        Err(Miss::Reads(_))
    ));
}

/// Several instances on one database (PostgreSQL): three stores write concurrently; each one's
/// feed, fed by its own commits and, through its follower, by the others' (from their commit
/// notices, or read when a commit is too big for one), reaches the database's head and then
/// answers every v1 and v2 sync exactly as the database does. A follower that
/// skipped, repeated or misordered another instance's commit, or reported a receipt's unread
/// count other than the writer's, fails here.
#[test]
fn every_instance_feed_follows_the_others_and_answers_as_the_database_does() {
    if BACKEND != Backend::Postgres {
        return; // a SQLite file has one writer, one process
    }
    let Some(db) = TestDb::new(BACKEND) else { return };
    let stores: Vec<SqlStore> = (0..3).map(|_| db.open()).collect();
    let feeds: Vec<Arc<FeedSink>> = stores
        .iter()
        .map(|s| {
            let feed = Arc::new(FeedSink(Mutex::new(Feed::new(s.head().unwrap()))));
            s.set_commit_sink(feed.clone());
            feed
        })
        .collect();
    let users = ["ann", "bob", "cat", "dan"];
    let rooms: Vec<Room> = (0..4)
        .map(|i| room(&stores[i % 3], None, &users[..2 + i % 3]))
        .collect();
    std::thread::scope(|scope| {
        for (k, s) in stores.iter().enumerate() {
            let rooms = &rooms;
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(k as u64);
                let mut sent: Vec<(String, u64, String)> = Vec::new();
                for step in 0..120 {
                    let r = &rooms[rng.usize(..rooms.len())];
                    let who = r.member_ids[rng.usize(..r.member_ids.len())].clone();
                    let txn = format!("i{k}-{step}");
                    match (rng.u8(..10), sent.is_empty()) {
                        (0..=3, _) | (_, true) => {
                            let out = if step % 13 == 0 {
                                // Too big for a commit notice: the others read this commit.
                                let mut big = new_message(&r.id, &who, &txn);
                                big.parts = vec![Part::text("é".repeat(5_000))];
                                s.send_message(big).wait().unwrap()
                            } else {
                                send(s, &r.id, &who, &txn)
                            };
                            sent.push((r.id.clone(), out.message.id, who));
                        }
                        (4..=5, false) => {
                            let (room_id, id, sender) = sent[rng.usize(..sent.len())].clone();
                            let _ = edit(s, &room_id, id, &sender, &txn, &format!("edit {k} {step}"));
                        }
                        (6, false) => {
                            let (room_id, id, sender) = sent[rng.usize(..sent.len())].clone();
                            let _ = delete(s, &room_id, id, &sender, &txn);
                        }
                        (7..=8, false) => {
                            let (room_id, id, _) = sent[rng.usize(..sent.len())].clone();
                            let members = &rooms.iter().find(|r| r.id == room_id).unwrap().member_ids;
                            let reactor = &members[rng.usize(..members.len())];
                            let key = ["👍", "🎉"][rng.usize(..2)];
                            let _ = react(s, &room_id, id, reactor, &txn, key, rng.bool());
                        }
                        _ => {
                            let (room_id, id, _) = sent[rng.usize(..sent.len())].clone();
                            let members = &rooms.iter().find(|r| r.id == room_id).unwrap().member_ids;
                            let reader = &members[rng.usize(..members.len())];
                            let _ = receipt(s, &room_id, reader, &txn, id);
                        }
                    }
                }
            });
        }
    });
    let head = stores[0].head().unwrap();
    assert!(head.pos > 300, "a busy stream: {head:?}");
    for (i, feed) in feeds.iter().enumerate() {
        // The listener's catch-up is asynchronous: wait (bounded) until it reached the head.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while feed.0.lock().unwrap().head() != head {
            assert!(
                std::time::Instant::now() < deadline,
                "instance {i}'s feed stopped at {:?}, the database is at {head:?}",
                feed.0.lock().unwrap().head()
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let mut rng = fastrand::Rng::with_seed(99);
    for (i, (s, feed)) in stores.iter().zip(&feeds).enumerate() {
        let mut feed = feed.0.lock().unwrap();
        for _ in 0..150 {
            let user = users[rng.usize(..users.len())];
            let limit = rng.u32(1..5);
            let since = SyncPosition {
                message_id: rng.u64(..=head.v1.message_id),
                membership_seq: rng.u64(..=head.v1.membership_seq),
            };
            // The feeds started at the empty database's head: they cover every token.
            let from_feed = feed.answer(user, since, limit).expect("covered");
            assert_eq!(
                from_feed,
                s.sync(user, Some(since), limit).unwrap(),
                "instance {i}: v1 {user} {since}"
            );
            let pos = rng.u64(..=head.pos);
            let from_db = s.sync_v2(user, Some(pos), limit, &[]).unwrap();
            let from_feed = match feed.answer_v2(user, pos, limit, &[]) {
                Err(Miss::Reads(missing)) => {
                    let (at, states) = s.read_states(user, &missing).unwrap();
                    feed.fill_reads(user, at, states);
                    feed.answer_v2(user, pos, limit, &[])
                }
                other => other,
            }
            .expect("covered, read states filled");
            assert_eq!(
                from_feed, from_db,
                "instance {i}: v2 {user} since p{pos} limit {limit}"
            );
        }
    }
}
