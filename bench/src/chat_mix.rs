//! Scenario 9, the chat model of protocol v2 (issue 14): what edits and reactions cost a device
//! that syncs them, and what a Timeline's diff costs an open screen.
//!
//! A device (a real `ChatClient` with the mobile settings, `ClientConfig::new`, on a temp store,
//! in this process) is synced to the real reference server. Another user (bob) writes through
//! the v2 HTTP routes; nothing of that is timed. Then the device's `sync_once()` is timed: the
//! `/v2/sync` answer applied, flushed, and its listeners told.
//!
//! (a) **Throughput with a mix**: `mix_changes` changes in the device's rooms, 80% new messages,
//!     10% edits of older messages the device holds (bob's own: only the sender may edit) and
//!     10% reactions to older held messages, interleaved. Baseline, in the same run and
//!     interleaved run by run: the same number of changes as new messages only. Every run is
//!     checked afterwards: each new message with its text, each edit's text and `edited`, each
//!     reaction's count.
//! (b) **Cost of a timeline diff**: one room holding at least `timeline_held` messages; one edit
//!     of a message inside the window arrives by sync. Timed from the start of `sync_once` to:
//!     its return with no timeline open (baseline: the sync alone); the app's re-read of the
//!     window with `messages(room, window, None)` (baseline: what apps did before Timelines);
//!     the listener of an open Timeline receiving its `Set` diff (checked: index and text).
//!     For two windows: the newest page (as a timeline opens) and the whole held room.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatsync_core::{
    ChatClient, ChatMessage, ClientConfig, ListDiff, TimelineDiff, TimelineListener, TokenSource,
};

use crate::report::{ms_since, Report};
use crate::server::{start_seeded, SeededServer};
use crate::stats::{fmt_num, Samples};
use crate::Sizes;

/// Rooms of the device (alice and bob in each).
const ROOMS: usize = 10;
/// The mobile default page (`ClientConfig::new`): also the device's sync `limit` per room, so
/// a batch stays under it per room (more would be `limited` and backfilled: another figure).
const PAGE: u32 = 50;

/// Runs scenario 9 on a server of its own.
pub fn run(sizes: &Sizes, runtime: &tokio::runtime::Runtime, report: &mut Report) {
    assert!(
        sizes.mix_changes as usize / ROOMS <= PAGE as usize,
        "a batch must stay within one sync page per room"
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let seeded = sizes.timeline_held * ROOMS as u64;
    let server = runtime.block_on(start_seeded(&dir.path().join("server.db"), seeded, ROOMS));
    let config = ClientConfig::new(
        server.server.url(),
        dir.path().join("device"),
        "alice",
        TokenSource::Fixed(server.alice_token.clone()),
    );
    assert_eq!(config.page_size, PAGE, "the mobile page size changed");
    let client = ChatClient::new(config).expect("open an empty store");
    let sync = runtime.block_on(client.sync_once()).expect("initial sync");
    assert!(sync.online, "the initial sync did not reach the server");
    let mut bob = Bob::new(&server);
    // What the device holds (newest page of each room): the pool of older messages to change.
    for room in &server.rooms {
        for m in client.messages(room.clone(), PAGE, None).expect("read") {
            let id = m.server_id.expect("a synced message");
            bob.held.push((room.clone(), id, m.sender.id == "bob"));
        }
    }
    mix(sizes, &client, &mut bob, runtime, report);
    timeline(sizes, &client, &mut bob, &server, runtime, report);
    client.shutdown();
    drop(client);
    runtime.block_on(server.server.shutdown());
}

/// bob, writing through the v2 routes, and what he expects the device to show.
struct Bob {
    http: reqwest::Client,
    url: String,
    token: String,
    rooms: Vec<String>,
    /// Held by the device before the current batch: (room, id, sent by bob).
    held: Vec<(String, u64, bool)>,
    /// Next txn id.
    txn: u64,
    /// Rotates the targets over the held messages.
    cursor: usize,
}

/// What one batch changed, to check on the device.
#[derive(Default)]
struct Expected {
    new: Vec<(String, u64, String)>,
    edits: Vec<(u64, String)>,
    reactions: Vec<(u64, String)>,
}

impl Bob {
    fn new(server: &SeededServer) -> Bob {
        Bob {
            http: reqwest::Client::new(),
            url: server.server.url(),
            token: server.bob_token.clone(),
            rooms: server.rooms.clone(),
            held: Vec::new(),
            txn: 0,
            cursor: 0,
        }
    }

    async fn put(&mut self, path: String, body: serde_json::Value) -> serde_json::Value {
        self.txn += 1;
        self.http
            .put(format!("{}/v2/rooms/{path}/mix-{}", self.url, self.txn))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("PUT {path}: {e}"))
            .json()
            .await
            .expect("a JSON answer")
    }

    async fn send(&mut self, room: &str, text: String) -> u64 {
        let answer = self
            .put(
                format!("{room}/messages"),
                serde_json::json!({ "parts": [{ "type": "text/plain", "content": text }] }),
            )
            .await;
        answer["id"].as_u64().expect("the new message's id")
    }

    async fn edit(&mut self, room: &str, id: u64, text: &str) {
        let answer = self
            .put(
                format!("{room}/messages/{id}/edits"),
                serde_json::json!({ "parts": [{ "type": "text/plain", "content": text }] }),
            )
            .await;
        assert_eq!(answer["id"].as_u64(), Some(id), "edit answer: {answer}");
        assert!(answer["edited_at"].is_string(), "edit answer: {answer}");
    }

    async fn react(&mut self, room: &str, id: u64, key: &str) {
        let answer = self
            .put(
                format!("{room}/messages/{id}/reactions"),
                serde_json::json!({ "key": key, "on": true }),
            )
            .await;
        assert_eq!(answer["id"].as_u64(), Some(id), "reaction answer: {answer}");
    }

    /// The next held message (of bob's when `own`), rotating over all held messages.
    fn next_target(&mut self, own: bool) -> (String, u64) {
        for _ in 0..self.held.len() {
            self.cursor = (self.cursor + 1) % self.held.len();
            let (room, id, by_bob) = &self.held[self.cursor];
            if *by_bob || !own {
                return (room.clone(), *id);
            }
        }
        panic!("no held message of bob's to edit");
    }

    /// Writes one batch of `changes`: every fifth change an edit or a reaction (alternately)
    /// of a distinct older held message when `mixed`, else only new messages; new messages
    /// round-robin over the rooms. `run` makes texts and reaction keys unique.
    async fn batch(&mut self, changes: u64, mixed: bool, run: usize) -> Expected {
        let mut expected = Expected::default();
        let mut touched = std::collections::BTreeSet::new();
        let mut new_in_batch = Vec::new();
        let key = format!("r{run}");
        for i in 0..changes {
            if mixed && i % 5 == 4 {
                let edit = (i / 5) % 2 == 0;
                let mut tries = 0;
                let (room, id) = loop {
                    let t = self.next_target(edit);
                    if touched.insert(t.1) {
                        break t;
                    }
                    tries += 1;
                    assert!(tries < 100_000, "too few held messages to change");
                };
                if edit {
                    let text =
                        format!("edited in run {run}: message {id}, see you at a quarter to");
                    self.edit(&room, id, &text).await;
                    expected.edits.push((id, text));
                } else {
                    self.react(&room, id, &key).await;
                    expected.reactions.push((id, key.clone()));
                }
            } else {
                let room = self.rooms[expected.new.len() % self.rooms.len()].clone();
                let text =
                    format!("run {run} change {i}: see you at the station at half past, ok?");
                let id = self.send(&room, text.clone()).await;
                expected.new.push((room.clone(), id, text));
                new_in_batch.push((room, id, true));
            }
        }
        // Held once the device has synced them: targets of the next batches.
        self.held.extend(new_in_batch);
        expected
    }
}

fn held_message(client: &ChatClient, id: u64) -> ChatMessage {
    client
        .message(id.to_string())
        .expect("read a message")
        .unwrap_or_else(|| panic!("message {id} is not on the device"))
}

/// Checks that the device shows everything `expected` lists.
fn check(client: &ChatClient, expected: &Expected) {
    for (room, id, text) in &expected.new {
        let m = held_message(client, *id);
        assert_eq!(&m.room_id, room, "message {id}: wrong room");
        assert_eq!(&m.text, text, "message {id}: wrong text");
    }
    for (id, text) in &expected.edits {
        let m = held_message(client, *id);
        assert_eq!(&m.text, text, "message {id}: the edit is not shown");
        assert!(m.edited_at.is_some(), "message {id}: not marked edited");
    }
    for (id, key) in &expected.reactions {
        let m = held_message(client, *id);
        let r = m
            .reactions
            .iter()
            .find(|r| &r.key == key)
            .unwrap_or_else(|| panic!("message {id}: reaction {key} missing: {:?}", m.reactions));
        assert_eq!((r.count, r.me), (1, false), "message {id}: reaction {key}");
    }
}

/// Times one `sync_once` of a batch and checks it; returns the milliseconds.
fn timed_sync(client: &ChatClient, runtime: &tokio::runtime::Runtime, expected: &Expected) -> f64 {
    let started = Instant::now();
    let report = runtime.block_on(client.sync_once()).expect("sync");
    let ms = ms_since(started);
    assert!(report.online, "the sync did not reach the server");
    let new: u32 = report.new_messages.values().sum();
    assert_eq!(
        new as usize,
        expected.new.len(),
        "the sync stored {new} new messages: {report:?}"
    );
    check(client, expected);
    ms
}

/// (a): throughput of a mixed batch against new messages only.
fn mix(
    sizes: &Sizes,
    client: &ChatClient,
    bob: &mut Bob,
    runtime: &tokio::runtime::Runtime,
    report: &mut Report,
) {
    let c = sizes.mix_changes;
    let mut rate = [Samples::default(), Samples::default()];
    let mut ms = [Samples::default(), Samples::default()];
    let mut run = 0;
    for _ in 0..sizes.mix_runs {
        // Interleaved: the load of the moment falls on both alike.
        for (k, mixed) in [(0, true), (1, false)] {
            run += 1;
            let expected = runtime.block_on(bob.batch(c, mixed, run));
            if mixed {
                assert_eq!(
                    (expected.edits.len() + expected.reactions.len()) as u64,
                    c / 5,
                    "a mixed batch is 20% changes to older messages"
                );
            }
            let t = timed_sync(client, runtime, &expected);
            ms[k].push(t);
            rate[k].push(c as f64 / (t / 1_000.0));
        }
    }
    report.section(&format!(
        "9. the chat model (protocol v2): incremental sync of {c} changes in {ROOMS} rooms from the real server, device with mobile settings"
    ));
    let mix_median = rate[0].summary().median;
    report.row(
        "mix: 80% new, 10% edits, 10% reactions: throughput",
        &rate[0],
        "changes/s",
        None,
    );
    report.row(
        "baseline: the same count of new messages only",
        &rate[1],
        "changes/s",
        Some(mix_median),
    );
    let ms_median = ms[0].summary().median;
    report.row("mix: sync_once", &ms[0], "ms", None);
    report.row(
        "baseline (new only): sync_once",
        &ms[1],
        "ms",
        Some(ms_median),
    );
}

/// A timeline listener that forwards each update with the moment it arrived.
struct Forward(Mutex<mpsc::Sender<(Instant, Vec<TimelineDiff>)>>);

impl TimelineListener for Forward {
    fn on_update(&self, diffs: Vec<TimelineDiff>) {
        let at = Instant::now();
        let _ = self.0.lock().unwrap().send((at, diffs));
    }
}

/// The three ways of seeing one edit, timed alternately.
#[derive(Clone, Copy)]
enum Way {
    SyncOnly,
    Reread,
    Timeline,
}

/// (b): the cost of a timeline's diff for one edit, against the sync alone and a re-read.
fn timeline(
    sizes: &Sizes,
    client: &ChatClient,
    bob: &mut Bob,
    server: &SeededServer,
    runtime: &tokio::runtime::Runtime,
    report: &mut Report,
) {
    // Room 1: seeded with bob's messages only (odd ids), so bob may edit any of them.
    let room = server.rooms[1].clone();
    // Hold the whole room, as a user who scrolled back through it.
    let mut before = None;
    loop {
        let page = runtime
            .block_on(client.load_older(room.clone(), before, 100))
            .expect("load_older");
        if !page.has_more {
            break;
        }
        before = page.messages.iter().filter_map(|m| m.server_id).min();
    }
    let mut held = 0u64;
    let mut before = None;
    loop {
        let page = client.messages(room.clone(), 1_000, before).expect("read");
        let Some(last) = page.last() else { break };
        before = last.server_id;
        held += page.len() as u64;
    }
    assert!(held >= sizes.timeline_held, "room holds {held} messages");
    let windows = [PAGE as usize, sizes.timeline_held as usize];
    let mut results: BTreeMap<usize, [Samples; 3]> = BTreeMap::new();
    let mut edit_no = 0u64;
    for _ in 0..sizes.timeline_samples {
        for &window in &windows {
            for way in [Way::SyncOnly, Way::Reread, Way::Timeline] {
                edit_no += 1;
                // A message of bob's inside the window (a different place each time).
                let ids: Vec<u64> = client
                    .messages(room.clone(), window as u32, None)
                    .expect("read")
                    .iter()
                    .filter(|m| m.sender.id == "bob")
                    .filter_map(|m| m.server_id)
                    .collect();
                let target = ids[(edit_no as usize * 7) % ids.len()];
                let text = format!("edit {edit_no} of message {target}: make it a quarter past");
                let opened = match way {
                    Way::Timeline => Some(open_timeline(client, &room, window, runtime)),
                    _ => None,
                };
                runtime.block_on(bob.edit(&room, target, &text));
                let started = Instant::now();
                let sync = runtime.block_on(client.sync_once()).expect("sync");
                let ms = match way {
                    Way::SyncOnly => ms_since(started),
                    Way::Reread => {
                        let page = client
                            .messages(room.clone(), window as u32, None)
                            .expect("re-read");
                        let ms = ms_since(started);
                        assert_eq!(page.len(), window, "re-read window");
                        let m = page
                            .iter()
                            .find(|m| m.server_id == Some(target))
                            .expect("the edited message in the window");
                        assert_eq!(m.text, text, "the re-read does not show the edit");
                        ms
                    }
                    Way::Timeline => {
                        let (timeline, rx, _sub) = opened.as_ref().expect("opened");
                        let (at, diffs) = rx
                            .recv_timeout(Duration::from_secs(10))
                            .expect("the timeline's diff for the edit");
                        let ms = (at - started).as_secs_f64() * 1_000.0;
                        let [ListDiff::Set { index, item }] = diffs.as_slice() else {
                            panic!("expected one Set for the edit, got {diffs:?}")
                        };
                        assert_eq!(item.server_id, Some(target), "Set of the wrong message");
                        assert_eq!(item.text, text, "the Set does not show the edit");
                        let items = timeline.items();
                        assert_eq!(items.len(), window, "the timeline's window changed");
                        assert_eq!(
                            items[*index as usize].server_id,
                            Some(target),
                            "the Set's index is not the message's place"
                        );
                        ms
                    }
                };
                assert!(sync.online && sync.new_messages.is_empty(), "{sync:?}");
                assert_eq!(held_message(client, target).text, text, "edit not stored");
                drop(opened);
                results.entry(window).or_default()[way as usize].push(ms);
            }
        }
    }
    for (window, [sync_only, reread, timeline]) in &results {
        report.section(&format!(
            "9. the chat model: one edit arriving by sync, room holding {held} messages, window of {window}: ms per change"
        ));
        let t = timeline.summary().median;
        report.row(
            "Timeline open: sync_once to its Set diff received",
            timeline,
            "ms",
            None,
        );
        report.row(
            "no timeline: sync_once alone (baseline)",
            sync_only,
            "ms",
            Some(t),
        );
        report.row(
            &format!("no timeline: sync_once + re-read messages(room, {window})"),
            reread,
            "ms",
            Some(t),
        );
        let s = sync_only.summary().median;
        report.note(&format!(
            "over the sync alone (difference of medians; noise below ~0.1 ms): Timeline diff {} ms, re-read {} ms",
            fmt_num(t - s),
            fmt_num(reread.summary().median - s)
        ));
    }
}

type Opened = (
    Arc<chatsync_core::Timeline>,
    mpsc::Receiver<(Instant, Vec<TimelineDiff>)>,
    chatsync_core::Subscription,
);

/// Opens a timeline of `room` showing the newest `window` messages, with a listener that has
/// received its `Reset` already.
fn open_timeline(
    client: &ChatClient,
    room: &str,
    window: usize,
    runtime: &tokio::runtime::Runtime,
) -> Opened {
    let timeline = client.timeline(room.to_owned()).expect("open a timeline");
    let shown = timeline.items().len();
    if window > shown {
        let outcome = runtime
            .block_on(timeline.paginate_backwards((window - shown) as u32))
            .expect("paginate");
        assert_eq!(
            outcome.added as usize,
            window - shown,
            "paginate from the store"
        );
    }
    assert_eq!(timeline.items().len(), window, "the timeline's window");
    let (tx, rx) = mpsc::channel();
    let sub = timeline.subscribe(Arc::new(Forward(Mutex::new(tx))));
    let (_, first) = rx.recv_timeout(Duration::from_secs(10)).expect("the Reset");
    assert!(
        matches!(first.as_slice(), [ListDiff::Reset { items }] if items.len() == window),
        "the first update is not the Reset of the window"
    );
    (timeline, rx, sub)
}
