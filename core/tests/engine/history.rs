//! Reading history through a timeline: it shows what the store holds at once, pages backwards
//! from its own anchor (the store first, then the server), and never repeats a page, whatever
//! else reads the room; the per-room cap evicts the oldest and scrolling fetches them again.

use chatsync_core::{ChatClient, ChatMessage};

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

/// Texts "m{lo}".."m{hi-1}", oldest first (a timeline's order).
fn oldest_first(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("m{i:03}")).collect()
}

/// Texts newest first (`messages`' order).
fn expected(range: std::ops::Range<usize>) -> Vec<String> {
    range.rev().map(|i| format!("m{i:03}")).collect()
}

fn items_text(items: &[ChatMessage]) -> Vec<String> {
    items.iter().map(|m| m.text.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeline_pages_back_from_the_store_first_then_the_server() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (bob, room) = device_with_room(&server, root.path(), "bob", "alice").await;
    bob_sends(&bob, &room, 60).await;

    let mut cfg = config(&server.url(), root.path(), "alice");
    cfg.page_size = 20; // initial sync: the newest 20, limited; a timeline shows 20 at first
    let (alice, _) = device_with_config(cfg, "bob").await;
    alice.client.sync_once().await.unwrap();
    let timeline = alice.client.timeline(room.clone()).unwrap();
    assert_eq!(items_text(&timeline.items()), oldest_first(40..60));

    // Nothing older is held: the server, page by page, with an exact has_more.
    let page = timeline.paginate_backwards(25).await.unwrap();
    assert_eq!((page.added, page.has_more), (25, true));
    assert_eq!(items_text(&timeline.items()), oldest_first(15..60));
    let page = timeline.paginate_backwards(25).await.unwrap();
    assert_eq!(
        (page.added, page.has_more),
        (15, false),
        "has_more is exact at the start"
    );
    let page = timeline.paginate_backwards(25).await.unwrap();
    assert_eq!((page.added, page.has_more), (0, false));
    assert_eq!(items_text(&timeline.items()), oldest_first(0..60));
    drop(timeline);

    // Everything fetched is held: offline, a new timeline pages back from the store alone.
    drop(alice);
    server.kill().await;
    let mut cfg = config(&server.url(), root.path(), "alice");
    cfg.page_size = 20;
    let alice = ChatClient::new(cfg).unwrap();
    let timeline = alice.timeline(room.clone()).unwrap();
    assert_eq!(items_text(&timeline.items()), oldest_first(40..60));
    let page = timeline.paginate_backwards(30).await.unwrap();
    assert_eq!((page.added, page.has_more), (30, true));
    let page = timeline.paginate_backwards(30).await.unwrap();
    assert_eq!((page.added, page.has_more), (10, false));
    assert_eq!(
        texts(&alice.messages(room.clone(), 100, None).unwrap()),
        expected(0..60)
    );
}

/// Issue 13's "load earlier repeats itself": `messages(50)`, `load_older(50)`, `messages(50)`,
/// `load_older(50)` returned the same 50 twice, because `messages` moved the cursor
/// `load_older` continued from. Reads are pure now and a timeline pages from its own anchor:
/// the same sequence, with re-reads and a new message in between, never repeats a page, and two
/// timelines of one room do not disturb each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_earlier_after_a_refresh_never_repeats_a_page() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (bob, room) = device_with_room(&server, root.path(), "bob", "alice").await;
    bob_sends(&bob, &room, 200).await;
    let mut cfg = config(&server.url(), root.path(), "alice");
    cfg.page_size = 50;
    let (alice, _) = device_with_config(cfg, "bob").await;
    alice.client.sync_once().await.unwrap();

    let screen = alice.client.timeline(room.clone()).unwrap();
    let other = alice.client.timeline(room.clone()).unwrap();
    assert_eq!(items_text(&screen.items()), oldest_first(150..200));
    // The README's old render loop re-read the newest 50 on every change.
    let newest = texts(&alice.client.messages(room.clone(), 50, None).unwrap());
    assert_eq!(newest, expected(150..200));
    screen.paginate_backwards(50).await.unwrap();
    assert_eq!(items_text(&screen.items()), oldest_first(100..200));
    // Read again, and a new message arrives in between.
    assert_eq!(
        texts(&alice.client.messages(room.clone(), 50, None).unwrap()),
        newest,
        "a read changes nothing"
    );
    bob.client
        .send_text(room.clone(), "new".into())
        .await
        .unwrap();
    bob.client.sync_once().await.unwrap();
    alice.client.sync_once().await.unwrap();
    let page = screen.paginate_backwards(50).await.unwrap();
    assert_eq!(page.added, 50, "{page:?}");
    let mut shown = items_text(&screen.items());
    assert_eq!(shown.pop().as_deref(), Some("new"));
    assert_eq!(
        shown,
        oldest_first(50..200),
        "the earlier page, not the same one again"
    );
    // The other timeline of the room kept its own window.
    assert!(
        wait_for(std::time::Duration::from_secs(5), || items_text(
            &other.items()
        )
        .last()
        .map(String::as_str)
            == Some("new"))
        .await
    );
    let mut others = items_text(&other.items());
    others.pop();
    assert_eq!(others, oldest_first(150..200));
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
    let all = scroll_to_start(&alice.client, &room).await;
    let mut whole = expected(0..10);
    whole.extend(expected(0..30));
    assert_eq!(texts(&all), whole);
}
