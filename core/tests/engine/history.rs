//! Reading history: store first, then the server; the per-room cap evicts the oldest and
//! scrolling fetches them again.

use chatsync_core::ChatClient;

use crate::common::*;

/// Bob sends `n` messages "m000".. into the room and flushes.
async fn bob_sends(bob: &Device, room: &str, n: usize) {
    for i in 0..n {
        bob.client
            .send_text(room.to_owned(), format!("m{i:03}"))
            .await
            .unwrap();
    }
    assert_eq!(bob.client.sync_once().await.unwrap().sent as usize, n);
}

fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.rev().map(|i| format!("m{i:03}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_older_reads_the_store_first_then_the_server() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (bob, room) = device_with_room(&server, root.path(), "bob", "alice").await;
    bob_sends(&bob, &room, 60).await;

    let mut cfg = config(&server.url(), root.path(), "alice");
    cfg.page_size = 20; // initial sync: the newest 20, limited
    let (alice, _) = device_with_config(cfg, "bob").await;
    alice.client.sync_once().await.unwrap();
    assert_eq!(
        texts(&alice.client.messages(room.clone(), 50, None).unwrap()),
        expected(40..60)
    );
    assert_eq!(
        texts(&alice.client.messages(room.clone(), 10, None).unwrap()),
        expected(50..60)
    );

    // Store first: the 10 below the screen are held.
    let page = alice.client.load_older(room.clone(), 10).await.unwrap();
    assert_eq!(texts(&page.messages), expected(40..50));
    assert!(page.has_more);
    // Then the server.
    let page = alice.client.load_older(room.clone(), 25).await.unwrap();
    assert_eq!(texts(&page.messages), expected(15..40));
    assert!(page.has_more);
    let page = alice.client.load_older(room.clone(), 25).await.unwrap();
    assert_eq!(texts(&page.messages), expected(0..15));
    assert!(!page.has_more, "has_more is exact at the start of history");
    let page = alice.client.load_older(room.clone(), 25).await.unwrap();
    assert!(page.messages.is_empty() && !page.has_more);

    // Everything fetched is held: offline, the whole history reads from the store.
    drop(alice);
    server.kill().await;
    let alice = ChatClient::new(config(&server.url(), root.path(), "alice")).unwrap();
    assert_eq!(
        texts(&alice.messages(room.clone(), 100, None).unwrap()),
        expected(0..60)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_room_cap_evicts_the_oldest_and_scrolling_fetches_them_again() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (bob, room) = device_with_room(&server, root.path(), "bob", "alice").await;
    bob_sends(&bob, &room, 30).await;

    let mut cfg = config(&server.url(), root.path(), "alice");
    cfg.max_messages_per_room = 25;
    let (alice, _) = device_with_config(cfg, "bob").await;
    alice.client.sync_once().await.unwrap();
    assert_eq!(
        texts(&alice.client.messages(room.clone(), 100, None).unwrap()),
        expected(5..30)
    );
    bob_sends(&bob, &room, 10).await; // m000..m009 again as texts, newer ids
    alice.client.sync_once().await.unwrap();
    let shown = alice.client.messages(room.clone(), 100, None).unwrap();
    assert_eq!(shown.len(), 25, "capped");
    let mut newest: Vec<String> = expected(0..10);
    newest.extend(expected(15..30));
    assert_eq!(texts(&shown), newest);

    // Scrolling below the cap goes back to the server.
    let page = alice.client.load_older(room.clone(), 100).await.unwrap();
    assert_eq!(texts(&page.messages), expected(0..15));
    assert!(!page.has_more);
}
