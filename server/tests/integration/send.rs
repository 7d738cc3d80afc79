//! Sending: the stored shape, idempotent resend, part validation and size limits.

use chatsync_protocol::{MAX_BODY_BYTES, MAX_TEXT_PART_BYTES};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn send_returns_the_stored_message_with_increasing_ids() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&["bob"]).await;
    let first = alice.send(&room.id, "t1", "hello").await;
    let second = alice.send(&room.id, "t2", "again").await;
    assert!(second.id > first.id);
    assert_eq!(first.user_id, "alice");
    assert_eq!(first.room_id, room.id);
    assert_eq!(first.text(), Some("hello"));
    assert_eq!(first.created_at, first.updated_at);
    assert!(
        first.created_at.ends_with('Z') && first.created_at.contains('T'),
        "{}",
        first.created_at
    );
}

#[tokio::test]
async fn resending_a_txn_id_returns_the_same_message_and_stores_nothing() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let first = alice.send(&room.id, "same", "hello").await;
    let again = alice.send(&room.id, "same", "hello").await;
    assert_eq!(first, again);
    let history = alice
        .get(&format!("/v1/rooms/{}/messages", room.id))
        .await
        .ok();
    assert_eq!(history["messages"].as_array().unwrap().len(), 1);
    // The same txn id from another sender is a different message.
    let bob = t.user("bob").await;
    let room2 = alice.create_room(&["bob"]).await;
    let a = alice.send(&room2.id, "x", "from alice").await;
    let b = bob.send(&room2.id, "x", "from bob").await;
    assert_ne!(a.id, b.id);
}

#[tokio::test]
async fn unknown_part_types_are_stored_and_returned_untouched() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let poll = json!({"type": "application/x-poll", "options": ["a", "b"], "meta": {"k": 1, "deep": [1, {"x": null}]}});
    let sent = alice
        .send_raw(
            &room.id,
            "p",
            json!({"parts": [{"type": "text/plain", "content": "vote"}, poll]}),
        )
        .await
        .ok();
    assert_eq!(sent["parts"][1], poll);
    let history = alice
        .get(&format!("/v1/rooms/{}/messages", room.id))
        .await
        .ok();
    assert_eq!(history["messages"][0]["parts"][1], poll);
}

#[tokio::test]
async fn bad_messages_are_refused_and_nothing_is_stored() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    alice
        .send_raw(&room.id, "a", json!({"parts": []}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    alice
        .send_raw(&room.id, "b", json!({}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    alice
        .send_raw(&room.id, "c", json!({"parts": [{"content": "no type"}]}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    alice
        .send_raw(&room.id, "d", json!({"parts": "nope"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let big_text = "x".repeat(MAX_TEXT_PART_BYTES + 1);
    alice
        .send_raw(
            &room.id,
            "e",
            json!({"parts": [{"type": "text/plain", "content": big_text}]}),
        )
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // Exactly 16 KiB is fine.
    alice
        .send_raw(
            &room.id,
            "f",
            json!({"parts": [{"type": "text/plain", "content": "y".repeat(MAX_TEXT_PART_BYTES)}]}),
        )
        .await
        .ok();
    // A body over 64 KiB (in a part type without a text limit) is refused as a whole.
    let blob = "z".repeat(MAX_BODY_BYTES);
    alice
        .send_raw(
            &room.id,
            "g",
            json!({"parts": [{"type": "application/octet-stream", "data": blob}]}),
        )
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let history = alice
        .get(&format!("/v1/rooms/{}/messages", room.id))
        .await
        .ok();
    assert_eq!(
        history["messages"].as_array().unwrap().len(),
        1,
        "only the valid 16 KiB message was stored"
    );
}

#[tokio::test]
async fn only_members_can_send() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let mallory = t.user("mallory").await;
    let room = alice.create_room(&["bob"]).await;
    mallory
        .send_raw(
            &room.id,
            "t",
            json!({"parts": [{"type": "text/plain", "content": "hi"}]}),
        )
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    alice
        .send_raw(
            "no-such-room",
            "t",
            json!({"parts": [{"type": "text/plain", "content": "hi"}]}),
        )
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}
