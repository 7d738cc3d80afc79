//! Protocol v2's writes over HTTP: send, edit, delete, react, receipt, typing; who may, what the
//! answers say (and to whom), the errors for bad input (with nothing changed), idempotency by txn
//! id, and what v1 clients see of edited and deleted messages.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{ids, text, Client, TestServer};

/// Everything a room holds, as `who` sees it in v2 history.
async fn snapshot(who: &Client, room: &str) -> Vec<Value> {
    who.history_v2(room).await
}

#[tokio::test]
async fn a_v2_send_answers_its_txn_id_to_the_sender_only_and_shares_v1s_idempotency() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let sent = alice.send_v2(&room.id, "t1", "hello").await;
    assert_eq!(sent["txn_id"], "t1");
    assert_eq!(text(&sent), "hello");
    for absent in ["edited_at", "deleted", "reactions"] {
        assert!(sent.get(absent).is_none(), "{absent} only when set: {sent}");
    }
    // The same txn id again, on v2 or v1: the same message, nothing stored.
    assert_eq!(alice.send_v2(&room.id, "t1", "other").await, sent);
    assert_eq!(alice.send(&room.id, "t1", "other").await.id, sent["id"]);
    let seen_by_bob = snapshot(&bob, &room.id).await;
    assert_eq!(seen_by_bob.len(), 1);
    assert!(seen_by_bob[0].get("txn_id").is_none(), "{}", seen_by_bob[0]);
    assert_eq!(snapshot(&alice, &room.id).await[0]["txn_id"], "t1");
}

#[tokio::test]
async fn only_the_sender_edits_and_an_edit_keeps_the_id_and_place() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let other = alice.create_room(&[]).await;
    let first = alice.send_v2(&room.id, "m1", "first").await;
    let second = alice.send_v2(&room.id, "m2", "second").await;
    let elsewhere = alice.send_v2(&other.id, "m3", "elsewhere").await;
    let id = first["id"].as_u64().unwrap();
    let before = snapshot(&alice, &room.id).await;

    bob.edit(&room.id, id, "e1", "bob's")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    alice
        .edit(&room.id, 999_999, "e1", "x")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    alice
        .edit(&room.id, elsewhere["id"].as_u64().unwrap(), "e1", "x")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    alice
        .put(
            &format!("/v2/rooms/{}/messages/{id}/edits/e1", room.id),
            json!({"parts": []}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    alice
        .put(
            &format!("/v2/rooms/{}/messages/{id}/edits/e1", room.id),
            json!({"parts": [{"type": "text/plain", "content": "x".repeat(20_000)}]}),
        )
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    alice
        .put(
            &format!("/v2/rooms/{}/messages/abc/edits/e1", room.id),
            json!({"parts": [{"type": "text/plain", "content": "x"}]}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(snapshot(&alice, &room.id).await, before, "nothing changed");

    let edited = alice.edit(&room.id, id, "e1", "first, edited").await.ok();
    assert_eq!(edited["id"], first["id"]);
    assert_eq!(edited["created_at"], first["created_at"]);
    assert_eq!(text(&edited), "first, edited");
    assert!(edited["edited_at"].is_string());
    assert_eq!(edited["txn_id"], "m1", "the send's txn id, shown to the sender");
    // The same edit txn again: nothing changes, the answer is the message as it is.
    let again = alice.edit(&room.id, id, "e1", "something else").await.ok();
    assert_eq!(again, edited);
    let now = snapshot(&bob, &room.id).await;
    assert_eq!(ids(&json!(now)), [id, second["id"].as_u64().unwrap()]);
    assert_eq!(text(&now[0]), "first, edited");
    assert_eq!(now[0]["edited_at"], edited["edited_at"]);
}

#[tokio::test]
async fn a_deletion_leaves_a_tombstone_only_the_sender_deletes_and_v1_leaves_it_out() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let m1 = alice.send_v2(&room.id, "m1", "keep").await;
    let m2 = alice.send_v2(&room.id, "m2", "secret to delete").await;
    let id = m2["id"].as_u64().unwrap();
    bob.react(&room.id, id, "r1", "👍", true).await.ok();
    bob.delete(&room.id, id, "d1")
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let tomb = alice.delete(&room.id, id, "d1").await.ok();
    assert_eq!(tomb["deleted"], true);
    assert_eq!(tomb["parts"], json!([]));
    assert!(tomb.get("reactions").is_none());
    assert_eq!(tomb["id"], m2["id"]);
    // Again, with another txn: a no-op with the same answer.
    assert_eq!(alice.delete(&room.id, id, "d2").await.ok(), tomb);
    // No edit or reaction on a tombstone.
    alice
        .edit(&room.id, id, "e1", "back")
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    bob.react(&room.id, id, "r2", "👍", true)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    // v2 history keeps its place; the content is gone from every answer.
    let v2 = snapshot(&bob, &room.id).await;
    assert_eq!(v2.len(), 2);
    assert_eq!(v2[1]["deleted"], true);
    // v1: history, compat and sync leave it out; the edited one shows its new text.
    alice.edit(&room.id, m1["id"].as_u64().unwrap(), "e", "kept, edited").await.ok();
    for path in [
        format!("/v1/rooms/{}/messages", room.id),
        format!("/v1/rooms/{}/messages?direction=newer", room.id),
        format!("/messages?room_id={}", room.id),
    ] {
        let body = bob.get(&path).await.ok();
        assert_eq!(ids(&body["messages"]), [m1["id"].as_u64().unwrap()], "{path}");
        assert_eq!(body["messages"][0]["parts"][0]["content"], "kept, edited");
        assert!(!body.to_string().contains("secret"), "{path}: {body}");
    }
    let v1 = bob.get("/v1/sync").await.ok();
    assert_eq!(ids(&v1["rooms"][&room.id]["messages"]), [m1["id"].as_u64().unwrap()]);
    assert!(!v1.to_string().contains("secret"));
}

#[tokio::test]
async fn reactions_toggle_per_member_with_counts_and_me_and_bad_keys_are_400() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let carol = t.user("carol").await;
    let room = alice.create_room(&["bob", "carol"]).await;
    let m = alice.send_v2(&room.id, "m", "react to me").await;
    let id = m["id"].as_u64().unwrap();
    let by_bob = bob.react(&room.id, id, "r1", "👍", true).await.ok();
    assert_eq!(by_bob["reactions"], json!([{"key": "👍", "count": 1, "me": true}]));
    assert!(by_bob.get("txn_id").is_none(), "bob did not send it");
    carol.react(&room.id, id, "r1", "👍", true).await.ok();
    let by_alice = alice.react(&room.id, id, "r1", "🎉", true).await.ok();
    assert_eq!(
        by_alice["reactions"],
        json!([{"key": "👍", "count": 2, "me": false}, {"key": "🎉", "count": 1, "me": true}])
    );
    // Off again (a repeat of bob's txn id would change nothing: it is his "on").
    let again = bob.react(&room.id, id, "r1", "👍", false).await.ok();
    assert_eq!(again["reactions"][0], json!({"key": "👍", "count": 2, "me": true}));
    let off = bob.react(&room.id, id, "r2", "👍", false).await.ok();
    assert_eq!(off["reactions"][0], json!({"key": "👍", "count": 1, "me": false}));
    // Bad input: nothing changes.
    let before = snapshot(&carol, &room.id).await;
    for key in ["", "a b", "x\u{7}", &"k".repeat(33), "🎉🎉🎉🎉🎉🎉🎉🎉🎉"] {
        bob.react(&room.id, id, "bad", key, true)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    bob.put(
        &format!("/v2/rooms/{}/messages/{id}/reactions/bad", room.id),
        json!({"key": "👍"}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    bob.react(&room.id, id + 1000, "bad", "👍", true)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(snapshot(&carol, &room.id).await, before);
    // 32 bytes is fine.
    bob.react(&room.id, id, "r3", &"k".repeat(32), true).await.ok();
    // At most 20 keys per member on one message.
    for i in 1..20 {
        bob.react(&room.id, id, &format!("many{i}"), &format!("k{i}"), true)
            .await
            .ok();
    }
    bob.react(&room.id, id, "many-over", "over", true)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn receipts_move_forward_only_answer_unread_and_refuse_other_rooms_messages() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let other = bob.create_room(&[]).await;
    let sent: Vec<u64> = {
        let mut v = Vec::new();
        for i in 0..4 {
            v.push(alice.send_v2(&room.id, &format!("m{i}"), "x").await["id"].as_u64().unwrap());
        }
        v
    };
    bob.send_v2(&room.id, "own", "bob's own").await;
    let elsewhere = bob.send_v2(&other.id, "o", "x").await["id"].as_u64().unwrap();
    assert_eq!(
        bob.receipt(&room.id, "c1", sent[1]).await.ok(),
        json!({"message_id": sent[1], "unread": 2})
    );
    // Backwards: nothing moves, the answer says where it is.
    assert_eq!(
        bob.receipt(&room.id, "c2", sent[0]).await.ok(),
        json!({"message_id": sent[1], "unread": 2})
    );
    // The same txn id: the same outcome, whatever the body says now.
    assert_eq!(
        bob.receipt(&room.id, "c1", sent[3]).await.ok(),
        json!({"message_id": sent[1], "unread": 2})
    );
    for bad in [elsewhere, 0, 999_999] {
        bob.receipt(&room.id, "c3", bad)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    bob.put(
        &format!("/v2/rooms/{}/receipt/c3", room.id),
        json!({"message_id": -1}),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    // A deleted message no longer counts as unread.
    alice.delete(&room.id, sent[3], "d").await.ok();
    let sync = bob.sync_v2("").await;
    assert_eq!(sync["rooms"][&room.id]["unread"], 1);
    assert_eq!(sync["rooms"][&room.id]["receipts"]["bob"], sent[1]);
    // A non-member gets 403 on every v2 write.
    let eve = t.user("eve").await;
    let id = sent[0];
    for answer in [
        eve.receipt(&room.id, "c", id).await,
        eve.edit(&room.id, id, "e", "x").await,
        eve.delete(&room.id, id, "d").await,
        eve.react(&room.id, id, "r", "👍", true).await,
        eve.typing(&room.id, true).await,
        eve.put(
            &format!("/v2/rooms/{}/messages/t", room.id),
            json!({"parts": [{"type": "text/plain", "content": "x"}]}),
        )
        .await,
        eve.get(&format!("/v2/rooms/{}/messages", room.id)).await,
    ] {
        answer.assert_error(StatusCode::FORBIDDEN, "forbidden");
    }
    // An unknown room is a 404.
    alice
        .receipt("r-nope", "c", id)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn typing_is_answered_204_and_a_flood_gets_429_with_retry_after() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&["bob"]).await;
    let r = alice
        .http
        .put(format!("{}/v2/rooms/{}/typing", alice.url, room.id))
        .bearer_auth(&alice.token)
        .json(&json!({"typing": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = alice
        .http
        .put(format!("{}/v2/rooms/{}/typing", alice.url, room.id))
        .bearer_auth(&alice.token)
        .json(&json!({"typing": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "1");
    crate::support::answer(r)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    alice
        .put(&format!("/v2/rooms/{}/typing", room.id), json!({"typing": "yes"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}
