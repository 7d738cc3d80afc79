//! Chat, not just messages (issue 14), device side, against the real server: edits, deletions,
//! reactions, read receipts and unread counts go through the send queue (offline too) and reach
//! every device; queued changes coalesce instead of going out twice; typing is ephemeral; a
//! message that reached the server before its device recorded it shows once.

use std::sync::Arc;
use std::time::Duration;

use chatsync_core::{ChangeKind, ChatClient, ChatError, ChatMessage, ClientEvent, MessageState};

use crate::common::*;

fn find<'a>(messages: &'a [ChatMessage], text: &str) -> &'a ChatMessage {
    messages
        .iter()
        .find(|m| m.text == text)
        .unwrap_or_else(|| panic!("{text:?} not in {messages:?}"))
}

/// Alice and bob in their direct room, both synced.
async fn pair(server: &TestServer, root: &std::path::Path) -> (Device, Device, String) {
    let (alice, room) = device_with_room(server, root, "alice", "bob").await;
    let (bob, _) = device_with_room(server, root, "bob", "alice").await;
    (alice, bob, room)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletions_and_reactions_reach_the_other_device() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, bob, room) = pair(&server, root.path()).await;
    let hello = alice.client.send_text(room.clone(), "hello".into()).await.unwrap();
    alice.client.send_text(room.clone(), "bye".into()).await.unwrap();
    alice.client.sync_once().await.unwrap();
    bob.client.sync_once().await.unwrap();
    let timeline = bob.client.timeline(room.clone()).unwrap();
    let bye_id = find(&bob.client.messages(room.clone(), 10, None).unwrap(), "bye")
        .id
        .clone();

    // Alice edits "hello" and deletes "bye"; bob reacts to "hello".
    alice
        .client
        .edit_message(room.clone(), hello.id.clone(), "hello, edited".into())
        .await
        .unwrap();
    let shown = alice.client.messages(room.clone(), 10, None).unwrap();
    assert!(find(&shown, "hello, edited").pending_change, "the edit shows at once");
    let bye_for_alice = find(&shown, "bye").id.clone();
    alice
        .client
        .delete_message(room.clone(), bye_for_alice)
        .await
        .unwrap();
    assert_eq!(alice.client.sync_once().await.unwrap().pending, 0);
    bob.client.sync_once().await.unwrap();
    let hello_for_bob = find(&bob.client.messages(room.clone(), 10, None).unwrap(), "hello, edited")
        .id
        .clone();
    assert!(bob
        .client
        .toggle_reaction(room.clone(), hello_for_bob.clone(), "👍".into())
        .await
        .unwrap());
    bob.client.sync_once().await.unwrap();
    alice.client.sync_once().await.unwrap();

    let for_bob = bob.client.messages(room.clone(), 10, None).unwrap();
    let edited = find(&for_bob, "hello, edited");
    assert!(edited.edited_at.is_some() && !edited.pending_change, "{edited:?}");
    assert_eq!((edited.reactions[0].count, edited.reactions[0].me), (1, true));
    let tomb = for_bob.iter().find(|m| m.id == bye_id).unwrap();
    assert!(tomb.deleted && tomb.text.is_empty(), "{tomb:?}");
    let for_alice = alice.client.messages(room.clone(), 10, None).unwrap();
    let r = &find(&for_alice, "hello, edited").reactions[0];
    assert_eq!((r.key.as_str(), r.count, r.me), ("👍", 1, false));
    // Bob's timeline followed with diffs: the tombstone and the edit in place.
    assert!(wait_for(Duration::from_secs(5), || timeline
        .items()
        .iter()
        .any(|m| m.id == bye_id && m.deleted))
    .await);
    // Toggling again removes the reaction.
    assert!(!bob
        .client
        .toggle_reaction(room.clone(), hello_for_bob, "👍".into())
        .await
        .unwrap());
    bob.client.sync_once().await.unwrap();
    alice.client.sync_once().await.unwrap();
    assert!(find(&alice.client.messages(room.clone(), 10, None).unwrap(), "hello, edited")
        .reactions
        .is_empty());

    // Only the sender edits or deletes (refused on the device, nothing queued).
    let e = bob
        .client
        .edit_message(room.clone(), edited.id.clone(), "not mine".into())
        .await
        .unwrap_err();
    assert!(matches!(e, ChatError::InvalidInput(_)), "{e:?}");
    assert!(bob.client.outbox().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_changes_to_a_queued_message_coalesce_and_nothing_goes_out_twice() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, bob, room) = pair(&server, root.path()).await;
    let sent = alice.client.send_text(room.clone(), "on the server".into()).await.unwrap();
    alice.client.sync_once().await.unwrap();
    server.kill().await;

    // A send edited while queued goes out once, with the new text.
    let draft = alice.client.send_text(room.clone(), "typo".into()).await.unwrap();
    alice
        .client
        .edit_message(room.clone(), draft.id.clone(), "fixed".into())
        .await
        .unwrap();
    // A send deleted while queued never goes out.
    let oops = alice.client.send_text(room.clone(), "oops".into()).await.unwrap();
    alice.client.delete_message(room.clone(), oops.id.clone()).await.unwrap();
    // A reaction toggled on and off sends nothing.
    alice
        .client
        .toggle_reaction(room.clone(), sent.id.clone(), "🎉".into())
        .await
        .unwrap();
    alice
        .client
        .toggle_reaction(room.clone(), sent.id.clone(), "🎉".into())
        .await
        .unwrap();
    // Two edits of a sent message: one edit goes out, the last one.
    for text in ["first try", "second try"] {
        alice
            .client
            .edit_message(room.clone(), sent.id.clone(), text.into())
            .await
            .unwrap();
    }
    let outbox = alice.client.outbox().unwrap();
    let kinds: Vec<(ChangeKind, String)> = outbox.iter().map(|e| (e.kind, e.text.clone())).collect();
    assert_eq!(
        kinds,
        [
            (ChangeKind::Send, "fixed".to_owned()),
            (ChangeKind::Edit, "second try".to_owned())
        ]
    );

    server.restart().await;
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!((report.sent, report.pending, report.failed), (2, 0, 0), "{report:?}");
    bob.client.sync_once().await.unwrap();
    let texts = texts(&bob.client.messages(room.clone(), 20, None).unwrap());
    assert_eq!(texts, ["fixed", "second try"], "bob sees each once: {texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_move_unread_counts_on_every_device_of_the_user() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, bob, room) = pair(&server, root.path()).await;
    // Alice's second device.
    let mut c = config(&server.url(), root.path(), "alice");
    c.data_dir = root.path().join("alice-tablet");
    let tablet = ChatClient::new(c).unwrap();
    tablet.login("Alice".into(), None).await.unwrap();

    for i in 0..3 {
        bob.client.send_text(room.clone(), format!("b{i}")).await.unwrap();
    }
    bob.client.sync_once().await.unwrap();
    alice.client.sync_once().await.unwrap();
    tablet.sync_once().await.unwrap();
    let unread = |client: &ChatClient| {
        client
            .rooms()
            .unwrap()
            .into_iter()
            .find(|r| r.id == room)
            .map(|r| r.unread)
    };
    assert_eq!(unread(&alice.client), Some(3));
    assert_eq!(unread(&tablet), Some(3));
    assert_eq!(alice.client.unread_total().unwrap(), 3);

    let recorder = Arc::new(Recorder::default());
    let _sub = alice.client.subscribe(recorder.clone());
    alice.client.mark_read(room.clone()).await.unwrap();
    assert_eq!(unread(&alice.client), Some(0), "read at once on this device");
    alice.client.mark_read(room.clone()).await.unwrap();
    let receipts = alice
        .client
        .outbox()
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == ChangeKind::Receipt)
        .count();
    assert!(receipts <= 1, "receipts coalesce");
    alice.client.sync_once().await.unwrap();
    tablet.sync_once().await.unwrap();
    assert_eq!(unread(&tablet), Some(0), "the other device agrees");
    assert!(
        wait_for(Duration::from_secs(5), || recorder
            .snapshot()
            .contains(&ClientEvent::UnreadChanged { total: 0 }))
        .await
    );
    // Bob sees that alice read his messages.
    bob.client.sync_once().await.unwrap();
    let newest = &bob.client.messages(room.clone(), 1, None).unwrap()[0];
    assert_eq!(newest.read_by, ["alice"], "{newest:?}");
    // Notifications skip what was read on another device.
    bob.client.send_text(room.clone(), "new".into()).await.unwrap();
    bob.client.sync_once().await.unwrap();
    let report = tablet.background_sync(10_000).await;
    let previews: Vec<&str> = report.new_messages.iter().map(|p| p.preview.as_str()).collect();
    assert_eq!(previews, ["new"], "{report:?}");
}

/// The known v1 flaw: killed between the server's accept and its own record, a device showed
/// its message twice (the pending echo and the synced copy) until the resend. v2 carries the
/// txn id back in sync: the device recognises its message and shows it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_reached_the_server_before_its_device_recorded_it_shows_once() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, _bob, room) = pair(&server, root.path()).await;
    server.kill().await;
    let echo = alice.client.send_text(room.clone(), "once".into()).await.unwrap();
    server.restart().await;
    // The device's PUT reached the server; its answer never came back.
    let token = dev_token(&server, "alice").await;
    let (status, body) = raw_request(
        &server,
        "PUT",
        &format!("/v2/rooms/{room}/messages/{}", echo.id),
        Some(&token),
        r#"{"parts":[{"type":"text/plain","content":"once"}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A sync alone (no flush) brings the message back with its txn id.
    let timeline = alice.client.timeline(room.clone()).unwrap();
    alice.client.set_network_reachable(true);
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!(report.pending, 0, "{report:?}");
    let shown = alice.client.messages(room.clone(), 10, None).unwrap();
    let copies: Vec<&ChatMessage> = shown.iter().filter(|m| m.text == "once").collect();
    assert_eq!(copies.len(), 1, "{shown:?}");
    assert_eq!(copies[0].state, MessageState::Sent);
    assert_eq!(copies[0].id, echo.id, "same id from echo to sent");
    assert!(wait_for(Duration::from_secs(5), || timeline
        .items()
        .iter()
        .filter(|m| m.text == "once")
        .count()
        == 1)
    .await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_announced_ephemeral_and_rate_limited() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, bob, room) = pair(&server, root.path()).await;
    let recorder = Arc::new(Recorder::default());
    let _sub = bob.client.subscribe(recorder.clone());
    alice.client.set_typing(room.clone(), true).await.unwrap();
    bob.client.sync_once().await.unwrap();
    assert_eq!(bob.client.typing(room.clone()).unwrap(), ["alice"]);
    assert!(
        wait_for(Duration::from_secs(5), || recorder.snapshot().contains(
            &ClientEvent::TypingChanged {
                room_id: room.clone(),
                user_ids: vec!["alice".into()]
            }
        ))
        .await
    );
    // Faster than once a second: refused by the server, said so.
    match alice.client.set_typing(room.clone(), true).await {
        Err(ChatError::Unavailable { status: 429, .. }) => {}
        other => panic!("expected a 429, got {other:?}"),
    }
    // Stopping is announced too; nothing was queued.
    assert!(alice.client.outbox().unwrap().is_empty());
}

/// A queued send or change whose request reached the server but whose answer was lost (a
/// gateway's 504 after the backend committed; or a kill mid-request) is not rewritten or
/// cancelled in place, even after a restart: the server answers a repeated txn id with what it
/// did the first time, so an edit written into the send would be lost and a reaction
/// "cancelled" would stay on. The change follows it as a new entry instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_to_an_entry_the_server_may_have_seen_follow_it_instead_of_rewriting_it() {
    let server = TestServer::start().await;
    let gateway = LossyGateway::start(server.addr, "/messages/").await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) =
        device_with_config(config(&gateway.url(), root.path(), "alice"), "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    let sent = alice.client.send_text(room.clone(), "on the server".into()).await.unwrap();
    alice.client.sync_once().await.unwrap();

    // A send whose answer is lost, then the app restarts and the user edits it.
    gateway.lose_next(1);
    let draft = alice.client.send_text(room.clone(), "original".into()).await.unwrap();
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!(report.pending, 1, "the answer was lost: still queued: {report:?}");
    alice.client.shutdown();
    drop(alice);
    let alice = ChatClient::new(config(&gateway.url(), root.path(), "alice")).unwrap();
    alice
        .edit_message(room.clone(), draft.id.clone(), "edited after a lost answer".into())
        .await
        .unwrap();
    let shown = alice.messages(room.clone(), 5, None).unwrap();
    assert_eq!(shown[0].text, "edited after a lost answer", "shown at once: {shown:?}");

    // A reaction whose answer is lost, then taken back.
    gateway.lose_next(1);
    alice
        .toggle_reaction(room.clone(), sent.id.clone(), "👍".into())
        .await
        .unwrap();
    let report = alice.sync_once().await.unwrap();
    assert!(report.pending >= 1, "{report:?}");
    let on = alice
        .toggle_reaction(room.clone(), sent.id.clone(), "👍".into())
        .await
        .unwrap();
    assert!(!on, "the reaction is off on the screen");
    let report = alice.sync_once().await.unwrap();
    assert_eq!((report.pending, report.failed), (0, 0), "{report:?}");

    bob.client.sync_once().await.unwrap();
    let seen = bob.client.messages(room.clone(), 20, None).unwrap();
    assert_eq!(
        texts(&seen),
        ["edited after a lost answer", "on the server"],
        "the edit reached the server, the message is there once"
    );
    let on_server = seen.iter().find(|m| m.text == "on the server").unwrap();
    assert!(on_server.reactions.is_empty(), "the reaction was taken back: {on_server:?}");
    alice.sync_once().await.unwrap();
    let mine = alice.messages(room.clone(), 20, None).unwrap();
    assert_eq!(texts(&mine), texts(&seen), "alice's device agrees");
    assert!(mine.iter().all(|m| m.reactions.is_empty()), "{mine:?}");
}

/// A send the server refused (4xx) was not acted on: editing it before a retry rewrites it in
/// place, one entry, not a send plus an edit of a message that does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_send_edited_before_its_retry_is_rewritten_in_place() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, _room) = device_with_room(&server, root.path(), "alice", "bob").await;
    let nowhere = "r-no-such-room".to_owned();
    let draft = alice.client.send_text(nowhere.clone(), "typo".into()).await.unwrap();
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!(report.failed, 1, "refused: {report:?}");
    alice
        .client
        .edit_message(nowhere.clone(), draft.id.clone(), "fixed".into())
        .await
        .unwrap();
    let outbox = alice.client.outbox().unwrap();
    let entries: Vec<(ChangeKind, String)> = outbox.iter().map(|e| (e.kind, e.text.clone())).collect();
    assert_eq!(entries, [(ChangeKind::Send, "fixed".to_owned())], "{outbox:?}");
}

/// A send whose answer was lost is completed by the next sync (its message comes back with its
/// txn id) rather than by its own retry: the edit queued about it by local id still finds it
/// and goes out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_a_send_completed_by_a_sync_still_goes_out() {
    let server = TestServer::start().await;
    let gateway = LossyGateway::start(server.addr, "/messages/").await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) =
        device_with_config(config(&gateway.url(), root.path(), "alice"), "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    alice.client.sync_once().await.unwrap();

    gateway.lose_next(1);
    let draft = alice.client.send_text(room.clone(), "orig".into()).await.unwrap();
    assert_eq!(alice.client.sync_once().await.unwrap().pending, 1);
    alice
        .client
        .edit_message(room.clone(), draft.id.clone(), "edited".into())
        .await
        .unwrap();
    let kinds: Vec<ChangeKind> = alice.client.outbox().unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [ChangeKind::Send, ChangeKind::Edit], "the edit follows the send");

    // The next sync brings the message with its txn id: the send completes there.
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!((report.pending, report.failed), (0, 0), "{report:?}");
    bob.client.sync_once().await.unwrap();
    let seen = texts(&bob.client.messages(room.clone(), 5, None).unwrap());
    assert_eq!(seen, ["edited"], "{seen:?}");
}

/// A failed edit is superseded by a newer edit of the same message: retrying failed entries
/// afterwards must not bring the older text back over the newer one (found by the crash
/// torture: a retried failed edit landed after the newer one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_edit_supersedes_a_failed_one_and_a_retry_cannot_bring_it_back() {
    let server = TestServer::start().await;
    let gateway = LossyGateway::start(server.addr, "/edits/").await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) =
        device_with_config(config(&gateway.url(), root.path(), "alice"), "bob").await;
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    let sent = alice.client.send_text(room.clone(), "orig".into()).await.unwrap();
    alice.client.sync_once().await.unwrap();

    gateway.refuse_next(1);
    alice
        .client
        .edit_message(room.clone(), sent.id.clone(), "first".into())
        .await
        .unwrap();
    assert_eq!(alice.client.sync_once().await.unwrap().failed, 1, "the first edit is refused");
    alice
        .client
        .edit_message(room.clone(), sent.id.clone(), "second".into())
        .await
        .unwrap();
    alice.client.sync_once().await.unwrap();
    // What an app's "retry failed" button does.
    for entry in alice.client.outbox().unwrap() {
        if entry.state == MessageState::Failed {
            alice.client.retry(entry.local_id).await.unwrap();
        }
    }
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!((report.pending, report.failed), (0, 0), "{report:?}");
    bob.client.sync_once().await.unwrap();
    let seen = texts(&bob.client.messages(room.clone(), 5, None).unwrap());
    assert_eq!(seen, ["second"], "{seen:?}");
}

/// A deletion queued behind a reaction does not take the reaction with it: when the app then
/// discards the deletion, the message stays and the reaction the user was told was queued lands
/// (found by the crash torture: the reaction was dropped with the deletion's queueing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_deletion_leaves_the_changes_queued_before_it() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, bob, room) = pair(&server, root.path()).await;
    let sent = alice.client.send_text(room.clone(), "keep me".into()).await.unwrap();
    alice.client.sync_once().await.unwrap();
    server.kill().await;
    alice
        .client
        .toggle_reaction(room.clone(), sent.id.clone(), "🎯".into())
        .await
        .unwrap();
    alice.client.delete_message(room.clone(), sent.id.clone()).await.unwrap();
    let deletion = alice
        .client
        .outbox()
        .unwrap()
        .into_iter()
        .find(|e| e.kind == ChangeKind::Delete)
        .unwrap();
    alice.client.discard(deletion.local_id).await.unwrap();
    server.restart().await;
    let report = alice.client.sync_once().await.unwrap();
    assert_eq!((report.pending, report.failed), (0, 0), "{report:?}");
    bob.client.sync_once().await.unwrap();
    let seen = bob.client.messages(room.clone(), 5, None).unwrap();
    let kept = seen.iter().find(|m| m.text == "keep me").expect("not deleted");
    let keys: Vec<&str> = kept.reactions.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["🎯"], "{kept:?}");
}
