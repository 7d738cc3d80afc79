//! The change stream's property, checked end to end: several clients send, edit, delete, react
//! and read at once (repeating some requests with the same txn id) while devices of every user
//! follow `/v2/sync` with a small limit, filling `limited` gaps from v2 history as a device does.
//! Then, for every device:
//! - its store equals the server's final state (every message's content, edit time, tombstone,
//!   reactions with `me`, txn id for its own), and so do its receipts and unread counts;
//! - its answers cover the stream without a gap or an overlap (each starts where the previous
//!   ended), positions only grow, and the database's change rows (read from the file) agree with
//!   every answer: each change in the user's rooms is in the answer whose range holds its
//!   position (a new message in `messages` or in a `limited` gap, a change to an older message
//!   in `updates`, a receipt in `receipts`, a new room whole), and nothing is in an answer
//!   without a change in its range. A new message never comes twice;
//! - the writes' idempotency held: the database has one message per send txn id and one edit
//!   per edit txn id, however often a request was repeated.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chatsync_protocol::v2::parse_token;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{Client, Cluster};

/// A message the writers know of: (room, id, sender).
type Known = Arc<Mutex<Vec<(String, u64, String)>>>;

/// What the writers did that the database must reflect exactly once.
#[derive(Default, Clone)]
struct Done {
    send_txns: BTreeSet<(String, String)>,
    edit_txns: BTreeSet<(String, String)>,
}

async fn writer(
    me: Client,
    name: String,
    rooms: Vec<String>,
    known: Known,
    done: Arc<Mutex<Done>>,
    seed: u64,
    ops: usize,
    extra_room: Option<Vec<&'static str>>,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut rooms = rooms;
    for op in 0..ops {
        if op == ops / 2 {
            if let Some(members) = &extra_room {
                // A room created while everyone syncs: it reaches them as a joined room.
                rooms.push(me.create_room(members).await.id);
            }
        }
        let room = rooms[rng.usize(..rooms.len())].clone();
        let in_room: Vec<(u64, String)> = known
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, _, _)| *r == room)
            .map(|(_, id, s)| (*id, s.clone()))
            .collect();
        let mine: Vec<u64> = in_room
            .iter()
            .filter(|(_, s)| *s == name)
            .map(|(id, _)| *id)
            .collect();
        let txn = format!("{name}-{op}");
        // Each request goes once or, now and then, twice with the same txn id (a retry).
        let times = if rng.u8(..8) == 0 { 2 } else { 1 };
        match rng.u8(..20) {
            0..=6 => {
                let mut first = None;
                for _ in 0..times {
                    let m = me.send_v2(&room, &txn, &format!("{txn} text")).await;
                    assert_eq!(*first.get_or_insert(m["id"].clone()), m["id"]);
                }
                let id = first.unwrap().as_u64().unwrap();
                known.lock().unwrap().push((room, id, name.clone()));
                done.lock().unwrap().send_txns.insert((name.clone(), txn));
            }
            7..=10 if !mine.is_empty() => {
                let id = mine[rng.usize(..mine.len())];
                for i in 0..times {
                    let a = me.edit(&room, id, &txn, &format!("{txn} edit {i}")).await;
                    match a.status {
                        StatusCode::OK => {
                            done.lock().unwrap().edit_txns.insert((name.clone(), txn.clone()));
                            assert!(a.body["parts"][0]["content"]
                                .as_str()
                                .unwrap()
                                .ends_with("edit 0"), "a retry changes nothing: {}", a.body);
                        }
                        // Deleted meanwhile.
                        StatusCode::CONFLICT => {}
                        other => panic!("edit: {other} {}", a.body),
                    }
                }
            }
            11 if !mine.is_empty() => {
                let id = mine[rng.usize(..mine.len())];
                for _ in 0..times {
                    assert!(me.delete(&room, id, &txn).await.status.is_success());
                }
            }
            12..=16 if !in_room.is_empty() => {
                let (id, _) = in_room[rng.usize(..in_room.len())];
                let key = ["👍", "🎉", "❤"][rng.usize(..3)];
                let on = rng.u8(..3) > 0;
                for _ in 0..times {
                    let a = me.react(&room, id, &txn, key, on).await;
                    assert!(
                        a.status == StatusCode::OK || a.status == StatusCode::CONFLICT,
                        "react: {} {}",
                        a.status,
                        a.body
                    );
                }
            }
            17..=19 if !in_room.is_empty() => {
                let (id, _) = in_room[rng.usize(..in_room.len())];
                let mut first = None;
                for _ in 0..times {
                    let a = me.receipt(&room, &txn, id).await.ok();
                    assert_eq!(*first.get_or_insert(a["message_id"].clone()), a["message_id"]);
                }
            }
            _ => {}
        }
    }
}

/// One answer of a device: the range it covers and what it said.
struct Seen {
    since: u64,
    next: u64,
    body: Value,
}

/// A device following `/v2/sync` with a small limit, keeping what it learns.
struct Device {
    user: String,
    client: Client,
    /// message id → its v2 state, as the device holds it.
    store: BTreeMap<u64, Value>,
    /// room → (receipts, unread).
    rooms: BTreeMap<String, (BTreeMap<String, u64>, u64)>,
    /// Messages that came as new messages (never twice).
    new_seen: HashSet<u64>,
    answers: Vec<Seen>,
    start: u64,
    /// The initial answer's token (its typing mark included).
    start_token: String,
}

const LIMIT: u32 = 2;

impl Device {
    async fn start(user: &str, client: Client) -> Device {
        let mut d = Device {
            user: user.to_owned(),
            client,
            store: BTreeMap::new(),
            rooms: BTreeMap::new(),
            new_seen: HashSet::new(),
            answers: Vec::new(),
            start: 0,
            start_token: String::new(),
        };
        let body = d.client.sync_v2(&format!("limit={LIMIT}")).await;
        d.start_token = body["next_batch"].as_str().unwrap().to_owned();
        d.start = parse_token(&d.start_token).unwrap();
        d.apply(&body).await;
        d
    }

    /// Applies an answer as a device does: new messages, gaps filled from history (older
    /// direction from the oldest new message until a known one), updates, receipts, unread.
    async fn apply(&mut self, body: &Value) {
        for (room_id, room) in body["rooms"].as_object().unwrap() {
            let messages = room["messages"].as_array().unwrap();
            for m in messages {
                let id = m["id"].as_u64().unwrap();
                assert!(self.new_seen.insert(id), "{}: message {id} came as new twice", self.user);
                self.store.insert(id, m.clone());
            }
            if room["limited"] == true {
                let mut before = messages[0]["id"].as_u64().unwrap();
                'fill: loop {
                    let page = self
                        .client
                        .get(&format!(
                            "/v2/rooms/{room_id}/messages?initial_id={before}&limit={LIMIT}"
                        ))
                        .await
                        .ok();
                    let page_messages = page["messages"].as_array().unwrap();
                    for m in page_messages.iter().rev() {
                        let id = m["id"].as_u64().unwrap();
                        if self.store.contains_key(&id) {
                            break 'fill;
                        }
                        self.store.insert(id, m.clone());
                    }
                    if page["has_more"] != true {
                        break;
                    }
                    before = page_messages[0]["id"].as_u64().unwrap();
                }
            }
            for m in room["updates"].as_array().unwrap() {
                let id = m["id"].as_u64().unwrap();
                assert!(
                    self.store.contains_key(&id),
                    "{}: an update to message {id}, which it never got",
                    self.user
                );
                self.store.insert(id, m.clone());
            }
            let state = self.rooms.entry(room_id.clone()).or_default();
            for (user, id) in room["receipts"].as_object().unwrap() {
                state.0.insert(user.clone(), id.as_u64().unwrap());
            }
            state.1 = room["unread"].as_u64().unwrap();
        }
    }

    /// Follows the stream until `stop` is set and an answer says nothing is left.
    async fn follow(mut self, stop: Arc<AtomicBool>) -> Device {
        let mut since = self.start;
        let mut token = self.start_token.clone();
        loop {
            let stopping = stop.load(Ordering::Acquire);
            let body = self
                .client
                .sync_v2(&format!("since={token}&limit={LIMIT}&timeout_ms=100"))
                .await;
            let next_token = body["next_batch"].as_str().unwrap().to_owned();
            let next = parse_token(&next_token).unwrap();
            let empty = body["rooms"].as_object().unwrap().is_empty();
            let typing_only = body["rooms"]
                .as_object()
                .unwrap()
                .values()
                .all(|r| r["messages"] == json!([]) && r["updates"] == json!([]) && r["receipts"] == json!({}));
            if empty || (typing_only && self.client.instances() > 1) {
                // It may move past changes in other users' rooms (checked below: none of its
                // own rooms' changes lies in the range it skipped). With several instances, a
                // token from another instance carries a typing mark this one does not know:
                // the answer lists the rooms' typing once more, at the same position.
                assert!(next >= since, "{}: an empty answer never goes back", self.user);
            } else {
                assert!(next > since, "{}: positions only grow: {since} then {next}", self.user);
            }
            self.apply(&body).await;
            let more = body["has_more"] == true;
            self.answers.push(Seen { since, next, body });
            since = next;
            token = next_token;
            if stopping && empty && !more {
                return self;
            }
        }
    }
}

/// A change row of the database.
struct Row {
    pos: u64,
    room: String,
    kind: i64,
    message: Option<u64>,
    user: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_syncing_devices_see_every_change_once_in_order() {
    check_stream(Cluster::sqlite().await).await;
}

/// The same on three instances on one PostgreSQL database, every client's requests going to
/// each instance in turn (a device may reach a different instance on every request): writes
/// commit on all three concurrently, long-polls park on one instance and are woken by a commit
/// on another, and still every device ends with every change exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgres_lose_skip_and_repeat_nothing() {
    let Some(cluster) = Cluster::postgres(3).await else {
        return;
    };
    check_stream(cluster).await;
}

async fn check_stream(t: Cluster) {
    let users = ["ann", "ben", "cyd", "dee"];
    let mut clients = Vec::new();
    for u in users {
        clients.push(t.user(u).await);
    }
    let room_members: Vec<Vec<&str>> = vec![
        vec!["ben", "cyd"],
        vec!["cyd", "dee"],
        vec!["dee"],
        vec!["ben", "cyd", "dee"],
    ];
    let mut rooms_of: HashMap<&str, Vec<String>> = HashMap::new();
    for (i, others) in room_members.iter().enumerate() {
        let creator = &clients[i];
        let room = creator.create_room(others).await;
        for m in &room.member_ids {
            rooms_of.entry(users.iter().find(|u| *u == m).unwrap()).or_default().push(room.id.clone());
        }
    }
    // Devices: one per user, two for ben; all start before the writers.
    let mut devices = Vec::new();
    for (i, u) in users.iter().enumerate() {
        devices.push(Device::start(u, clients[i].clone()).await);
        if *u == "ben" {
            devices.push(Device::start(u, t.user(u).await).await);
        }
    }
    // And one that syncs only after the writers are done: its first answer is over the limit
    // in every room, so the gap machinery is exercised whatever the scheduling.
    let late = Device::start("dee", t.user("dee").await).await;
    let stop = Arc::new(AtomicBool::new(false));
    let following: Vec<_> = devices
        .into_iter()
        .map(|d| tokio::spawn(d.follow(Arc::clone(&stop))))
        .collect();
    let known: Known = Arc::default();
    let done: Arc<Mutex<Done>> = Arc::default();
    let writers: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let extra = (i == 0).then(|| vec!["ben", "cyd", "dee"]);
            tokio::spawn(writer(
                clients[i].clone(),
                u.to_string(),
                rooms_of[u].clone(),
                Arc::clone(&known),
                Arc::clone(&done),
                100 + i as u64,
                120,
                extra,
            ))
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::Release);
    let mut devices = Vec::new();
    for f in following {
        devices.push(f.await.unwrap());
    }
    devices.push(late.follow(Arc::clone(&stop)).await);

    // The database: the stream, each message's send position, members.
    let rows: Vec<Row> = t
        .query("SELECT pos, room_id, kind, message_id, user_id FROM changes ORDER BY pos")
        .await
        .into_iter()
        .map(|r| Row {
            pos: r[0].as_u64().unwrap(),
            room: r[1].as_str().unwrap().to_owned(),
            kind: r[2].as_i64().unwrap(),
            message: r[3].as_u64(),
            user: r[4].as_str().map(str::to_owned),
        })
        .collect();
    let positions: Vec<u64> = rows.iter().map(|r| r.pos).collect();
    assert_eq!(positions, (1..=rows.len() as u64).collect::<Vec<_>>(), "no gap in the stream");
    let head = rows.len() as u64;
    let sent_at: HashMap<u64, u64> = rows
        .iter()
        .filter(|r| r.kind == 0)
        .map(|r| (r.message.unwrap(), r.pos))
        .collect();
    let mut ids: Vec<u64> = sent_at.keys().copied().collect();
    ids.sort();
    let by_pos: Vec<u64> = rows.iter().filter(|r| r.kind == 0).map(|r| r.message.unwrap()).collect();
    assert_eq!(by_pos, ids, "message ids grow with their positions");
    let members: HashSet<(String, String)> = t
        .query("SELECT room_id, user_id FROM members")
        .await
        .into_iter()
        .map(|r| (r[0].as_str().unwrap().to_owned(), r[1].as_str().unwrap().to_owned()))
        .collect();

    // Idempotency: one message per send txn id, one edit per edit txn id.
    let done = done.lock().unwrap().clone();
    let messages = t.query("SELECT COUNT(*) FROM messages").await[0][0].as_i64().unwrap();
    assert_eq!(messages as usize, done.send_txns.len());
    let edits = rows.iter().filter(|r| r.kind == 1).count();
    assert_eq!(edits, done.edit_txns.len());

    let mut changes_checked = 0;
    for d in &devices {
        let who = &d.user;
        // 1. The device's store is the server's final state.
        let truth = d.client.sync_v2("").await;
        let mut expected_rooms = BTreeMap::new();
        for (room_id, room) in truth["rooms"].as_object().unwrap() {
            let all = d.client.history_v2(room_id).await;
            let held: Vec<&Value> = d
                .store
                .values()
                .filter(|m| m["room_id"] == json!(room_id))
                .collect();
            assert_eq!(held.len(), all.len(), "{who}: messages of {room_id}");
            for (h, a) in held.iter().zip(&all) {
                assert_eq!(*h, a, "{who}: message as held vs as stored");
            }
            let receipts: BTreeMap<String, u64> =
                serde_json::from_value(room["receipts"].clone()).unwrap();
            expected_rooms.insert(room_id.clone(), (receipts, room["unread"].as_u64().unwrap()));
        }
        assert_eq!(d.rooms, expected_rooms, "{who}: receipts and unread");

        // 2. The answers cover the stream once, in order.
        let mut at = d.start;
        for seen in &d.answers {
            assert_eq!(seen.since, at, "{who}: answers follow each other");
            at = seen.next;
        }
        assert_eq!(at, head, "{who}: followed to the end");
        for seen in &d.answers {
            let rooms = seen.body["rooms"].as_object().unwrap();
            let in_range = |pos: u64| pos > seen.since && pos <= seen.next;
            let joined: HashSet<&str> = rows
                .iter()
                .filter(|r| r.kind == 5 && in_range(r.pos))
                .map(|r| r.room.as_str())
                .collect();
            let ids_of = |room: &Value, field: &str| -> Vec<u64> {
                room[field]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["id"].as_u64().unwrap())
                    .collect()
            };
            // A message that is new in this answer: in `messages`, or below them in a gap.
            let shown_new = |room: &Value, id: u64| {
                let new = ids_of(room, "messages");
                new.contains(&id) || (room["limited"] == true && new.first().is_some_and(|f| id < *f))
            };
            for row in rows.iter().filter(|r| in_range(r.pos)) {
                if !members.contains(&(row.room.clone(), who.clone())) {
                    continue;
                }
                changes_checked += 1;
                let room = rooms
                    .get(&row.room)
                    .unwrap_or_else(|| panic!("{who}: change {} of {} missing in ({}, {}]", row.pos, row.room, seen.since, seen.next));
                let whole = joined.contains(row.room.as_str());
                match row.kind {
                    0 => assert!(shown_new(room, row.message.unwrap()), "{who}: send at {}", row.pos),
                    1..=3 => {
                        let id = row.message.unwrap();
                        if sent_at[&id] <= seen.since && !whole {
                            assert!(ids_of(room, "updates").contains(&id), "{who}: change at {} to {id}", row.pos);
                        } else {
                            assert!(shown_new(room, id), "{who}: change at {} to new {id}", row.pos);
                        }
                    }
                    4 => assert!(room["receipts"].get(row.user.as_deref().unwrap()).is_some(), "{who}: receipt at {}", row.pos),
                    5 => assert!(whole),
                    k => panic!("unknown kind {k}"),
                }
            }
            // Nothing without a change in the range (with several instances, a room may come with
            // its typing list only: see `follow`).
            for (room_id, room) in rooms {
                let changed: Vec<&Row> = rows.iter().filter(|r| in_range(r.pos) && r.room == *room_id).collect();
                let typing_only = room["messages"] == json!([]) && room["updates"] == json!([]) && room["receipts"] == json!({});
                if typing_only && d.client.instances() > 1 {
                    continue;
                }
                assert!(!changed.is_empty(), "{who}: {room_id} in an answer without a change");
                for id in ids_of(room, "messages") {
                    assert!(in_range(sent_at[&id]), "{who}: message {id} new in ({}, {}]", seen.since, seen.next);
                }
                for id in ids_of(room, "updates") {
                    assert!(sent_at[&id] <= seen.since);
                    assert!(changed.iter().any(|r| (1..=3).contains(&r.kind) && r.message == Some(id)), "{who}: update of {id} without a change");
                }
                if !joined.contains(room_id.as_str()) {
                    for reader in room["receipts"].as_object().unwrap().keys() {
                        assert!(changed.iter().any(|r| r.kind == 4 && r.user.as_deref() == Some(reader)));
                    }
                }
            }
        }
    }
    assert!(head > 300, "a busy stream: {head} changes");
    assert!(changes_checked > 500, "{changes_checked} changes checked against answers");
    let bounded: usize = devices.iter().map(|d| d.answers.iter().filter(|s| s.body["rooms"].as_object().unwrap().values().any(|r| r["limited"] == true)).count()).sum();
    assert!(bounded > 0, "some answers had gaps to fill");
}
