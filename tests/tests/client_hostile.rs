//! The device core against a hostile server (`chatsync_tests::hostile`): truncated JSON, wrong
//! types, ids going backwards, duplicate ids, messages under the wrong room, short bodies,
//! garbage instead of HTTP, huge bodies (refused past the core's cap without being read), slow
//! drips, unknown part types. Every answer gives a typed error or a correct result, and a
//! rejected batch leaves the store exactly as it was (a digest of everything the public API
//! shows, before and after).

use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use chatsync_core::{
    ChatClient, ChatError, ClientConfig, ClientEvent, ClientListener, SyncState, TokenSource,
};
use chatsync_tests::hostile::{HostileServer, Reply, Request, Responder};
use serde_json::{json, Value};

const ROOM: &str = "r1";

fn message(id: u64, room: &str, text: &str) -> Value {
    json!({
        "id": id, "user_id": "bob", "room_id": room,
        "parts": [{"type": "text/plain", "content": text}],
        "created_at": "2026-11-25T06:00:00.000Z", "updated_at": "2026-11-25T06:00:00.000Z"
    })
}

/// `message(id, room, text)` as it reads after an edit at 07:00.
fn edited(id: u64, room: &str, text: &str) -> Value {
    let mut m = message(id, room, text);
    m["updated_at"] = json!("2026-11-25T07:00:00.000Z");
    m
}

fn sync_body(next: &str, messages: Vec<Value>) -> String {
    json!({"next_batch": next, "rooms": {ROOM: {"messages": messages, "limited": false}}})
        .to_string()
}

/// An honest server for everything but what `sync` (a `since` sync) answers. The initial sync
/// holds messages 1..=3; sends are answered 503 so the outbox keeps one message.
fn honest(sync: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Responder {
    Arc::new(move |r: &Request| {
        match (r.method.as_str(), r.path()) {
        ("GET", "/v2/sync") if !r.has_query("since") => Reply::Json(
            200,
            sync_body("p3", (1..=3).map(|i| message(i, ROOM, &format!("m{i}"))).collect()),
        ),
        ("GET", "/v2/sync") => sync(r),
        ("GET", "/v1/rooms") => Reply::Json(
            200,
            json!({"rooms": [{"id": ROOM, "member_ids": ["alice", "bob"], "created_at": "2026-11-25T06:00:00.000Z"}]})
                .to_string(),
        ),
        ("GET", p) if p.starts_with("/v1/users/") => Reply::Json(
            200,
            json!({"id": "bob", "name": "Bob"}).to_string(),
        ),
        ("PUT", p) if p.starts_with("/v1/users/") => Reply::Json(
            200,
            json!({"id": "alice", "name": "Alice"}).to_string(),
        ),
        ("PUT", _) => Reply::Json(
            503,
            json!({"error": "unavailable", "error_description": "later"}).to_string(),
        ),
        ("GET", p) if p.ends_with("/messages") => {
            Reply::Json(200, json!({"messages": [], "has_more": false}).to_string())
        }
        _ => Reply::Json(404, json!({"error": "not_found", "error_description": "no"}).to_string()),
    }
    })
}

/// A client holding messages 1..=3 of r1 and one queued message, against `server`.
async fn seeded_client(server: &HostileServer, dir: &std::path::Path) -> Arc<ChatClient> {
    let mut config = ClientConfig::new(server.url(), dir, "alice", TokenSource::Fixed("t".into()));
    config.cache_capacity_bytes = 1024 * 1024;
    let client = ChatClient::new(config).unwrap();
    client.login("Alice".into(), None).await.unwrap();
    let report = client.sync_once().await.unwrap();
    assert!(report.online);
    client
        .send_text(ROOM.into(), "queued while the server is down".into())
        .await
        .unwrap();
    let held = client.messages(ROOM.into(), 100, None).unwrap();
    assert_eq!(held.len(), 4, "3 messages and the pending echo: {held:?}");
    client
}

/// What the public API shows of the store, but for the outbox's attempt counters (a flush
/// after an accepted sync counts one more attempt against the 503 of the sends).
fn digest_but_attempts(client: &ChatClient) -> String {
    let mut d: Value =
        serde_json::from_str(&format!("[{}]", digest(client).replace("][", "],["))).unwrap();
    for entry in d
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap()
        .as_array_mut()
        .unwrap()
    {
        entry.as_object_mut().unwrap().remove("attempts");
    }
    d.to_string()
}

/// Everything the public API shows of the store.
fn digest(client: &ChatClient) -> String {
    let rooms = client.rooms().unwrap();
    let mut out = serde_json::to_string(&rooms).unwrap();
    for room in &rooms {
        out += &serde_json::to_string(&client.messages(room.id.clone(), 1_000, None).unwrap())
            .unwrap();
    }
    out + &serde_json::to_string(&client.outbox().unwrap()).unwrap()
}

fn is_protocol(r: &Result<chatsync_core::SyncReport, ChatError>) -> bool {
    matches!(r, Err(ChatError::Protocol(_)))
}

fn is_offline(r: &Result<chatsync_core::SyncReport, ChatError>) -> bool {
    matches!(r, Ok(report) if !report.online) || matches!(r, Err(e) if e.is_transient())
}

#[tokio::test]
async fn rejected_sync_answers_leave_the_store_untouched() {
    type Expect = fn(&Result<chatsync_core::SyncReport, ChatError>) -> bool;
    let full = sync_body("p9", vec![message(4, ROOM, "m4"), message(5, ROOM, "m5")]);
    let cases: Vec<(&str, Reply, Expect)> = vec![
        (
            "truncated JSON",
            Reply::Json(200, full[..full.len() / 2].to_owned()),
            is_protocol,
        ),
        (
            "body shorter than its Content-Length",
            Reply::ShortBody {
                body: full.clone(),
                sent: full.len() / 2,
            },
            is_offline,
        ),
        (
            "next_batch of the wrong type",
            Reply::Json(200, full.replace("\"p9\"", "9")),
            is_protocol,
        ),
        (
            "an id of the wrong type",
            Reply::Json(200, full.replace("\"id\":4", "\"id\":\"4\"")),
            is_protocol,
        ),
        (
            "a negative id",
            Reply::Json(200, full.replace("\"id\":4", "\"id\":-4")),
            is_protocol,
        ),
        (
            "parts that are not a list",
            Reply::Json(
                200,
                full.replace("[{\"content\":\"m4\",\"type\":\"text/plain\"}]", "\"m4\""),
            ),
            is_protocol,
        ),
        (
            "ids going backwards",
            Reply::Json(
                200,
                sync_body("p9", vec![message(5, ROOM, "m5"), message(4, ROOM, "m4")]),
            ),
            is_protocol,
        ),
        (
            "duplicate ids",
            Reply::Json(
                200,
                sync_body(
                    "p9",
                    vec![message(4, ROOM, "m4"), message(4, ROOM, "m4 again")],
                ),
            ),
            is_protocol,
        ),
        (
            "a message listed under another room",
            Reply::Json(
                200,
                sync_body("p9", vec![message(4, ROOM, "m4"), message(5, "r2", "m5")]),
            ),
            is_protocol,
        ),
        (
            "HTML instead of JSON",
            Reply::Json(200, "<html>hello</html>".into()),
            is_protocol,
        ),
        (
            "an empty body",
            Reply::Json(200, String::new()),
            is_protocol,
        ),
        (
            "a JSON array",
            Reply::Json(200, "[1,2,3]".into()),
            is_protocol,
        ),
        (
            "garbage instead of HTTP",
            Reply::Raw(b"\x00\x01garbage\r\n\r\n".to_vec()),
            is_offline,
        ),
        (
            "a 500 with a garbage body",
            Reply::Json(500, "\u{1F4A5}".into()),
            is_offline,
        ),
        (
            "a huge body that is not JSON (16 MiB)",
            Reply::Huge {
                prefix: String::new(),
                fill: b'x',
                suffix: String::new(),
                len: 16 << 20,
            },
            is_protocol,
        ),
        (
            "a drip that stops half way",
            Reply::Drip {
                body: full.clone(),
                chunk: 16,
                every: Duration::from_millis(5),
                stop_after: Some(full.len() / 2),
            },
            is_offline,
        ),
    ];
    let server = HostileServer::start(honest(|_| Reply::Json(200, String::new())))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = seeded_client(&server, dir.path()).await;
    let before = digest(&client);
    for (what, reply, expect) in cases {
        server.set(honest(move |_| reply.clone()));
        let started = Instant::now();
        let result = client.sync_once().await;
        assert!(expect(&result), "{what}: unexpected result {result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert_eq!(digest(&client), before, "{what}: the store changed");
    }
    // And after all that, an honest answer still applies.
    server.set(honest(|_| {
        Reply::Json(200, sync_body("p9", vec![message(4, ROOM, "m4")]))
    }));
    let report = client.sync_once().await.unwrap();
    assert_eq!(report.new_messages.get(ROOM), Some(&1));
    let texts: Vec<String> = client
        .messages(ROOM.into(), 10, None)
        .unwrap()
        .into_iter()
        .map(|m| m.text)
        .collect();
    // The echo keeps its place: after the newest message held when it was queued.
    assert_eq!(
        texts,
        ["m4", "queued while the server is down", "m3", "m2", "m1"]
    );
}

/// The core's cap on an answer body (core/src/api.rs `MAX_ANSWER_BYTES`).
const ANSWER_CAP: u64 = 16 << 20;

#[tokio::test]
async fn oversized_answers_are_refused_without_being_read() {
    let server = HostileServer::start(honest(|_| Reply::Json(200, sync_body("p3", vec![]))))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = seeded_client(&server, dir.path()).await;
    let before = digest(&client);
    let gib: u64 = 1 << 30;
    let cases = [
        (
            // Read whole, this would take ~3 minutes (and memory for 1 GiB): the announced length
            // alone refuses it.
            "Content-Length of 1 GiB, dripped 64 KiB every 10 ms",
            Reply::Flood {
                announce: Some(gib),
                fill: b'x',
                chunk: 64 * 1024,
                every: Duration::from_millis(10),
                limit: gib,
            },
        ),
        (
            "Content-Length of 1 GiB, sent as fast as it is read",
            Reply::Flood {
                announce: Some(gib),
                fill: b' ',
                chunk: 64 * 1024,
                every: Duration::ZERO,
                limit: gib,
            },
        ),
        (
            // No length to refuse early: the read stops once the cap is passed.
            "no Content-Length, 1 GiB sent as fast as it is read",
            Reply::Flood {
                announce: None,
                fill: b' ',
                chunk: 64 * 1024,
                every: Duration::ZERO,
                limit: gib,
            },
        ),
    ];
    for (what, reply) in cases {
        server.set(honest(move |_| reply.clone()));
        let flooded_before = server.flood_bytes();
        let started = Instant::now();
        let result = client.sync_once().await;
        let elapsed = started.elapsed();
        let written = server.flood_bytes() - flooded_before;
        match &result {
            Err(ChatError::Protocol(m)) => assert!(
                m.contains(&format!("larger than {ANSWER_CAP} bytes")),
                "{what}: {m}"
            ),
            other => panic!("{what}: expected a Protocol error, got {other:?}"),
        }
        // The client cannot have read more than the server had written when it returned: the
        // cap, plus at most what socket buffers hold, never the whole gigabyte.
        assert!(
            written < gib / 16,
            "{what}: {written} bytes written before the client gave up"
        );
        assert!(
            elapsed < Duration::from_secs(10),
            "{what}: took {elapsed:?}"
        );
        assert_eq!(digest(&client), before, "{what}: the store changed");
    }
    // An honest answer still applies afterwards.
    server.set(honest(|_| {
        Reply::Json(200, sync_body("p4", vec![message(4, ROOM, "m4")]))
    }));
    let report = client.sync_once().await.unwrap();
    assert_eq!(report.new_messages.get(ROOM), Some(&1));
}

/// Forwards every event to the test.
struct Forward(Mutex<mpsc::Sender<ClientEvent>>);

impl ClientListener for Forward {
    fn on_event(&self, event: ClientEvent) {
        let _ = self.0.lock().unwrap().send(event);
    }
}

/// One `sync_once` and the `MessagesChanged` events it caused: every event of a sync reaches the
/// listener, in order, before its closing `SyncStateChanged { Idle }`.
async fn sync_with_events(
    client: &ChatClient,
    events: &mpsc::Receiver<ClientEvent>,
) -> (chatsync_core::SyncReport, Vec<ClientEvent>) {
    let report = client.sync_once().await.unwrap();
    let mut changed = Vec::new();
    let mut syncing = false;
    loop {
        let event = events
            .recv_timeout(Duration::from_secs(10))
            .expect("the sync's events");
        match event {
            ClientEvent::SyncStateChanged {
                state: SyncState::Syncing,
            } => syncing = true,
            ClientEvent::SyncStateChanged {
                state: SyncState::Idle,
            } if syncing => return (report, changed),
            e @ ClientEvent::MessagesChanged { .. } if syncing => changed.push(e),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_held_message_changed_by_sync_is_announced_and_an_identical_repeat_is_not() {
    let server = HostileServer::start(honest(|_| Reply::Json(200, sync_body("p3", vec![]))))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = seeded_client(&server, dir.path()).await;
    let (tx, events) = mpsc::channel();
    let _subscription = client.subscribe(Arc::new(Forward(Mutex::new(tx))));
    let texts = |client: &ChatClient| -> Vec<String> {
        client
            .messages(ROOM.into(), 10, None)
            .unwrap()
            .into_iter()
            .filter(|m| m.server_id.is_some())
            .map(|m| m.text)
            .collect()
    };

    // Message 2 comes again with new parts and updated_at: stored, announced, not "new".
    let batch = sync_body("p4", vec![edited(2, ROOM, "m2, edited")]);
    server.set(honest(move |_| Reply::Json(200, batch.clone())));
    let (report, changed) = sync_with_events(&client, &events).await;
    assert!(report.new_messages.is_empty(), "{report:?}");
    assert_eq!(
        changed,
        [ClientEvent::MessagesChanged {
            room_id: ROOM.into(),
            ids: vec!["2".into()]
        }]
    );
    assert_eq!(texts(&client), ["m3", "m2, edited", "m1"]);

    // The same batch again: a no-op, no event.
    let before = digest_but_attempts(&client);
    let (report, changed) = sync_with_events(&client, &events).await;
    assert!(report.new_messages.is_empty(), "{report:?}");
    assert_eq!(changed, [], "an identical repeat announced a change");
    assert_eq!(digest_but_attempts(&client), before);

    // A new message, an unchanged repeat and a changed one in one batch: one event with the new
    // id and the changed one; only the new one counts as new.
    let batch = sync_body(
        "p5",
        vec![
            edited(2, ROOM, "m2, edited"),
            edited(3, ROOM, "m3, edited"),
            message(4, ROOM, "m4"),
        ],
    );
    server.set(honest(move |_| Reply::Json(200, batch.clone())));
    let (report, changed) = sync_with_events(&client, &events).await;
    assert_eq!(report.new_messages.get(ROOM), Some(&1), "{report:?}");
    assert_eq!(
        changed,
        [ClientEvent::MessagesChanged {
            room_id: ROOM.into(),
            ids: vec!["4".into(), "3".into()]
        }]
    );
    assert_eq!(texts(&client), ["m4", "m3, edited", "m2, edited", "m1"]);
}

#[tokio::test]
async fn odd_but_valid_answers_give_correct_results() {
    let server = HostileServer::start(honest(|_| Reply::Json(200, String::new())))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = seeded_client(&server, dir.path()).await;

    // Unknown part types are kept with every field.
    let poll = json!({
        "id": 4, "user_id": "bob", "room_id": ROOM,
        "parts": [{"type": "application/x-poll", "options": ["a", "b"], "meta": {"k": 1}}],
        "created_at": "2026-11-25T06:00:00.000Z", "updated_at": "2026-11-25T06:00:00.000Z",
        "poll_results": {"future": "field"}
    });
    server.set(honest(move |_| {
        Reply::Json(200, sync_body("p4", vec![poll.clone()]))
    }));
    client.sync_once().await.unwrap();
    let newest = client.messages(ROOM.into(), 10, None).unwrap();
    let m = newest
        .iter()
        .find(|m| m.server_id == Some(4))
        .expect("message 4 stored");
    assert_eq!(m.text, "");
    assert_eq!(m.parts[0].mime_type, "application/x-poll");
    let extra: Value = serde_json::from_str(m.parts[0].extra_json.as_deref().unwrap()).unwrap();
    assert_eq!(extra, json!({"options": ["a", "b"], "meta": {"k": 1}}));

    // A held batch sent again changes nothing.
    let before = digest_but_attempts(&client);
    server.set(honest(|_| {
        Reply::Json(
            200,
            sync_body(
                "p3",
                (1..=3)
                    .map(|i| message(i, ROOM, &format!("m{i}")))
                    .collect(),
            ),
        )
    }));
    let report = client.sync_once().await.unwrap();
    assert!(report.new_messages.is_empty(), "{report:?}");
    assert_eq!(digest_but_attempts(&client), before);

    // A slow drip (the body 8 bytes every 5 ms) is read to the end and applied.
    let body = sync_body("p5", vec![message(5, ROOM, "dripped")]);
    server.set(honest(move |_| Reply::Drip {
        body: body.clone(),
        chunk: 8,
        every: Duration::from_millis(5),
        stop_after: None,
    }));
    let report = client.sync_once().await.unwrap();
    assert_eq!(report.new_messages.get(ROOM), Some(&1));

    // A huge but valid answer (unknown padding field, 8 MiB) is a correct, empty result.
    server.set(honest(|_| Reply::Huge {
        prefix: r#"{"next_batch":"p6","rooms":{},"padding":""#.into(),
        fill: b' ',
        suffix: "\"}".into(),
        len: 8 << 20,
    }));
    let before = digest_but_attempts(&client);
    let report = client.sync_once().await.unwrap();
    assert!(
        report.online && report.new_messages.is_empty(),
        "{report:?}"
    );
    assert_eq!(digest_but_attempts(&client), before);
}

#[tokio::test]
async fn garbled_send_answers_keep_the_message_queued_until_an_honest_one() {
    let server = HostileServer::start(honest(|_| Reply::Json(200, sync_body("p3", vec![]))))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = seeded_client(&server, dir.path()).await;
    let local_id = client.outbox().unwrap()[0].local_id.clone();
    let sends = |reply: Reply| -> Responder {
        let base = honest(|_| Reply::Json(200, sync_body("p3", vec![])));
        Arc::new(move |r: &Request| {
            if r.method == "PUT" && r.path().starts_with("/v2/rooms/") {
                reply.clone()
            } else {
                base(r)
            }
        })
    };
    let stored = message(10, ROOM, "queued while the server is down").to_string();
    for (what, reply) in [
        ("truncated", Reply::Json(200, stored[..20].to_owned())),
        (
            "wrong types",
            Reply::Json(200, stored.replace("\"id\":10", "\"id\":true")),
        ),
        (
            "stored in another room",
            Reply::Json(
                200,
                stored.replace("\"room_id\":\"r1\"", "\"room_id\":\"r2\""),
            ),
        ),
        (
            "short body",
            Reply::ShortBody {
                body: stored.clone(),
                sent: 10,
            },
        ),
    ] {
        server.set(sends(reply));
        let report = client.sync_once().await.unwrap();
        assert_eq!(
            (report.sent, report.pending, report.failed),
            (0, 1, 0),
            "{what}: {report:?}"
        );
        let outbox = client.outbox().unwrap();
        assert_eq!(outbox.len(), 1, "{what}");
        assert_eq!(
            outbox[0].local_id, local_id,
            "{what}: same txn id, so a resend is idempotent"
        );
    }
    // Every attempt used the same txn id.
    let puts: Vec<String> = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT" && r.path().starts_with("/v2/rooms/"))
        .map(|r| r.path().to_owned())
        .collect();
    assert!(
        puts.len() >= 4 && puts.iter().all(|p| p == &puts[0]),
        "{puts:?}"
    );
    server.set(sends(Reply::Json(200, stored.clone())));
    let report = client.sync_once().await.unwrap();
    assert_eq!((report.sent, report.pending), (1, 0));
    assert_eq!(
        client.messages(ROOM.into(), 1, None).unwrap()[0].server_id,
        Some(10)
    );
}

/// A sync body for r1 with `limited` set.
fn limited_body(next: &str, messages: Vec<Value>) -> String {
    json!({"next_batch": next, "rooms": {ROOM: {"messages": messages, "limited": true}}})
        .to_string()
}

#[tokio::test]
async fn a_garbled_gap_fill_leaves_the_gap_recorded_and_never_shown_as_history() {
    let server = HostileServer::start(honest(|_| Reply::Json(200, sync_body("p3", vec![]))))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = seeded_client(&server, dir.path()).await;
    // A limited batch (20, 21): 4..=19 are missing. Every history page is garbage.
    let batch = limited_body(
        "p21",
        vec![message(20, ROOM, "m20"), message(21, ROOM, "m21")],
    );
    let garbage_history = |batch: String| -> Responder {
        let base = honest(move |_| Reply::Json(200, batch.clone()));
        Arc::new(move |r: &Request| {
            if r.method == "GET" && r.path().ends_with("/messages") {
                Reply::Json(200, r#"{"messages":[{"id":"#.into())
            } else {
                base(r)
            }
        })
    };
    server.set(garbage_history(batch.clone()));
    let report = client.sync_once().await.unwrap();
    assert_eq!(report.new_messages.get(ROOM), Some(&2), "{report:?}");
    let shown: Vec<Option<u64>> = client
        .messages(ROOM.into(), 100, None)
        .unwrap()
        .into_iter()
        .map(|m| m.server_id)
        .collect();
    // The newest run only: the read stops at the gap instead of joining 21, 20 to 3, 2, 1.
    assert_eq!(shown, [Some(21), Some(20)], "{shown:?}");

    // A history page going the wrong way (ids above the gap's end) is refused too.
    let wrong_way = json!({"messages": [message(30, ROOM, "m30")], "has_more": false}).to_string();
    let base = honest(move |_| Reply::Json(200, sync_body("p21", vec![])));
    server.set(Arc::new(move |r: &Request| {
        if r.method == "GET" && r.path().ends_with("/messages") {
            Reply::Json(200, wrong_way.clone())
        } else {
            base(r)
        }
    }));
    let timeline = client.timeline(ROOM.into()).unwrap();
    let _ = timeline.paginate_backwards(50).await;
    let shown: Vec<Option<u64>> = client
        .messages(ROOM.into(), 100, None)
        .unwrap()
        .into_iter()
        .map(|m| m.server_id)
        .collect();
    assert_eq!(shown, [Some(21), Some(20)], "{shown:?}");

    // An honest page closes the gap: the history is contiguous again.
    let page = json!({
        "messages": (4..=19).map(|i| message(i, ROOM, &format!("m{i}"))).collect::<Vec<_>>(),
        "has_more": true
    })
    .to_string();
    let base = honest(move |_| Reply::Json(200, sync_body("p21", vec![])));
    server.set(Arc::new(move |r: &Request| {
        if r.method == "GET" && r.path().ends_with("/messages") {
            Reply::Json(200, page.clone())
        } else {
            base(r)
        }
    }));
    let older = timeline.paginate_backwards(50).await.unwrap();
    assert!(older.added > 0, "{older:?}");
    let ids: Vec<u64> = client
        .messages(ROOM.into(), 100, None)
        .unwrap()
        .into_iter()
        .filter_map(|m| m.server_id)
        .collect();
    assert_eq!(ids, (1..=21).rev().collect::<Vec<u64>>());
}

/// A server that redirects elsewhere is not followed (issue 12): not to another origin (here
/// another loopback address, which records whether anything reaches it), not to plain http off
/// loopback. The answer is a protocol error and the message stays queued under its txn id.
/// A redirect within the configured server's own origin is still followed.
#[tokio::test]
async fn redirects_leave_the_configured_origin_never_and_the_message_stays_queued() {
    let server = HostileServer::start(honest(|_| Reply::Json(200, sync_body("p3", vec![]))))
        .await
        .unwrap();
    let elsewhere = HostileServer::start_on(
        "127.0.0.2:0".parse().unwrap(),
        Arc::new(|_: &Request| Reply::Json(200, "{}".into())),
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = seeded_client(&server, dir.path()).await;
    let local_id = client.outbox().unwrap()[0].local_id.clone();
    let before = digest_but_attempts(&client);
    let targets = [
        (
            307,
            format!("{}/v1/rooms/{ROOM}/messages/x", elsewhere.url()),
        ),
        (
            308,
            format!("{}/v1/rooms/{ROOM}/messages/x", elsewhere.url()),
        ),
        (
            302,
            "http://chat.example.com/v1/rooms/r1/messages/x".to_owned(),
        ),
        (301, "https://chat.example.com/v2/sync".to_owned()),
    ];
    for (status, location) in targets {
        // The send is redirected: not followed, queued as before.
        let base = honest(|_| Reply::Json(200, sync_body("p3", vec![])));
        let to = location.clone();
        server.set(Arc::new(move |r: &Request| {
            if r.method == "PUT" && r.path().starts_with("/v2/rooms/") {
                Reply::Redirect(status, to.clone())
            } else {
                base(r)
            }
        }));
        let report = client.sync_once().await.unwrap();
        assert_eq!(
            (report.sent, report.pending),
            (0, 1),
            "{status} {location}: {report:?}"
        );
        let outbox = client.outbox().unwrap();
        assert_eq!(
            outbox[0].local_id, local_id,
            "{status}: the same txn id stays queued"
        );
        // The sync itself is redirected: a protocol error, the store unchanged.
        let to = location.clone();
        server.set(Arc::new(move |_: &Request| {
            Reply::Redirect(status, to.clone())
        }));
        let result = client.sync_once().await;
        assert!(is_protocol(&result), "{status} {location}: {result:?}");
        assert_eq!(digest_but_attempts(&client), before, "{status}");
    }
    assert!(
        elsewhere.requests().is_empty(),
        "{:?}",
        elsewhere.requests()
    );

    // Within the same origin a redirect is followed: the send lands.
    let stored = message(10, ROOM, "queued while the server is down").to_string();
    let base = honest(|_| Reply::Json(200, sync_body("p3", vec![])));
    let moved = format!("{}/v1/moved", server.url());
    server.set(Arc::new(move |r: &Request| {
        match (r.method.as_str(), r.path()) {
            ("PUT", p) if p.starts_with("/v2/rooms/") => Reply::Redirect(307, moved.clone()),
            ("PUT", "/v1/moved") => Reply::Json(200, stored.clone()),
            _ => base(r),
        }
    }));
    let report = client.sync_once().await.unwrap();
    assert_eq!((report.sent, report.pending), (1, 0), "{report:?}");
}
