//! The store conformance suite's general tests (with `stream_tests.rs`): each runs on every
//! backend (`testing.rs`).

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use chatsync_protocol::{Direction, Part, Room};

use super::BACKEND;
use crate::store::sql::testing::{Backend, TestDb};
use crate::store::sql::*;

/// A new empty database of this run's backend and a store on it; `None`: skip the test (no
/// PostgreSQL here).
pub(super) fn store() -> Option<(TestDb, SqlStore)> {
    let db = TestDb::new(BACKEND)?;
    let store = db.open();
    Some((db, store))
}

pub(super) fn new_message(room: &str, sender: &str, txn: &str) -> NewMessage {
    NewMessage {
        room_id: room.into(),
        sender: sender.into(),
        txn_id: txn.into(),
        // Quotes, a backslash and non-ASCII: what JSON must escape or keep.
        parts: vec![Part::text(format!("{txn} \"q\" \\ é 🎉"))],
        now: "2026-01-01T00:00:00.000Z".into(),
    }
}

pub(super) fn send(store: &SqlStore, room: &str, sender: &str, txn: &str) -> SendOutcome {
    store
        .send_message(new_message(room, sender, txn))
        .wait()
        .unwrap()
}

pub(super) fn room(store: &SqlStore, name: Option<&str>, members: &[&str]) -> Room {
    let members = members.iter().map(|m| m.to_string()).collect();
    store
        .create_room(name.map(str::to_owned), members, "t".into())
        .wait()
        .unwrap()
}

/// Holds the writer: everything queued until the returned sender is dropped is committed in
/// one transaction.
pub(super) fn hold(store: &SqlStore) -> mpsc::Sender<()> {
    let (release, held) = mpsc::channel();
    store.writer.push(Job::Hold(held));
    release
}

/// Counts the commits the store reports.
#[derive(Default)]
pub(super) struct Commits(pub(super) Mutex<Vec<Committed>>);

impl CommitSink for Commits {
    fn committed(&self, commit: Committed) {
        self.0.lock().unwrap().push(commit);
    }
}

#[test]
fn ids_increase_and_resend_is_idempotent() {
    let Some((_d, s)) = store() else { return };
    let room = room(&s, None, &["alice", "bob"]);
    let a = send(&s, &room.id, "alice", "t1");
    let b = send(&s, &room.id, "alice", "t2");
    let again = send(&s, &room.id, "alice", "t1");
    assert!(a.created && b.created && !again.created);
    assert!(b.message.id > a.message.id);
    assert_eq!(again.message, a.message);
}

#[test]
fn sync_reports_new_rooms_and_new_messages_only() {
    let Some((_d, s)) = store() else { return };
    let r1 = room(&s, None, &["alice"]);
    send(&s, &r1.id, "alice", "a");
    let first = s.sync("alice", None, 10).unwrap();
    assert_eq!(first.rooms[&r1.id].messages.len(), 1);
    let nothing = s.sync("alice", Some(first.position), 10).unwrap();
    assert!(nothing.rooms.is_empty());
    let r2 = room(&s, None, &["alice", "bob"]);
    let joined = s.sync("alice", Some(first.position), 10).unwrap();
    assert_eq!(joined.rooms.keys().collect::<Vec<_>>(), vec![&r2.id]);
    assert!(joined.rooms[&r2.id].messages.is_empty());
}

#[test]
fn reopening_keeps_data_and_schema_version() {
    let Some(db) = TestDb::new(BACKEND) else { return };
    let room = {
        let s = db.open();
        let room = room(&s, Some("x"), &["alice"]);
        send(&s, &room.id, "alice", "a");
        s.close();
        assert!(matches!(s.user("alice"), Err(StoreError::Closed)));
        assert!(matches!(
            s.send_message(new_message(&room.id, "alice", "b")).wait(),
            Err(StoreError::Closed)
        ));
        room
    };
    let s = db.open();
    assert_eq!(s.room(&room.id).unwrap().as_deref(), Some(&room));
    assert_eq!(s.position().unwrap().message_id, 1);
}

#[test]
fn a_newer_schema_is_refused() {
    if BACKEND != Backend::Sqlite {
        return; // the version is SQLite's own header field
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    assert!(matches!(
        SqlStore::open(&path),
        Err(StoreError::TooNew { found: 99, .. })
    ));
}

/// Random sends, history pages and syncs agree with a plain in-memory model, across a reopen.
#[test]
fn history_and_sync_agree_with_a_model() {
    let Some(db) = TestDb::new(BACKEND) else { return };
    let mut rng = fastrand::Rng::with_seed(7);
    let mut store = db.open();
    let rooms: Vec<String> = (0..3).map(|_| room(&store, None, &["u"]).id).collect();
    // The model: every message id per room, ascending.
    let mut model: BTreeMap<String, Vec<u64>> =
        rooms.iter().map(|r| (r.clone(), Vec::new())).collect();
    let mut positions = vec![store.sync("u", None, 1).unwrap().position];
    for step in 0..400 {
        if step == 200 {
            store.close();
            store = db.open();
        }
        let room = &rooms[rng.usize(..rooms.len())];
        match rng.u8(..4) {
            0 | 1 => {
                let id = send(&store, room, "u", &format!("t{step}")).message.id;
                model.get_mut(room).unwrap().push(id);
                positions.push(store.position().unwrap());
            }
            2 => {
                let all = &model[room];
                let limit = rng.u32(1..6);
                let initial_id = if rng.bool() || all.is_empty() {
                    None
                } else {
                    Some(all[rng.usize(..all.len())] + rng.u64(0..2))
                };
                let direction = if rng.bool() {
                    Direction::Older
                } else {
                    Direction::Newer
                };
                let page = store
                    .history(
                        room,
                        HistoryQuery {
                            initial_id,
                            direction,
                            limit,
                        },
                    )
                    .unwrap();
                let candidates: Vec<u64> = match direction {
                    Direction::Older => all
                        .iter()
                        .copied()
                        .filter(|id| initial_id.is_none_or(|i| *id < i))
                        .collect(),
                    Direction::Newer => all
                        .iter()
                        .copied()
                        .filter(|id| initial_id.is_none_or(|i| *id > i))
                        .collect(),
                };
                let expected: Vec<u64> = match direction {
                    Direction::Older => {
                        candidates[candidates.len().saturating_sub(limit as usize)..].to_vec()
                    }
                    Direction::Newer => {
                        candidates.iter().copied().take(limit as usize).collect()
                    }
                };
                let got: Vec<u64> = page.messages.iter().map(|m| m.id).collect();
                assert_eq!(
                    got, expected,
                    "{direction:?} from {initial_id:?} limit {limit}"
                );
                assert_eq!(page.has_more, candidates.len() > limit as usize);
            }
            _ => {
                let since = positions[rng.usize(..positions.len())];
                let limit = rng.u32(1..6);
                let batch = store.sync("u", Some(since), limit).unwrap();
                for (room, all) in &model {
                    let new: Vec<u64> = all
                        .iter()
                        .copied()
                        .filter(|id| *id > since.message_id)
                        .collect();
                    match batch.rooms.get(room) {
                        None => assert!(new.is_empty()),
                        Some(sync) => {
                            let got: Vec<u64> = sync.messages.iter().map(|m| m.id).collect();
                            assert_eq!(
                                got,
                                new[new.len().saturating_sub(limit as usize)..].to_vec()
                            );
                            assert_eq!(sync.limited, new.len() > limit as usize);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn concurrent_sends_share_one_commit_and_all_land_with_distinct_ids() {
    let Some((_d, s)) = store() else { return };
    let commits = Arc::new(Commits::default());
    s.set_commit_sink(commits.clone());
    let r = room(&s, None, &["alice", "bob"]);
    let release = hold(&s);
    // 200 sends queued while the writer is held, as 200 concurrent requests would be.
    let pending: Vec<_> = (0..200)
        .map(|i| {
            s.send_message(new_message(
                &r.id,
                if i % 2 == 0 { "alice" } else { "bob" },
                &format!("t{i}"),
            ))
        })
        .collect();
    drop(release);
    let outcomes: Vec<SendOutcome> = pending.into_iter().map(|p| p.wait().unwrap()).collect();
    assert!(outcomes.iter().all(|o| o.created));
    let mut ids: Vec<u64> = outcomes.iter().map(|o| o.message.id).collect();
    // Answered in the order they were queued, ids in that order too.
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    ids.dedup();
    assert_eq!(ids.len(), 200);
    let commits = commits.0.lock().unwrap();
    // The room's commit, then one commit for all 200 sends.
    assert_eq!(commits.len(), 2, "one transaction for the batch");
    assert_eq!(commits[1].changes.len(), 200);
    assert_eq!(commits[1].head.v1.message_id, *ids.last().unwrap());
    assert_eq!(s.head().unwrap(), commits[1].head);
    // One position per send, in the order of their ids.
    let positions: Vec<u64> = commits[1].changes.iter().map(Change::pos).collect();
    assert_eq!(positions, (2..=201).collect::<Vec<u64>>());
    assert_eq!(
        s.history(
            &r.id,
            HistoryQuery {
                initial_id: None,
                direction: Direction::Newer,
                limit: 100
            }
        )
        .unwrap()
        .messages
        .len(),
        100
    );
}

#[test]
fn the_same_txn_id_twice_in_one_commit_stores_one_message() {
    for group_commit in [true, false] {
        let Some(db) = TestDb::new(BACKEND) else { return };
        let s = db.open_with(SqlOptions {
            group_commit,
            ..SqlOptions::default()
        });
        let r = room(&s, None, &["alice"]);
        let release = hold(&s);
        let first = s.send_message(new_message(&r.id, "alice", "same"));
        let mut other = new_message(&r.id, "alice", "same");
        other.parts = vec![Part::text("a retry with other content")];
        let second = s.send_message(other);
        let bob = s.send_message(new_message(&r.id, "bob", "same"));
        drop(release);
        let (first, second, bob) = (
            first.wait().unwrap(),
            second.wait().unwrap(),
            bob.wait().unwrap(),
        );
        assert!(
            first.created && !second.created,
            "group commit {group_commit}"
        );
        assert_eq!(second.message, first.message, "the first one stays");
        assert!(
            bob.created && bob.message.id > first.message.id,
            "txn ids are per sender"
        );
        let stored = s
            .history(
                &r.id,
                HistoryQuery {
                    initial_id: None,
                    direction: Direction::Newer,
                    limit: 10,
                },
            )
            .unwrap()
            .messages;
        assert_eq!(stored.len(), 2);
    }
}

#[test]
fn a_bad_write_fails_alone_and_the_rest_of_its_batch_commits() {
    let Some((_d, s)) = store() else { return };
    let commits = Arc::new(Commits::default());
    s.set_commit_sink(commits.clone());
    let r = room(&s, None, &["alice"]);
    let release = hold(&s);
    let good = s.send_message(new_message(&r.id, "alice", "good"));
    // A room that does not exist: the foreign key refuses it (the routes check first).
    let bad = s.send_message(new_message("r-missing", "alice", "bad"));
    let after = s.send_message(new_message(&r.id, "alice", "after"));
    drop(release);
    assert!(good.wait().unwrap().created);
    assert!(matches!(
        bad.wait(),
        Err(StoreError::Sqlite(_) | StoreError::Postgres(_))
    ));
    assert!(after.wait().unwrap().created);
    // Every change reported was committed, in order.
    let reported: Vec<u64> = commits
        .0
        .lock()
        .unwrap()
        .iter()
        .flat_map(|c| c.changes.iter())
        .filter_map(|c| match c {
            Change::Message { message, .. } => Some(message.id),
            _ => None,
        })
        .collect();
    let stored: Vec<u64> = s
        .history(
            &r.id,
            HistoryQuery {
                initial_id: None,
                direction: Direction::Newer,
                limit: 10,
            },
        )
        .unwrap()
        .messages
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(reported, stored);
}
