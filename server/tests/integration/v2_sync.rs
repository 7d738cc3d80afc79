//! `GET /v2/sync`: initial and incremental answers, updates to older messages, receipts and
//! unread counts every device of a user agrees on, joined rooms, the bound and its resumption,
//! refused tokens, long-polls woken by every kind of change and by typing, and typing's expiry on
//! a paused clock.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{ids, text, TestServer};
use crate::sync::wait_until_parked;

fn token(body: &Value) -> String {
    body["next_batch"].as_str().unwrap().to_owned()
}

fn pos(body: &Value) -> u64 {
    chatsync_protocol::v2::parse_token(&token(body)).unwrap()
}

#[tokio::test]
async fn an_initial_sync_has_every_room_with_its_newest_messages_receipts_and_unread() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let empty = alice.create_room(&[]).await;
    for i in 0..4 {
        bob.send_v2(&room.id, &format!("b{i}"), &format!("b{i}")).await;
    }
    let mine = alice.send_v2(&room.id, "a", "mine").await;
    let read = bob.send_v2(&room.id, "b9", "b9").await["id"].as_u64().unwrap();
    alice.receipt(&room.id, "c", read).await.ok();
    let body = alice.sync_v2("limit=3").await;
    assert_eq!(body["has_more"], false);
    assert!(token(&body).starts_with('p'));
    let r = &body["rooms"][&room.id];
    assert_eq!(r["messages"].as_array().unwrap().len(), 3);
    assert_eq!(r["limited"], true);
    assert_eq!(r["receipts"], json!({"alice": read}));
    assert_eq!(r["unread"], 0);
    assert_eq!(r["updates"], json!([]));
    assert_eq!(r["typing"], json!([]));
    // Her own message carries her txn id; bob's do not.
    let own = r["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == mine["id"])
        .unwrap();
    assert_eq!(own["txn_id"], "a");
    assert!(r["messages"][2].get("txn_id").is_none());
    assert_eq!(
        body["rooms"][&empty.id],
        json!({"messages": [], "limited": false, "updates": [], "receipts": {}, "unread": 0, "typing": []})
    );
    // Bob's unread counts alice's one message after his (no) receipt.
    assert_eq!(bob.sync_v2("").await["rooms"][&room.id]["unread"], 1);
}

#[tokio::test]
async fn an_incremental_sync_brings_new_messages_the_state_of_older_ones_and_receipts() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let old = bob.send_v2(&room.id, "old", "old").await;
    let old_id = old["id"].as_u64().unwrap();
    let gone = bob.send_v2(&room.id, "gone", "gone").await;
    let since = token(&alice.sync_v2("").await);
    assert_eq!(alice.sync_v2(&format!("since={since}")).await["rooms"], json!({}));

    bob.edit(&room.id, old_id, "e", "old, edited").await.ok();
    alice.react(&room.id, old_id, "r", "👍", true).await.ok();
    bob.delete(&room.id, gone["id"].as_u64().unwrap(), "d").await.ok();
    let new = bob.send_v2(&room.id, "new", "new").await;
    bob.edit(&room.id, new["id"].as_u64().unwrap(), "e2", "new, edited").await.ok();
    bob.receipt(&room.id, "c", new["id"].as_u64().unwrap()).await.ok();
    let body = alice.sync_v2(&format!("since={since}")).await;
    let r = &body["rooms"][&room.id];
    assert_eq!(ids(&r["messages"]), [new["id"].as_u64().unwrap()]);
    assert_eq!(text(&r["messages"][0]), "new, edited");
    assert_eq!(r["limited"], false);
    let updates = r["updates"].as_array().unwrap();
    assert_eq!(updates.len(), 2, "the edited and reacted message, the deleted one: {r}");
    assert_eq!(text(&updates[0]), "old, edited");
    assert_eq!(updates[0]["reactions"], json!([{"key": "👍", "count": 1, "me": true}]));
    assert_eq!(updates[1]["deleted"], true);
    assert_eq!(updates[1]["parts"], json!([]));
    assert_eq!(r["receipts"], json!({"bob": new["id"]}));
    assert_eq!(r["unread"], 2, "old and new; the deleted one does not count");
    // Bob sees his own txn ids and alice's reaction without `me`.
    let for_bob = bob.sync_v2(&format!("since={since}")).await;
    let u = &for_bob["rooms"][&room.id]["updates"][0];
    assert_eq!(u["txn_id"], "old");
    assert_eq!(u["reactions"], json!([{"key": "👍", "count": 1, "me": false}]));
    // Following the token: nothing more.
    let next = token(&body);
    assert!(pos(&body) > chatsync_protocol::v2::parse_token(&since).unwrap());
    assert_eq!(alice.sync_v2(&format!("since={next}")).await["rooms"], json!({}));
}

#[tokio::test]
async fn two_devices_of_a_user_agree_on_unread_and_a_receipt_from_one_moves_both() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let phone = t.user("bob").await;
    let laptop = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let p = token(&phone.sync_v2("").await);
    let l = token(&laptop.sync_v2("").await);
    let mut last = 0;
    for i in 0..3 {
        last = alice.send_v2(&room.id, &format!("m{i}"), "x").await["id"].as_u64().unwrap();
    }
    let on_phone = phone.sync_v2(&format!("since={p}")).await;
    let on_laptop = laptop.sync_v2(&format!("since={l}")).await;
    assert_eq!(on_phone["rooms"][&room.id]["unread"], 3);
    assert_eq!(on_laptop["rooms"][&room.id]["unread"], 3);
    phone.receipt(&room.id, "read-on-phone", last).await.ok();
    let on_laptop = laptop.sync_v2(&format!("since={}", token(&on_laptop))).await;
    assert_eq!(on_laptop["rooms"][&room.id]["unread"], 0);
    assert_eq!(on_laptop["rooms"][&room.id]["receipts"], json!({"bob": last}));
}

#[tokio::test]
async fn a_room_joined_after_the_token_comes_whole() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let since = token(&bob.sync_v2("").await);
    let room = alice.create_room(&["bob"]).await;
    let m = alice.send_v2(&room.id, "m", "hi").await;
    alice.receipt(&room.id, "c", m["id"].as_u64().unwrap()).await.ok();
    let body = bob.sync_v2(&format!("since={since}")).await;
    let r = &body["rooms"][&room.id];
    assert_eq!(ids(&r["messages"]), [m["id"].as_u64().unwrap()]);
    assert_eq!(r["receipts"], json!({"alice": m["id"]}));
    assert_eq!(r["unread"], 1);
}

#[tokio::test]
async fn an_answer_is_bounded_and_the_next_one_resumes_with_nothing_dropped() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let old = alice.send_v2(&room.id, "old", "old").await["id"].as_u64().unwrap();
    let since = token(&bob.sync_v2("").await);
    // 520 changes to an older message (edits), a new message in the middle and at the end.
    let mut new = Vec::new();
    for i in 0..520 {
        alice.edit(&room.id, old, &format!("e{i}"), &format!("edit {i}")).await.ok();
        if i == 100 || i == 519 {
            new.push(alice.send_v2(&room.id, &format!("n{i}"), "new").await["id"].as_u64().unwrap());
        }
    }
    let first = bob.sync_v2(&format!("since={since}")).await;
    assert_eq!(first["has_more"], true);
    assert_eq!(ids(&first["rooms"][&room.id]["messages"]), [new[0]]);
    assert_eq!(first["rooms"][&room.id]["updates"].as_array().unwrap().len(), 1);
    let second = bob.sync_v2(&format!("since={}&timeout_ms=10000", token(&first))).await;
    assert_eq!(second["has_more"], false);
    assert_eq!(ids(&second["rooms"][&room.id]["messages"]), [new[1]]);
    assert_eq!(text(&second["rooms"][&room.id]["updates"][0]), "edit 519");
}

#[tokio::test]
async fn v1_and_malformed_tokens_are_400_and_a_token_ahead_of_the_server_too() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let v1 = alice.get("/v1/sync").await.ok()["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let v2 = token(&alice.sync_v2("").await);
    for q in [
        format!("since={v1}"),
        "since=".into(),
        "since=p".into(),
        "since=p-1".into(),
        "since=p1_x".into(),
        "since=garbage".into(),
        "since=p99999999".into(),
        "limit=0".into(),
        "timeout_ms=-1".into(),
    ] {
        alice
            .get(&format!("/v2/sync?{q}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    // And the other way round: a v2 token on /v1/sync.
    alice
        .get(&format!("/v1/sync?since={v2}"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

/// Long-polls `since` for `who` in the background; returns the answer and how long after
/// `trigger` started it came.
async fn woken_by<F: std::future::Future<Output = ()>>(
    t: &TestServer,
    who: &crate::support::Client,
    since: &str,
    trigger: F,
) -> Value {
    let poll = {
        let who = who.clone();
        let since = since.to_owned();
        tokio::spawn(async move { who.sync_v2(&format!("since={since}&timeout_ms=20000")).await })
    };
    wait_until_parked(t, 1).await;
    let started = Instant::now();
    trigger.await;
    let body = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .expect("the long-poll answered")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "woke {:?} after", started.elapsed());
    body
}

#[tokio::test]
async fn a_parked_long_poll_wakes_on_every_kind_of_change_and_on_typing() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let m = alice.send_v2(&room.id, "m", "x").await["id"].as_u64().unwrap();
    let mut since = token(&bob.sync_v2("").await);
    let body = woken_by(&t, &bob, &since, async {
        alice.edit(&room.id, m, "e", "edited").await.ok();
    })
    .await;
    assert_eq!(text(&body["rooms"][&room.id]["updates"][0]), "edited");
    since = token(&body);
    let body = woken_by(&t, &bob, &since, async {
        alice.react(&room.id, m, "r", "👍", true).await.ok();
    })
    .await;
    assert_eq!(body["rooms"][&room.id]["updates"][0]["reactions"][0]["count"], 1);
    since = token(&body);
    let body = woken_by(&t, &bob, &since, async {
        alice.receipt(&room.id, "c", m).await.ok();
    })
    .await;
    assert_eq!(body["rooms"][&room.id]["receipts"], json!({"alice": m}));
    since = token(&body);
    let body = woken_by(&t, &bob, &since, async {
        alice.typing(&room.id, true).await;
    })
    .await;
    assert_eq!(body["rooms"][&room.id]["typing"], json!(["alice"]));
    assert_eq!(body["rooms"][&room.id]["messages"], json!([]));
    assert_eq!(body["rooms"][&room.id]["unread"], 1);
    since = token(&body);
    let body = woken_by(&t, &bob, &since, async {
        alice.delete(&room.id, m, "d").await.ok();
    })
    .await;
    let r = &body["rooms"][&room.id];
    assert_eq!(r["updates"][0]["deleted"], true);
    assert_eq!(r["typing"], json!(["alice"]), "still typing: every answer says who types");
    assert_eq!(r["unread"], 0);
    since = token(&body);
    let body = woken_by(&t, &bob, &since, async {
        alice.typing(&room.id, false).await.ok();
    })
    .await;
    assert_eq!(body["rooms"][&room.id]["typing"], json!([]));
}

#[tokio::test]
async fn a_typing_change_between_two_syncs_is_not_lost() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let since = token(&bob.sync_v2("").await);
    // Nobody is parked: the start happens between bob's two requests.
    alice.typing(&room.id, true).await;
    let body = bob.sync_v2(&format!("since={since}&timeout_ms=20000")).await;
    assert_eq!(body["rooms"][&room.id]["typing"], json!(["alice"]));
    // The token now knows that change: the next long-poll holds.
    let quiet = bob
        .sync_v2(&format!("since={}&timeout_ms=200", token(&body)))
        .await;
    assert_eq!(quiet["rooms"], json!({}));
}

/// On a paused clock the typing expires at exactly 6 s, waking the parked long-poll; a flood is
/// refused until a second has passed. No sleeps: the runtime's clock jumps when all is idle.
#[tokio::test(start_paused = true)]
async fn typing_expires_after_six_seconds_and_wakes_the_room() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let since = token(&bob.sync_v2("").await);
    let started = tokio::time::Instant::now();
    alice.typing(&room.id, true).await.ok();
    let body = bob.sync_v2(&format!("since={since}&timeout_ms=30000")).await;
    assert_eq!(body["rooms"][&room.id]["typing"], json!(["alice"]));
    // Too soon: 429, the rate limit says when.
    let refused = alice.typing(&room.id, true).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    // Parked until the typing ends by itself: at 6 s, not at the 30 s timeout.
    let body = bob
        .sync_v2(&format!("since={}&timeout_ms=30000", token(&body)))
        .await;
    assert_eq!(body["rooms"][&room.id]["typing"], json!([]));
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(6) && after < Duration::from_millis(6_500),
        "expired after {after:?}"
    );
    // A second later notices are taken again; renewed, it lasts 6 s from the renewal.
    alice.typing(&room.id, true).await.ok();
    tokio::time::advance(Duration::from_secs(4)).await;
    alice.typing(&room.id, true).await.ok();
    let renewed_at = tokio::time::Instant::now();
    let body = bob.sync_v2("").await;
    assert_eq!(body["rooms"][&room.id]["typing"], json!(["alice"]));
    let body = bob
        .sync_v2(&format!("since={}&timeout_ms=30000", token(&body)))
        .await;
    assert_eq!(body["rooms"][&room.id]["typing"], json!([]));
    assert!(renewed_at.elapsed() >= Duration::from_secs(6));
    let mut t = t;
    t.server.take().unwrap().shutdown().await;
}
