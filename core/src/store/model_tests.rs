//! Model-based test of the store: random operations applied to the sled store and to a plain
//! `BTreeMap` model must agree after every step, across reopens (a seeded PRNG, so a failure
//! replays exactly; the seed is in the assertion message).

use std::collections::BTreeMap;

use chatsync_protocol::v2::{HistoryResponse, Message, RoomSync, SyncResponse};
use chatsync_protocol::Part;

use super::outbox::OutboxRecord;
use super::Store;
use crate::model::MessageState;

const ROOMS: [&str; 3] = ["a", "ab", "room-c"];

/// Ids are global, as on the server: an id always belongs to the same room with the same text.
fn room_of(id: u64) -> &'static str {
    ROOMS[(id % 3) as usize]
}

fn message(id: u64) -> Message {
    Message {
        id,
        user_id: "u".into(),
        room_id: room_of(id).into(),
        parts: vec![Part::text(format!("m{id}"))],
        created_at: "2026-11-25T06:00:00.000Z".into(),
        updated_at: "2026-11-25T06:00:00.000Z".into(),
        edited_at: None,
        deleted: false,
        reactions: vec![],
        txn_id: None,
    }
}

#[derive(Default)]
struct Model {
    /// (room, id) -> local_id of the echo it replaced, if any.
    messages: BTreeMap<(String, u64), Option<String>>,
    outbox: BTreeMap<u64, OutboxRecord>,
}

impl Model {
    fn room_ids(&self, room: &str) -> Vec<u64> {
        self.messages
            .keys()
            .filter(|(r, _)| r == room)
            .map(|(_, id)| *id)
            .collect()
    }
}

/// Random ids of `room` in `lo..hi`, ascending, at most `n`.
fn ids_for(rng: &mut fastrand::Rng, room: usize, lo: u64, hi: u64, n: usize) -> Vec<u64> {
    let mut ids: Vec<u64> = (0..n)
        .map(|_| rng.u64(lo..hi.max(lo + 1)))
        .map(|id| id - id % 3 + room as u64)
        .filter(|id| *id >= lo && *id < hi)
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

fn check(store: &Store, model: &Model, seed: u64, step: usize) {
    let ctx = format!("seed {seed} step {step}");
    for room in ROOMS {
        let held: Vec<(u64, Option<String>)> = store
            .messages
            .page_desc(room, 0, u64::MAX, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|m| {
                assert_eq!(m.message, message(m.message.id).to_v1(), "{ctx}: content");
                (m.message.id, m.local_id)
            })
            .collect();
        let mut expected: Vec<(u64, Option<String>)> = model
            .messages
            .iter()
            .filter(|((r, _), _)| r == room)
            .map(|((_, id), local)| (*id, local.clone()))
            .collect();
        expected.reverse();
        assert_eq!(held, expected, "{ctx}: messages of {room}");
        let ids = model.room_ids(room);
        match store.room(room).unwrap() {
            Some(rec) => {
                assert_eq!(rec.count, ids.len() as u64, "{ctx}: count of {room}");
                if !ids.is_empty() {
                    assert_eq!(
                        rec.oldest_held,
                        ids.first().copied(),
                        "{ctx}: oldest of {room}"
                    );
                    assert!(
                        rec.newest_held >= ids.last().copied(),
                        "{ctx}: newest of {room}"
                    );
                }
                // Gaps are disjoint and ascending.
                assert!(
                    rec.gaps.windows(2).all(|w| w[0].before <= w[1].after + 1),
                    "{ctx}: gaps {:?}",
                    rec.gaps
                );
            }
            None => assert!(ids.is_empty(), "{ctx}: {room} has no record"),
        }
    }
    let outbox: Vec<(u64, OutboxRecord)> = store.outbox.entries().unwrap();
    let expected: Vec<(u64, OutboxRecord)> =
        model.outbox.iter().map(|(s, r)| (*s, r.clone())).collect();
    assert_eq!(outbox, expected, "{ctx}: outbox");
}

fn run(seed: u64, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path(), 1 << 20).unwrap();
    let mut model = Model::default();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut next_server_id = 3u64;
    let mut token = 0u64;
    for step in 0..steps {
        match rng.u8(0..100) {
            // A sync page of new messages for one or two rooms.
            0..=29 => {
                let mut rooms = BTreeMap::new();
                for _ in 0..rng.usize(1..=2) {
                    let room = rng.usize(0..3);
                    let hi = next_server_id + 30;
                    let n = rng.usize(0..8);
                    let ids = ids_for(&mut rng, room, next_server_id, hi, n);
                    next_server_id = hi;
                    let messages = ids.iter().map(|id| message(*id)).collect();
                    rooms.insert(
                        ROOMS[room].to_owned(),
                        RoomSync {
                            messages,
                            limited: rng.bool(),
                            ..Default::default()
                        },
                    );
                }
                let since = (token > 0).then(|| format!("s{token}"));
                token += 1;
                let response = SyncResponse {
                    next_batch: format!("s{token}"),
                    has_more: false,
                    rooms: rooms.clone(),
                };
                store.apply_sync(&response, since.as_deref()).unwrap();
                // Applying the same batch again changes nothing: nothing new, nothing replaced.
                if rng.u8(0..4) == 0 {
                    let again = store.apply_sync(&response, since.as_deref()).unwrap();
                    assert!(
                        again.new.values().all(Vec::is_empty) && again.replaced.is_empty(),
                        "seed {seed}: re-apply {again:?}"
                    );
                }
                for room in rooms.values() {
                    for m in &room.messages {
                        model
                            .messages
                            .entry((m.room_id.clone(), m.id))
                            .or_insert(None);
                    }
                }
                assert_eq!(store.meta.sync_token().unwrap(), Some(format!("s{token}")));
                // A batch that lost a race (made from an older token) never moves it back.
                let stale = SyncResponse {
                    next_batch: "stale".into(),
                    has_more: false,
                    rooms: Default::default(),
                };
                store.apply_sync(&stale, Some("s0")).unwrap();
                assert_eq!(store.meta.sync_token().unwrap(), Some(format!("s{token}")));
            }
            // An older history page below some id.
            30..=44 => {
                let room = rng.usize(0..3);
                let before = rng.u64(3..next_server_id.max(4));
                let n = rng.usize(0..10);
                let ids = ids_for(&mut rng, room, before.saturating_sub(60), before, n);
                let page = HistoryResponse {
                    messages: ids.iter().map(|id| message(*id)).collect(),
                    has_more: rng.bool(),
                };
                store.apply_older_page(ROOMS[room], before, &page).unwrap();
                for id in ids {
                    model
                        .messages
                        .entry((ROOMS[room].to_owned(), id))
                        .or_insert(None);
                }
            }
            // Queue a message.
            45..=64 => {
                let room = ROOMS[rng.usize(0..3)];
                let record = OutboxRecord {
                    local_id: format!("txn-{step}"),
                    room_id: room.into(),
                    parts: vec![Part::text(format!("t{step}"))],
                    created_at: "2026-11-25T06:00:00.000Z".into(),
                    state: MessageState::Pending,
                    attempts: 0,
                    failure_reason: None,
                    after_id: None,
                    op: Default::default(),
                    maybe_sent: false,
                };
                let seq = store.enqueue(&record).unwrap();
                assert!(
                    model.outbox.keys().all(|s| *s < seq),
                    "seed {seed}: sequence must grow"
                );
                model.outbox.insert(seq, record);
            }
            // The server accepts the oldest queued message of a room.
            65..=76 => {
                if let Some((&seq, record)) = model
                    .outbox
                    .iter()
                    .nth(rng.usize(0..model.outbox.len().max(1)))
                {
                    let room = ROOMS.iter().position(|r| *r == record.room_id).unwrap();
                    let id = next_server_id - next_server_id % 3 + 3 + room as u64;
                    next_server_id = id + 1;
                    let local_id = record.local_id.clone();
                    store.complete_send(seq, &local_id, &message(id)).unwrap();
                    model.outbox.remove(&seq);
                    model
                        .messages
                        .insert((record_room(room), id), Some(local_id));
                }
            }
            // Mark failed, or discard.
            77..=84 => {
                if let Some(&seq) = model
                    .outbox
                    .keys()
                    .nth(rng.usize(0..model.outbox.len().max(1)))
                {
                    if rng.bool() {
                        store
                            .update_outbox(seq, |r| {
                                r.state = MessageState::Failed;
                                r.attempts += 1;
                                r.failure_reason = Some("no".into());
                            })
                            .unwrap();
                        let r = model.outbox.get_mut(&seq).unwrap();
                        r.state = MessageState::Failed;
                        r.attempts += 1;
                        r.failure_reason = Some("no".into());
                    } else {
                        assert!(store.remove_outbox(seq).unwrap().is_some());
                        model.outbox.remove(&seq);
                    }
                }
            }
            // Enforce a small cap.
            85..=92 => {
                let room = ROOMS[rng.usize(0..3)];
                let cap = rng.u64(0..12);
                let ids = model.room_ids(room);
                let excess = ids.len().saturating_sub(cap as usize);
                let removed = store.evict(room, cap).unwrap();
                assert_eq!(removed, excess as u64, "seed {seed} step {step}: evicted");
                for id in &ids[..excess] {
                    model.messages.remove(&(room.to_owned(), *id));
                }
            }
            // Close and reopen.
            _ => {
                drop(store);
                store = super::tests::reopen(dir.path());
            }
        }
        check(&store, &model, seed, step);
    }
}

fn record_room(index: usize) -> String {
    ROOMS[index].to_owned()
}

#[test]
fn the_store_agrees_with_a_btreemap_model_across_reopens() {
    for seed in 0..4 {
        run(seed, 250);
    }
}
