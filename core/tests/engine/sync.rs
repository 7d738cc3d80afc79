//! Sync against the real server: convergence, limited syncs, idempotence, offline reopen.

use std::sync::Arc;
use std::time::Duration;

use chatsync_core::{ChatClient, ClientEvent, MessageState, NetworkStatus};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_converge() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    let (bob, bob_room) = device_with_room(&server, root.path(), "bob", "alice").await;
    assert_eq!(room, bob_room, "one direct room whoever opens it");

    for i in 0..3 {
        alice
            .client
            .send_text(room.clone(), format!("a{i}"))
            .await
            .unwrap();
        bob.client
            .send_text(room.clone(), format!("b{i}"))
            .await
            .unwrap();
    }
    // Each flushes its own outbox; a second round brings the other's messages.
    for _ in 0..2 {
        alice.client.sync_once().await.unwrap();
        bob.client.sync_once().await.unwrap();
    }
    let a = alice.client.messages(room.clone(), 50, None).unwrap();
    let b = bob.client.messages(room.clone(), 50, None).unwrap();
    assert_eq!(a.len(), 6);
    let ids = |ms: &[chatsync_core::ChatMessage]| {
        ms.iter()
            .map(|m| (m.server_id, m.text.clone(), m.sender.id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&a), ids(&b));
    // A message's id is its local id on the device that sent it (stable from echo to sent),
    // its server id elsewhere.
    for m in &a {
        let expected = match m.sender.id.as_str() {
            "alice" => m.local_id.clone().unwrap(),
            _ => m.server_id.unwrap().to_string(),
        };
        assert_eq!(m.id, expected, "{m:?}");
    }
    assert!(a.iter().all(|m| m.state == MessageState::Sent));
    // Newest first, by server id.
    let server_ids: Vec<u64> = a.iter().map(|m| m.server_id.unwrap()).collect();
    assert!(server_ids.windows(2).all(|w| w[0] > w[1]));
    // Each side sees the other's profile name.
    let from_bob = a.iter().find(|m| m.sender.id == "bob").unwrap();
    assert_eq!(from_bob.sender.name, "Bob");
    // Alice's own messages keep the txn id of their echo.
    assert!(a
        .iter()
        .filter(|m| m.sender.id == "alice")
        .all(|m| m.local_id.is_some()));
    assert!(alice.client.outbox().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_sync_leaves_no_visible_hole() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url(), root.path(), "alice");
    cfg.page_size = 5; // the sync limit per room
    let (alice, room) = device_with_config(cfg, "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    bob.client
        .send_text(room.clone(), "before".into())
        .await
        .unwrap();
    bob.client.sync_once().await.unwrap();
    alice.client.sync_once().await.unwrap();
    assert_eq!(
        texts(&alice.client.messages(room.clone(), 50, None).unwrap()),
        vec!["before"]
    );

    // 40 new messages while alice is away: her next sync gets the newest 5, limited.
    for i in 0..40 {
        bob.client
            .send_text(room.clone(), format!("m{i:02}"))
            .await
            .unwrap();
    }
    assert_eq!(bob.client.sync_once().await.unwrap().sent, 40);
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!(report.new_messages.get(&room), Some(&40));

    let shown = alice.client.messages(room.clone(), 100, None).unwrap();
    let mut expected: Vec<String> = (0..40).rev().map(|i| format!("m{i:02}")).collect();
    expected.push("before".into());
    assert_eq!(
        texts(&shown),
        expected,
        "the gap was filled: every message, in order, none missing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_too_large_to_fill_at_once_is_never_shown_as_complete() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let mut cfg = config(&server.url(), root.path(), "alice");
    cfg.page_size = 5; // sync limit 5 per room; gap filling: 10 pages of 5 per sync
    let (alice, room) = device_with_config(cfg, "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    bob.client
        .send_text(room.clone(), "before".into())
        .await
        .unwrap();
    bob.client.sync_once().await.unwrap();
    alice.client.sync_once().await.unwrap();
    for i in 0..80 {
        bob.client
            .send_text(room.clone(), format!("m{i:02}"))
            .await
            .unwrap();
    }
    assert_eq!(bob.client.sync_once().await.unwrap().sent, 80);

    // 5 from the sync + 50 from filling: m25..m79. m00..m24 are still a gap.
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!(report.new_messages.get(&room), Some(&55));
    let shown = alice.client.messages(room.clone(), 100, None).unwrap();
    let expected: Vec<String> = (25..80).rev().map(|i| format!("m{i:02}")).collect();
    assert_eq!(
        texts(&shown),
        expected,
        "stops at the gap: \"before\" is not shown next to m25"
    );

    // Scrolling there fills it from the server; then the history is whole.
    let timeline = alice.client.timeline(room.clone()).unwrap();
    while timeline.paginate_backwards(100).await.unwrap().has_more {}
    let mut all: Vec<String> = (0..80).rev().map(|i| format!("m{i:02}")).collect();
    all.push("before".into());
    let mut shown = timeline.items();
    shown.reverse();
    assert_eq!(
        texts(&shown),
        all,
        "scrolling there filled the gap from the server"
    );
    assert_eq!(
        alice
            .client
            .messages(room.clone(), 200, None)
            .unwrap()
            .len(),
        81
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerunning_a_sync_duplicates_nothing() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    for i in 0..5 {
        bob.client
            .send_text(room.clone(), format!("m{i}"))
            .await
            .unwrap();
    }
    bob.client.sync_once().await.unwrap();
    let first = alice.client.sync_once().await.unwrap();
    assert_eq!(first.new_messages.get(&room), Some(&5));
    let before = alice.client.messages(room.clone(), 100, None).unwrap();
    for _ in 0..3 {
        let again = alice.client.sync_once().await.unwrap();
        assert!(again.new_messages.values().all(|n| *n == 0), "{again:?}");
    }
    assert_eq!(
        alice.client.messages(room.clone(), 100, None).unwrap(),
        before
    );

    // A fresh device for the same user: an initial sync over a store... and again after reopen.
    drop(alice);
    let alice = ChatClient::new(config(&server.url(), root.path(), "alice")).unwrap();
    alice.sync_once().await.unwrap();
    assert_eq!(alice.messages(room.clone(), 100, None).unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_shows_the_same_history_with_the_server_unreachable() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    for i in 0..10 {
        bob.client
            .send_text(room.clone(), format!("b{i}"))
            .await
            .unwrap();
    }
    bob.client.sync_once().await.unwrap();
    alice
        .client
        .send_text(room.clone(), "from alice".into())
        .await
        .unwrap();
    alice.client.sync_once().await.unwrap();
    let session = alice.client.session().unwrap();
    let history = alice.client.messages(room.clone(), 100, None).unwrap();
    let rooms = alice.client.rooms().unwrap();
    assert_eq!(history.len(), 11);
    drop(alice);
    server.kill().await;

    let reopened = ChatClient::new(config(&server.url(), root.path(), "alice")).unwrap();
    assert_eq!(reopened.session().unwrap(), session);
    assert_eq!(reopened.messages(room.clone(), 100, None).unwrap(), history);
    assert_eq!(reopened.rooms().unwrap(), rooms);
    let report = reopened.sync_once().await.unwrap();
    assert!(!report.online);
    assert_eq!(reopened.network_status(), NetworkStatus::Offline);
    assert_eq!(reopened.messages(room, 100, None).unwrap(), history);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_hear_about_new_messages_and_the_outbox() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    let recorder = Arc::new(Recorder::default());
    let subscription = alice.client.subscribe(recorder.clone());
    let echo = alice
        .client
        .send_text(room.clone(), "hello".into())
        .await
        .unwrap();
    assert_eq!(echo.state, MessageState::Pending);
    alice.client.sync_once().await.unwrap();
    let expect_sent = |events: &[ClientEvent]| {
        events.iter().any(|e| matches!(e, ClientEvent::MessagesChanged { room_id, ids } if *room_id == room && ids.contains(&echo.id) && ids.len() == 2))
            && events.contains(&ClientEvent::OutboxChanged { pending: 0, failed: 0 })
    };
    assert!(
        wait_for(Duration::from_secs(5), || expect_sent(&recorder.snapshot())).await,
        "{:?}",
        recorder.snapshot()
    );
    let events = recorder.snapshot();
    assert!(
        matches!(events[0], ClientEvent::NetworkStatusChanged { .. }),
        "current state first: {events:?}"
    );
    assert!(events.contains(&ClientEvent::OutboxChanged {
        pending: 1,
        failed: 0
    }));
    assert!(events.contains(&ClientEvent::OutboxChanged {
        pending: 0,
        failed: 0
    }));
    subscription.cancel();
    // A second listener proves the next change was emitted and delivered; the cancelled one
    // must not have received it.
    let witness = Arc::new(Recorder::default());
    let _witness_subscription = alice.client.subscribe(witness.clone());
    let unheard = alice
        .client
        .send_text(room.clone(), "unheard".into())
        .await
        .unwrap();
    let mentions_unheard = |events: &[ClientEvent]| {
        events.iter().any(
            |e| matches!(e, ClientEvent::MessagesChanged { ids, .. } if ids.contains(&unheard.id)),
        )
    };
    assert!(
        wait_for(Duration::from_secs(5), || mentions_unheard(
            &witness.snapshot()
        ))
        .await
    );
    assert!(
        !mentions_unheard(&recorder.snapshot()),
        "nothing after cancel"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_messages_show_their_text_and_keep_every_part() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    // Bob's other app sends a multipart message straight through the protocol.
    let token = dev_token(&server, "bob").await;
    let body = r#"{"parts":[{"type":"image/png","url":"https://example.com/a.png","size":42},{"type":"text/plain","content":"look!"}]}"#;
    let (status, answer) = raw_request(
        &server,
        "PUT",
        &format!("/v1/rooms/{room}/messages/txn-1"),
        Some(&token),
        body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    alice.client.sync_once().await.unwrap();
    let shown = alice.client.messages(room.clone(), 10, None).unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].text, "look!");
    assert_eq!(shown[0].parts.len(), 2);
    assert_eq!(shown[0].parts[0].mime_type, "image/png");
    let extra: serde_json::Value =
        serde_json::from_str(shown[0].parts[0].extra_json.as_deref().unwrap()).unwrap();
    assert_eq!(
        extra,
        serde_json::json!({"url": "https://example.com/a.png", "size": 42})
    );
    assert_eq!(shown[0].parts[1].content.as_deref(), Some("look!"));
}
