//! Every error answer is the protocol's JSON shape with the right status, including the answers
//! axum would otherwise produce itself (404 fallback, 405, JSON syntax, missing fields, 413).

use chatsync_protocol::MAX_BODY_BYTES;
use reqwest::{Method, StatusCode};

use crate::support::{answer, TestServer};

#[tokio::test]
async fn unknown_routes_are_json_404() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    alice
        .get("/v1/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    alice
        .get("/")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    answer(
        t.http
            .get(format!("{}/v3/sync", t.url))
            .send()
            .await
            .unwrap(),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn wrong_methods_on_known_routes_are_json_405() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    for (method, path) in [
        (Method::DELETE, "/v1/rooms"),
        (Method::POST, "/v1/sync"),
        (Method::GET, "/v1/token"),
        (Method::POST, "/health"),
        (Method::GET, "/v1/rooms/direct"),
        (Method::POST, "/v1/users/alice"),
        (Method::GET, "/v1/rooms/r1/messages/t1"),
        (Method::DELETE, "/messages"),
        (Method::PUT, "/v1/openapi.json"),
    ] {
        let a = alice.call(method.clone(), path, None).await;
        a.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

#[tokio::test]
async fn malformed_json_bodies_are_400_never_500() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let url = format!("{}/v1/rooms/{}/messages/t1", t.url, room.id);
    for body in [
        "{",
        "not json",
        "",
        "[]",
        "{\"parts\": [1]}",
        "{\"parts\": [{\"type\": 5}]}",
        "\u{0}",
    ] {
        let r = t
            .http
            .put(&url)
            .bearer_auth(&alice.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        answer(r)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    }
    // Without a content type the body is still read as JSON.
    let r = t
        .http
        .post(format!("{}/v1/token", t.url))
        .body(r#"{"user_id":"zed"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = t
        .http
        .post(format!("{}/v1/token", t.url))
        .body(r#"{"user":"zed"}"#)
        .send()
        .await
        .unwrap();
    answer(r)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn bodies_over_64_kib_are_json_413_on_every_route() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let big = format!(
        "{{\"name\": \"{}\", \"member_ids\": []}}",
        "x".repeat(MAX_BODY_BYTES)
    );
    for (method, path) in [
        (Method::POST, "/v1/rooms".to_owned()),
        (Method::POST, "/v1/token".to_owned()),
        (Method::PUT, "/v1/users/alice".to_owned()),
        (Method::PUT, format!("/v1/rooms/{}/messages/big", room.id)),
    ] {
        let r = t
            .http
            .request(method, format!("{}{path}", t.url))
            .bearer_auth(&alice.token)
            .body(big.clone())
            .send()
            .await
            .unwrap();
        answer(r)
            .await
            .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
}

#[tokio::test]
async fn bad_path_ids_are_400() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let long = "x".repeat(300);
    alice
        .send_raw(
            &room.id,
            &long,
            serde_json::json!({"parts": [{"type": "text/plain", "content": "a"}]}),
        )
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    alice
        .get(&format!("/v1/users/{long}"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    alice
        .get("/v1/users/a%20b")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn health_answers_get_and_head_without_auth() {
    let t = TestServer::start().await;
    let r = t
        .http
        .get(format!("{}/health", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = t
        .http
        .head(format!("{}/health", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap().is_empty());
}
