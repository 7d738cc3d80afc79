//! `/v1/sync`: initial sync, incremental sync, the `limited` flag, joined rooms, long-poll wake-up
//! and timeout, malformed tokens, and many parked waiters.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{ids, Client, TestServer};

async fn sync(client: &Client, query: &str) -> Value {
    client.get(&format!("/v1/sync?{query}")).await.ok()
}

fn token(body: &Value) -> String {
    body["next_batch"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn initial_sync_gives_the_newest_messages_of_every_room_with_limited() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let busy = alice.create_room(&["bob"]).await;
    let quiet = alice.create_room(&[]).await;
    let empty = alice.create_room(&[]).await;
    let sent = alice.send_many(&busy.id, "b", 5).await;
    let q = alice.send(&quiet.id, "q", "only").await;
    let body = sync(&alice, "limit=3").await;
    assert_eq!(
        ids(&body["rooms"][&busy.id]["messages"]),
        sent[2..5].iter().map(|m| m.id).collect::<Vec<_>>()
    );
    assert_eq!(body["rooms"][&busy.id]["limited"], true);
    assert_eq!(ids(&body["rooms"][&quiet.id]["messages"]), vec![q.id]);
    assert_eq!(body["rooms"][&quiet.id]["limited"], false);
    assert_eq!(
        body["rooms"][&empty.id],
        json!({"messages": [], "limited": false})
    );
    // Bob sees only his room.
    let bob = t.user("bob").await;
    let body = sync(&bob, "").await;
    assert_eq!(
        body["rooms"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        vec![&busy.id]
    );
}

#[tokio::test]
async fn incremental_sync_returns_only_what_is_new_and_limited_marks_a_gap() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let other = bob.create_room(&["carol"]).await;
    alice.send(&room.id, "old", "old").await;
    let start = token(&sync(&alice, "").await);
    // Nothing new: empty rooms, immediate answer without timeout_ms.
    let none = sync(&alice, &format!("since={start}")).await;
    assert_eq!(none["rooms"], json!({}));
    // A message in a room alice is not in does not show up.
    bob.send(&other.id, "x", "not for alice").await;
    assert_eq!(
        sync(&alice, &format!("since={start}")).await["rooms"],
        json!({})
    );
    let new = bob.send(&room.id, "n1", "new").await;
    let body = sync(&alice, &format!("since={start}")).await;
    assert_eq!(ids(&body["rooms"][&room.id]["messages"]), vec![new.id]);
    assert_eq!(body["rooms"][&room.id]["limited"], false);
    // Following the token gives nothing more.
    let next = token(&body);
    assert_eq!(
        sync(&alice, &format!("since={next}")).await["rooms"],
        json!({})
    );
    // More new messages than the limit: the newest `limit`, limited = true (a gap to fill).
    let burst = bob.send_many(&room.id, "burst", 5).await;
    let body = sync(&alice, &format!("since={next}&limit=2")).await;
    assert_eq!(
        ids(&body["rooms"][&room.id]["messages"]),
        vec![burst[3].id, burst[4].id]
    );
    assert_eq!(body["rooms"][&room.id]["limited"], true);
    // Exactly `limit` new messages: not limited.
    let body = sync(&alice, &format!("since={next}&limit=5")).await;
    assert_eq!(
        body["rooms"][&room.id]["messages"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(body["rooms"][&room.id]["limited"], false);
}

#[tokio::test]
async fn rooms_joined_since_the_token_appear_even_when_empty() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let before = token(&sync(&bob, "").await);
    let room = alice.create_room(&["bob"]).await;
    let body = sync(&bob, &format!("since={before}")).await;
    assert_eq!(
        body["rooms"][&room.id],
        json!({"messages": [], "limited": false})
    );
    // A room with history created before bob's token: joined later, it comes with its newest messages.
    let bob_now = token(&body);
    let dm = alice
        .call(
            reqwest::Method::POST,
            "/v1/rooms/direct",
            Some(json!({"user_id": "carol"})),
        )
        .await
        .ok();
    let dm_id = dm["id"].as_str().unwrap();
    alice.send(dm_id, "h", "history").await;
    let carol = t.user("carol").await;
    let body = sync(&carol, "").await;
    assert_eq!(
        body["rooms"][dm_id]["messages"][0]["parts"][0]["content"],
        "history"
    );
    assert_eq!(
        sync(&bob, &format!("since={bob_now}")).await["rooms"],
        json!({})
    );
}

#[tokio::test]
async fn a_parked_long_poll_wakes_within_a_second_of_a_send_in_any_room() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let _r1 = alice.create_room(&["bob"]).await;
    let r2 = bob.create_room(&["alice"]).await;
    let since = token(&sync(&alice, "").await);
    let poll = {
        let alice = alice.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let body = sync(&alice, &format!("since={since}&timeout_ms=20000")).await;
            (body, started.elapsed())
        })
    };
    // Wait (bounded) until the request is parked, then time from the send to the answer.
    wait_until_parked(&t, 1).await;
    let sent_at = Instant::now();
    let message = bob.send(&r2.id, "wake", "wake up").await;
    let (body, _) = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("long-poll answered")
        .unwrap();
    let woke_after = sent_at.elapsed();
    assert!(
        woke_after < Duration::from_secs(1),
        "woke {woke_after:?} after the send"
    );
    assert_eq!(ids(&body["rooms"][&r2.id]["messages"]), vec![message.id]);
}

#[tokio::test]
async fn a_long_poll_with_nothing_new_times_out_empty() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    alice.send(&room.id, "a", "a").await;
    let since = token(&sync(&alice, "").await);
    let started = Instant::now();
    let body = sync(&alice, &format!("since={since}&timeout_ms=300")).await;
    let elapsed = started.elapsed();
    assert_eq!(body["rooms"], json!({}));
    assert_eq!(token(&body), since);
    assert!(elapsed >= Duration::from_millis(300), "held {elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "held {elapsed:?}");
}

#[tokio::test]
async fn a_message_for_someone_else_does_not_answer_the_long_poll() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let bobs = bob.create_room(&[]).await;
    let since = token(&sync(&alice, "").await);
    let poll = {
        let alice = alice.clone();
        tokio::spawn(async move { sync(&alice, &format!("since={since}&timeout_ms=600")).await })
    };
    wait_until_parked(&t, 1).await;
    bob.send(&bobs.id, "x", "only bob").await;
    let body = poll.await.unwrap();
    assert_eq!(body["rooms"], json!({}));
}

#[tokio::test]
async fn malformed_sync_queries_are_400() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    for q in [
        "since=garbage",
        "since=s1",
        "since=s-1_0",
        "since=",
        "limit=0",
        "limit=x",
        "timeout_ms=-5",
        "since=s999999_0",
    ] {
        alice
            .get(&format!("/v1/sync?{q}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    // Out-of-range values are clamped, not refused.
    let since = token(&sync(&alice, "").await);
    sync(&alice, &format!("since={since}&limit=100000&timeout_ms=0")).await;
}

#[tokio::test]
async fn a_thousand_parked_long_polls_are_all_answered_by_one_send_each() {
    let t = TestServer::start().await;
    let host = t.user("host").await;
    const WAITERS: usize = 1000;
    // Two sockets per waiter live in this process (client and server side).
    crate::support::raise_fd_limit(4 * WAITERS as u64 + 256);
    let room = host.create_room(&[]).await;
    let since = token(&sync(&host, "").await);
    // One connection per waiter, like 1000 devices.
    let mut polls = Vec::new();
    for _ in 0..WAITERS {
        let client = Client {
            http: reqwest::Client::new(),
            ..host.clone()
        };
        let since = since.clone();
        polls.push(tokio::spawn(async move {
            sync(&client, &format!("since={since}&timeout_ms=20000")).await
        }));
    }
    wait_until_parked(&t, WAITERS).await;
    let started = Instant::now();
    let m = host.send(&room.id, "all", "everyone").await;
    for poll in polls {
        let body = tokio::time::timeout(Duration::from_secs(10), poll)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ids(&body["rooms"][&room.id]["messages"]), vec![m.id]);
    }
    eprintln!(
        "{WAITERS} parked long-polls answered {:?} after the send",
        started.elapsed()
    );
}

/// Waits (bounded) until `n` long-polls are parked in the server.
pub async fn wait_until_parked(t: &TestServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while t.server().parked_long_polls() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} long-polls parked",
            t.server().parked_long_polls()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_next_batch_during_concurrent_sends_sees_every_message_exactly_once() {
    let t = TestServer::start().await;
    let reader = t.user("reader").await;
    const SENDERS: usize = 4;
    const EACH: usize = 40;
    let mut rooms = Vec::new();
    for i in 0..SENDERS {
        let sender = t.user(&format!("sender{i}")).await;
        rooms.push((sender.clone(), sender.create_room(&["reader"]).await));
    }
    let mut since = token(&sync(&reader, "").await);
    let senders: Vec<_> = rooms
        .iter()
        .cloned()
        .map(|(client, room)| {
            tokio::spawn(async move { client.send_many(&room.id, "c", EACH).await })
        })
        .collect();
    // What a client does: remember the newest id held per room; on `limited`, page back from the
    // oldest message of the batch until reaching what it holds.
    let mut newest_held: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < SENDERS * EACH {
        assert!(
            Instant::now() < deadline,
            "saw {} of {}",
            seen.len(),
            SENDERS * EACH
        );
        // A small per-room limit forces `limited` batches.
        let body = sync(&reader, &format!("since={since}&timeout_ms=5000&limit=3")).await;
        for (room_id, room) in body["rooms"].as_object().unwrap() {
            let batch = ids(&room["messages"]);
            let held = newest_held.get(room_id).copied().unwrap_or(0);
            if room["limited"] == true {
                let mut before = batch[0];
                loop {
                    let page = reader
                        .get(&format!(
                            "/v1/rooms/{room_id}/messages?initial_id={before}&limit=2"
                        ))
                        .await
                        .ok();
                    let page_ids = ids(&page["messages"]);
                    let missing: Vec<u64> =
                        page_ids.iter().copied().filter(|id| *id > held).collect();
                    seen.extend(&missing);
                    if missing.len() < page_ids.len() || !page["has_more"].as_bool().unwrap() {
                        break;
                    }
                    before = page_ids[0];
                }
            }
            newest_held.insert(room_id.clone(), *batch.last().unwrap());
            seen.extend(batch);
        }
        since = token(&body);
    }
    for s in senders {
        s.await.unwrap();
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no message twice");
    assert_eq!(sorted.len(), SENDERS * EACH, "every message once");
}
