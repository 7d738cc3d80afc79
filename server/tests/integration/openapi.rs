//! The OpenAPI document lists every real route with its methods, and the wire shape of a message
//! is pinned by a snapshot.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::TestServer;

#[tokio::test]
async fn openapi_lists_every_route_and_method() {
    let t = TestServer::start().await;
    let r = t
        .http
        .get(format!("{}/v1/openapi.json", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .filter(|s| !s.starts_with("PARAMETERS"))
        .collect();
    listed.sort();
    let mut expected = vec![
        "GET /health",
        "HEAD /health",
        "GET /v1/openapi.json",
        "POST /v1/token",
        "PUT /v1/users/{user_id}",
        "GET /v1/users/{user_id}",
        "POST /v1/rooms",
        "GET /v1/rooms",
        "POST /v1/rooms/direct",
        "GET /v1/rooms/{room_id}",
        "PUT /v1/rooms/{room_id}/messages/{txn_id}",
        "GET /v1/rooms/{room_id}/messages",
        "GET /v1/sync",
        "GET /messages",
        // Protocol v2.
        "PUT /v2/rooms/{room_id}/messages/{txn_id}",
        "PUT /v2/rooms/{room_id}/messages/{message_id}/edits/{txn_id}",
        "PUT /v2/rooms/{room_id}/messages/{message_id}/deletion/{txn_id}",
        "PUT /v2/rooms/{room_id}/messages/{message_id}/reactions/{txn_id}",
        "PUT /v2/rooms/{room_id}/receipt/{txn_id}",
        "PUT /v2/rooms/{room_id}/typing",
        "GET /v2/rooms/{room_id}/messages",
        "GET /v2/sync",
    ];
    expected.sort();
    assert_eq!(listed, expected);
    // The schemas come from the protocol crate.
    for schema in [
        "Message",
        "Part",
        "SyncResponse",
        "RoomSync",
        "ErrorBody",
        "Room",
        "HistoryResponse",
        "v2.Message",
        "v2.RoomSync",
        "v2.SyncResponse",
        "v2.HistoryResponse",
        "Reaction",
        "EditRequest",
        "ReactionRequest",
        "ReceiptRequest",
        "ReceiptResponse",
        "TypingRequest",
    ] {
        assert!(
            doc["components"]["schemas"].get(schema).is_some(),
            "schema {schema}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_route_the_document_lists_is_served() {
    // Each documented (method, path) answers something other than 404/405 (auth may refuse).
    let t = TestServer::start().await;
    let doc: Value = t
        .http
        .get(format!("{}/v1/openapi.json", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{user_id}", "alice")
            .replace("{room_id}", "r1")
            .replace("{txn_id}", "t1")
            .replace("{message_id}", "1");
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = t
                .http
                .request(method.clone(), format!("{}{concrete}", t.url))
                .send()
                .await
                .unwrap();
            assert!(
                r.status() != StatusCode::NOT_FOUND,
                "{method} {path} is documented but answers {}",
                r.status()
            );
            assert_ne!(
                r.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
        }
    }
}

#[tokio::test]
async fn message_json_shape_is_stable() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    let sent = alice
        .send_raw(&room.id, "t1", json!({"parts": [{"type": "text/plain", "content": "hello!"}, {"type": "image/png", "url": "https://example.com/a.png"}]}))
        .await
        .ok();
    // Values that differ per run are replaced; keys, order and types are what the snapshot pins.
    let mut shape = sent.clone();
    assert!(shape["id"].is_u64());
    shape["id"] = json!("[id]");
    assert_eq!(shape["room_id"], json!(room.id));
    shape["room_id"] = json!("[room_id]");
    assert_eq!(shape["created_at"], shape["updated_at"]);
    shape["created_at"] = json!("[rfc3339]");
    shape["updated_at"] = json!("[rfc3339]");
    insta::assert_json_snapshot!(shape);
}

#[tokio::test]
async fn the_document_states_the_id_rules_and_the_limits_minimum() {
    let t = TestServer::start().await;
    let doc: Value = t
        .http
        .get(format!("{}/v1/openapi.json", t.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = &doc["components"]["schemas"]["Id"];
    assert_eq!(id["type"], "string");
    assert_eq!(id["minLength"], 1);
    assert_eq!(id["maxLength"], chatsync_protocol::MAX_ID_BYTES);
    assert_eq!(id["pattern"], chatsync_protocol::ID_PATTERN);
    let id_ref = json!({"$ref": "#/components/schemas/Id"});
    let mut ids_seen = 0;
    let mut limits_seen = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                if ["room_id", "user_id", "txn_id"].contains(&name) {
                    assert_eq!(p["schema"], id_ref, "{method} {path} {name}");
                    ids_seen += 1;
                }
                if name == "limit" {
                    assert_eq!(
                        p["schema"]["minimum"], 1,
                        "{method} {path}: limit=0 is a 400"
                    );
                    limits_seen += 1;
                }
            }
        }
    }
    assert_eq!(ids_seen, 19, "every id parameter of every route");
    assert_eq!(limits_seen, 5, "history, sync, compat, v2 history, v2 sync");
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["TokenRequest"]["properties"]["user_id"], id_ref);
    assert_eq!(
        schemas["DirectRoomRequest"]["properties"]["user_id"],
        id_ref
    );
    assert_eq!(
        schemas["CreateRoomRequest"]["properties"]["member_ids"]["items"],
        id_ref
    );
    // The document says what the server does: an id the pattern refuses is a 400.
    let alice = t.user("alice").await;
    alice
        .get("/v1/users/a%20b")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}
