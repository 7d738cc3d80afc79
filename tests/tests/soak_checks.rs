//! The soak's checks can fail: each broken promise, staged for real on a server and a device
//! store, is reported by `soak::verify` (so a green soak means the promises held, not that the
//! checks looked away).

use chatsync_server::ServerConfig;
use chatsync_tests::http::Harness;
use chatsync_tests::soak::{self, DeviceStore, Queued};
use serde_json::json;

/// Sends a message straight to the server; returns its id.
async fn put(url: &str, token: &str, room: &str, txn: &str, text: &str) -> u64 {
    let r = reqwest::Client::new()
        .put(format!("{url}/v1/rooms/{room}/messages/{txn}"))
        .bearer_auth(token)
        .json(&json!({"parts": [{"type": "text/plain", "content": text}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap()
}

/// A v2 write straight to the server (`path` after `/v2/rooms/{room}/`).
async fn v2_put(url: &str, token: &str, room: &str, path: &str, body: serde_json::Value) {
    let r = reqwest::Client::new()
        .put(format!("{url}/v2/rooms/{room}/{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_promise_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = chatsync_server::start(ServerConfig::for_tests(dir.path().join("s.db")))
        .await
        .unwrap();
    let url = server.url();
    let h = Harness::new(url.clone());
    let (alice, bob) = (
        h.token("alice").await.unwrap(),
        h.token("bob").await.unwrap(),
    );
    let room = h
        .create_room(&alice, "r", &["bob".into()])
        .await
        .unwrap()
        .id;
    let members = vec![(room.clone(), vec!["alice".to_owned(), "bob".to_owned()])];
    let store = DeviceStore {
        user: "alice".into(),
        data: dir.path().join("alice"),
        rooms: vec![room.clone()],
    };
    let one = put(&url, &bob, &room, "b1", "one").await;
    {
        let client = soak::open_store(&url, &store).unwrap();
        client.sync_once().await.unwrap();
    }
    let queued = |txn: &str, text: &str| Queued {
        user: "bob".into(),
        room: room.clone(),
        local_id: txn.into(),
        text: text.into(),
    };

    // All promises kept: no violation.
    let (delivered, v) = soak::verify(
        &url,
        &members,
        &[queued("b1", "one")],
        std::slice::from_ref(&store),
    )
    .await
    .unwrap();
    assert_eq!((delivered, v.len()), (1, 0), "{v:?}");

    // A queued message that never arrived.
    let (_, v) = soak::verify(&url, &members, &[queued("b9", "lost")], &[])
        .await
        .unwrap();
    assert!(
        v.iter().any(|v| v.contains("never reached the server")),
        "{v:?}"
    );

    // A message the device has not got (the store is behind the server).
    put(&url, &bob, &room, "b2", "two").await;
    let (_, v) = soak::verify(&url, &members, &[], std::slice::from_ref(&store))
        .await
        .unwrap();
    assert!(
        v.iter()
            .any(|v| v.contains("store shows 1 messages, server holds 2")),
        "{v:?}"
    );

    // The same text stored twice (a duplicate send).
    put(&url, &bob, &room, "b3", "two").await;
    let (_, v) = soak::verify(&url, &members, &[queued("b2", "two")], &[])
        .await
        .unwrap();
    assert!(
        v.iter().any(|v| v.contains("on the server 2 times")),
        "{v:?}"
    );

    // Each change of the chat model the store has not got: the store is brought up to date,
    // then the server changes behind its back.
    let sync = || async {
        let client = soak::open_store(&url, &store).unwrap();
        client.sync_once().await.unwrap();
    };
    let store_differs = |v: &[String], needle: &str| {
        v.iter()
            .any(|v| v.contains("first difference") && v.contains(needle))
    };
    sync().await;
    v2_put(
        &url,
        &bob,
        &room,
        &format!("messages/{one}/edits/e1"),
        json!({"parts": [{"type": "text/plain", "content": "one, edited"}]}),
    )
    .await;
    let (_, v) = soak::verify(&url, &members, &[], std::slice::from_ref(&store))
        .await
        .unwrap();
    assert!(store_differs(&v, "one, edited"), "an edit: {v:?}");
    sync().await;
    v2_put(
        &url,
        &bob,
        &room,
        &format!("messages/{one}/reactions/x1"),
        json!({"key": "👍", "on": true}),
    )
    .await;
    let (_, v) = soak::verify(&url, &members, &[], std::slice::from_ref(&store))
        .await
        .unwrap();
    assert!(store_differs(&v, "👍"), "a reaction: {v:?}");
    sync().await;
    // (alice's other device: only a member other than the sender shows in `read_by`)
    v2_put(
        &url,
        &alice,
        &room,
        "receipt/rc1",
        json!({"message_id": one}),
    )
    .await;
    let (_, v) = soak::verify(&url, &members, &[], std::slice::from_ref(&store))
        .await
        .unwrap();
    assert!(
        store_differs(&v, r#"read_by: ["alice"]"#),
        "a receipt: {v:?}"
    );
    sync().await;
    v2_put(
        &url,
        &bob,
        &room,
        &format!("messages/{one}/deletion/d1"),
        json!(null),
    )
    .await;
    let (_, v) = soak::verify(&url, &members, &[], std::slice::from_ref(&store))
        .await
        .unwrap();
    assert!(store_differs(&v, "deleted: true"), "a deletion: {v:?}");
    sync().await;
    let (_, v) = soak::verify(&url, &members, &[], std::slice::from_ref(&store))
        .await
        .unwrap();
    assert!(
        v.iter().all(|v| v.contains("on the server 2 times")),
        "in line again, only the duplicate staged above: {v:?}"
    );
    put(&url, &bob, &room, "b4", "three").await;
    let (_, v) = soak::verify(&url, &members, &[], std::slice::from_ref(&store))
        .await
        .unwrap();
    assert!(
        v.iter().any(|v| v.contains("unread, the server")),
        "an unread count: {v:?}"
    );

    // Something left pending on the device (shown, but never accepted by the server).
    server.shutdown().await;
    {
        // Nothing listens on port 9: the message stays queued.
        let client = soak::open_store("http://127.0.0.1:9", &store).unwrap();
        client
            .send_text(room.clone(), "pending".into())
            .await
            .unwrap();
    }
    let server = chatsync_server::start({
        let mut c = ServerConfig::for_tests(dir.path().join("s.db"));
        c.addr = url.trim_start_matches("http://").parse().unwrap();
        c
    })
    .await
    .unwrap();
    let (_, v) = soak::verify(&url, &members, &[], std::slice::from_ref(&store))
        .await
        .unwrap();
    assert!(v.iter().any(|v| v.contains("left in the outbox")), "{v:?}");
    server.shutdown().await;
}
