//! Users and rooms: profiles, room creation, direct rooms, listing, membership enforcement.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::TestServer;

#[tokio::test]
async fn users_write_only_their_own_profile() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let put = alice
        .call(
            Method::PUT,
            "/v1/users/alice",
            Some(json!({"name": "Alice", "avatar_url": "https://a/x.png"})),
        )
        .await
        .ok();
    assert_eq!(
        put,
        json!({"id": "alice", "name": "Alice", "avatar_url": "https://a/x.png"})
    );
    // Replace without an avatar.
    alice
        .call(
            Method::PUT,
            "/v1/users/alice",
            Some(json!({"name": "Alice B"})),
        )
        .await
        .ok();
    let bob = t.user("bob").await;
    assert_eq!(
        bob.get("/v1/users/alice").await.ok(),
        json!({"id": "alice", "name": "Alice B"})
    );
    bob.call(
        Method::PUT,
        "/v1/users/alice",
        Some(json!({"name": "Evil"})),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    bob.get("/v1/users/nobody")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    alice
        .call(Method::PUT, "/v1/users/alice", Some(json!({"nom": "x"})))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn the_creator_is_always_a_member_and_members_are_sorted() {
    let t = TestServer::start().await;
    let carol = t.user("carol").await;
    let answer = carol
        .call(
            Method::POST,
            "/v1/rooms",
            Some(json!({"member_ids": ["bob", "alice", "bob"]})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED);
    let room = answer.body;
    assert_eq!(room["member_ids"], json!(["alice", "bob", "carol"]));
    assert!(room.get("name").is_none());
    assert!(room["created_at"].as_str().unwrap().ends_with('Z'));
    let id = room["id"].as_str().unwrap();
    assert_eq!(carol.get(&format!("/v1/rooms/{id}")).await.ok(), room);
    let bob = t.user("bob").await;
    assert_eq!(bob.get(&format!("/v1/rooms/{id}")).await.ok(), room);
    let mallory = t.user("mallory").await;
    mallory
        .get(&format!("/v1/rooms/{id}"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    mallory
        .get("/v1/rooms/r-does-not-exist")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    carol
        .call(
            Method::POST,
            "/v1/rooms",
            Some(json!({"member_ids": ["bad id"]})),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn listing_shows_exactly_the_callers_rooms() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let a1 = alice.create_room(&[]).await;
    let ab = alice.create_room(&["bob"]).await;
    let b1 = bob.create_room(&[]).await;
    let list = |v: serde_json::Value| -> Vec<String> {
        v["rooms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        list(alice.get("/v1/rooms").await.ok()),
        vec![a1.id.clone(), ab.id.clone()]
    );
    assert_eq!(list(bob.get("/v1/rooms").await.ok()), vec![ab.id, b1.id]);
    let nobody = t.user("nobody").await;
    assert_eq!(nobody.get("/v1/rooms").await.ok(), json!({"rooms": []}));
}

#[tokio::test]
async fn the_direct_room_is_the_same_whoever_asks() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let from_alice = alice
        .call(
            Method::POST,
            "/v1/rooms/direct",
            Some(json!({"user_id": "bob"})),
        )
        .await
        .ok();
    let from_bob = bob
        .call(
            Method::POST,
            "/v1/rooms/direct",
            Some(json!({"user_id": "alice"})),
        )
        .await
        .ok();
    let again = alice
        .call(
            Method::POST,
            "/v1/rooms/direct",
            Some(json!({"user_id": "bob"})),
        )
        .await
        .ok();
    assert_eq!(from_alice, from_bob);
    assert_eq!(from_alice, again);
    assert_eq!(from_alice["member_ids"], json!(["alice", "bob"]));
    let carol = alice
        .call(
            Method::POST,
            "/v1/rooms/direct",
            Some(json!({"user_id": "carol"})),
        )
        .await
        .ok();
    assert_ne!(carol["id"], from_alice["id"]);
    alice
        .call(
            Method::POST,
            "/v1/rooms/direct",
            Some(json!({"user_id": "alice"})),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    alice
        .call(Method::POST, "/v1/rooms/direct", Some(json!({})))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn non_members_cannot_read_history_or_compat() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let mallory = t.user("mallory").await;
    let room = alice.create_room(&[]).await;
    alice.send(&room.id, "t", "secret").await;
    mallory
        .get(&format!("/v1/rooms/{}/messages", room.id))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    mallory
        .get(&format!("/messages?room_id={}", room.id))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let sync = mallory.get("/v1/sync").await.ok();
    assert_eq!(sync["rooms"], json!({}));
}
