//! The torture's per-kill checks can fail: each broken promise, staged for real on a server and
//! a device store, is reported by `torture::check_store` and the server `Mirror` (so a green
//! torture means the promises held, not that the checks looked away).

use chatsync_server::ServerConfig;
use chatsync_tests::http::Harness;
use chatsync_tests::soak::{self, DeviceStore, Queued};
use chatsync_tests::torture::{check_store, Ledger, Mirror};
use serde_json::json;

async fn put(url: &str, token: &str, room: &str, txn: &str, text: &str) {
    let r = reqwest::Client::new()
        .put(format!("{url}/v1/rooms/{room}/messages/{txn}"))
        .bearer_auth(token)
        .json(&json!({"parts": [{"type": "text/plain", "content": text}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_promise_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = chatsync_server::start(ServerConfig::for_tests(dir.path().join("s.db")))
        .await
        .unwrap();
    let url = server.url();
    let h = Harness::new(url.clone());
    let alice = h.token("alice").await.unwrap();
    let room = h
        .create_room(&alice, "r", &["bob".into()])
        .await
        .unwrap()
        .id;
    let store = DeviceStore {
        user: "alice".into(),
        data: dir.path().join("alice"),
        rooms: vec![room.clone()],
    };
    let mut mirror = Mirror::new(&url, &[(room.clone(), "alice".to_owned())])
        .await
        .unwrap();
    let queued = |local_id: &str, text: &str| {
        (
            local_id.to_owned(),
            Queued {
                user: "alice".into(),
                room: room.clone(),
                local_id: local_id.to_owned(),
                text: text.into(),
            },
        )
    };

    // A message the device really queued, and one delivered in order: all promises kept.
    let local_id = {
        let client = soak::open_store(&url, &store).unwrap();
        client.login("Alice".into(), None).await.unwrap();
        put(&url, &alice, &room, "t1", "alice/1/0").await;
        client.sync_once().await.unwrap();
        let echo = client
            .send_text(room.clone(), "alice/1/1".into())
            .await
            .unwrap();
        echo.local_id.unwrap()
    };
    let mut ledger = Ledger::default();
    ledger.queued.push(queued("t1", "alice/1/0"));
    ledger.queued.push(queued(&local_id, "alice/1/1"));
    let found = check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert!(
        found.unreadable.is_none() && found.lost.is_empty(),
        "{found:?}"
    );
    assert!(mirror.duplicated.is_empty() && mirror.misordered.is_empty());

    // Lost: reported queued, in neither the outbox nor on the server.
    ledger.queued.push(queued("gone", "alice/1/2"));
    let found = check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert_eq!(found.lost.len(), 1, "{found:?}");
    // ... unless the app discarded it.
    ledger.discarding.insert("gone".into());
    let found = check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert!(found.lost.is_empty(), "{found:?}");

    // On the server twice (two txn ids), and out of queue order (life 1's 0 after its 5).
    put(&url, &alice, &room, "t5", "alice/1/5").await;
    put(&url, &alice, &room, "t5-again", "alice/1/5").await;
    check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert_eq!(mirror.duplicated.len(), 1, "{:?}", mirror.duplicated);
    assert_eq!(mirror.misordered.len(), 1, "{:?}", mirror.misordered);
    put(&url, &alice, &room, "t0-late", "alice/1/3").await;
    check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert_eq!(mirror.misordered.len(), 2, "{:?}", mirror.misordered);

    // A store that does not open.
    let db = store.data.join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0x5a; len]).unwrap();
    let found = check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert!(found.unreadable.is_some(), "{found:?}");
    server.shutdown().await;
}
