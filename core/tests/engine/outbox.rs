//! The durable outbox against the real server: offline sends, permanent rejections, ordering.

use chatsync_core::{ChatClient, ChatError, MessageState};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_sent_while_the_server_is_down_is_delivered_exactly_once() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    server.kill().await;

    let echo = alice
        .client
        .send_text(room.clone(), "while down".into())
        .await
        .unwrap();
    assert_eq!(echo.state, MessageState::Pending);
    assert_eq!(echo.id, echo.local_id.clone().unwrap());
    let report = alice.client.sync_once().await.unwrap();
    assert!(!report.online);
    assert_eq!(report.pending, 1);
    assert_eq!(
        texts(&alice.client.messages(room.clone(), 10, None).unwrap()),
        vec!["while down"]
    );

    server.restart().await;
    let report = alice.client.sync_once().await.unwrap();
    assert!(report.online);
    assert_eq!((report.sent, report.pending, report.failed), (1, 0, 0));
    // Syncing again (the server echoes the message back) changes nothing.
    alice.client.sync_once().await.unwrap();
    let shown = alice.client.messages(room.clone(), 10, None).unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].state, MessageState::Sent);
    assert_eq!(shown[0].local_id.as_deref(), Some(echo.id.as_str()));

    bob.client.sync_once().await.unwrap();
    let at_bob = bob.client.messages(room.clone(), 10, None).unwrap();
    assert_eq!(
        texts(&at_bob),
        vec!["while down"],
        "exactly once on the server"
    );
    assert_eq!(at_bob[0].server_id, shown[0].server_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_message_fails_with_the_servers_reason_and_holds_back_its_room() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    // A room alice is not in: the server refuses for good.
    let (carol, other_room) = device_with_room(&server, root.path(), "carol", "dave").await;
    drop(carol);

    let doomed = alice
        .client
        .send_text(other_room.clone(), "not yours".into())
        .await
        .unwrap();
    let held_back = alice
        .client
        .send_text(other_room.clone(), "after it".into())
        .await
        .unwrap();
    let elsewhere = alice
        .client
        .send_text(room.clone(), "other room".into())
        .await
        .unwrap();
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!((report.sent, report.pending, report.failed), (1, 1, 1));

    let outbox = alice.client.outbox().unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].local_id, doomed.id);
    assert_eq!(outbox[0].state, MessageState::Failed);
    let reason = outbox[0].failure_reason.clone().unwrap();
    assert!(!reason.is_empty());
    assert_eq!(outbox[1].local_id, held_back.id);
    assert_eq!(
        outbox[1].state,
        MessageState::Pending,
        "a later message never overtakes a failed one"
    );
    assert_eq!(outbox[1].attempts, 0, "it was not even tried");
    let echoes = alice.client.messages(other_room.clone(), 10, None).unwrap();
    assert_eq!(texts(&echoes), vec!["after it", "not yours"]);
    assert!(
        echoes[1].state == MessageState::Failed
            && echoes[1].failure_reason.as_deref() == Some(reason.as_str())
    );
    assert!(alice
        .client
        .messages(room.clone(), 10, None)
        .unwrap()
        .iter()
        .any(|m| m.local_id.as_deref() == Some(elsewhere.id.as_str())
            && m.state == MessageState::Sent));

    // Retry: fails again (still not a member), still blocking.
    alice.client.retry(doomed.id.clone()).await.unwrap();
    alice.client.sync_once().await.unwrap();
    assert_eq!(
        alice.client.outbox().unwrap()[0].state,
        MessageState::Failed
    );
    assert_eq!(alice.client.outbox().unwrap()[0].attempts, 2);
    // Discard it: the next one goes (and fails on its own).
    alice.client.discard(doomed.id.clone()).await.unwrap();
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!(report.failed, 1);
    let outbox = alice.client.outbox().unwrap();
    assert_eq!(outbox.len(), 1);
    assert_eq!(outbox[0].local_id, held_back.id);
    assert_eq!(
        alice.client.discard("no-such-id".into()).await,
        Err(ChatError::NotFound("no queued message no-such-id".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_stored() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    assert!(matches!(
        alice.client.send_text(room.clone(), "   ".into()).await,
        Err(ChatError::InvalidInput(_))
    ));
    let huge = "x".repeat(chatsync_protocol::MAX_TEXT_PART_BYTES + 1);
    assert!(matches!(
        alice.client.send_text(room.clone(), huge).await,
        Err(ChatError::InvalidInput(_))
    ));
    assert!(matches!(
        alice.client.send_text(String::new(), "hi".into()).await,
        Err(ChatError::InvalidInput(_))
    ));
    assert!(matches!(
        alice.client.messages(room.clone(), 0, None),
        Err(ChatError::InvalidInput(_))
    ));
    assert!(alice.client.outbox().unwrap().is_empty());

    let insecure = config("http://chat.example.com", root.path(), "eve");
    assert!(matches!(
        ChatClient::new(insecure),
        Err(ChatError::InvalidInput(_))
    ));
    assert!(
        !root.path().join("eve").exists(),
        "a refused config creates no store"
    );
    let mut allowed = config("http://chat.example.com", root.path(), "eve");
    allowed.allow_insecure_http = true;
    assert!(ChatClient::new(allowed).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_syncs_and_sends_deliver_each_message_once_in_order() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    let syncing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let mut syncers = Vec::new();
    for _ in 0..3 {
        let client = alice.client.clone();
        let syncing = syncing.clone();
        syncers.push(tokio::spawn(async move {
            while syncing.load(std::sync::atomic::Ordering::Relaxed) {
                client.sync_once().await.unwrap();
            }
        }));
    }
    for i in 0..40 {
        alice
            .client
            .send_text(room.clone(), format!("c{i:02}"))
            .await
            .unwrap();
    }
    syncing.store(false, std::sync::atomic::Ordering::Relaxed);
    for s in syncers {
        s.await.unwrap();
    }
    alice.client.sync_once().await.unwrap();
    assert!(alice.client.outbox().unwrap().is_empty());

    bob.client.sync_once().await.unwrap();
    let expected: Vec<String> = (0..40).rev().map(|i| format!("c{i:02}")).collect();
    let at_bob = bob.client.messages(room.clone(), 100, None).unwrap();
    assert_eq!(
        texts(&at_bob),
        expected,
        "each once, in send order (server ids follow the queue)"
    );
    assert_eq!(
        texts(&alice.client.messages(room.clone(), 100, None).unwrap()),
        expected
    );
}
