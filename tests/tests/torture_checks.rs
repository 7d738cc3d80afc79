//! The torture's per-kill checks can fail: each broken promise, staged for real on a server and
//! a device store, is reported by `torture::check_store` and the server `Mirror` (so a green
//! torture means the promises held, not that the checks looked away). The same for the checks
//! of chat-model changes (protocol v2), per life and at the end (`torture::check_changes`).

use chatsync_server::ServerConfig;
use chatsync_tests::http::Harness;
use chatsync_tests::soak::{self, DeviceStore, Queued};
use chatsync_tests::torture::{
    check_changes, check_store, ChangeMade, ChangeOp, Discard, Ledger, Mirror, ServerView,
};
use serde_json::json;
use std::collections::HashSet;

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
    let mut mirror = Mirror::new(&url, &[(room.clone(), vec!["alice".into(), "bob".into()])])
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

/// Changes the device was told it made, then the server's state changed behind its back (as
/// the sender on another connection): the per-life check and the final check both report the
/// acknowledged edit and reaction that are no longer there, the deletion that never happened
/// and a read receipt below what the app marked read; a discarded change is excused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lost_change_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let server = chatsync_server::start(ServerConfig::for_tests(dir.path().join("s.db")))
        .await
        .unwrap();
    let url = server.url();
    let h = Harness::new(url.clone());
    let alice = h.token("alice").await.unwrap();
    let bob = h.token("bob").await.unwrap();
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
    let mut mirror = Mirror::new(&url, &[(room.clone(), vec!["alice".into(), "bob".into()])])
        .await
        .unwrap();
    let client = soak::open_store(&url, &store).unwrap();
    client.login("Alice".into(), None).await.unwrap();
    put(&url, &bob, &room, "b1", "bob/1/0").await;
    let echo = client
        .send_text(room.clone(), "alice/1/0".into())
        .await
        .unwrap();
    let mine = echo.local_id.clone().unwrap();
    let kept = client
        .send_text(room.clone(), "alice/1/1".into())
        .await
        .unwrap()
        .local_id
        .unwrap();
    client.sync_once().await.unwrap();
    let bobs = client.messages(room.clone(), 10, None).unwrap();
    let bobs = bobs.iter().find(|m| m.sender.id == "bob").unwrap();
    let bobs_id = bobs.server_id.unwrap();

    // The app is told: an edit, a reaction (a new key), a deletion, the room read.
    client
        .edit_message(room.clone(), mine.clone(), "alice/1/edit1".into())
        .await
        .unwrap();
    assert!(client
        .toggle_reaction(room.clone(), bobs.id.clone(), "alice.1.2".into())
        .await
        .unwrap());
    client
        .delete_message(room.clone(), kept.clone())
        .await
        .unwrap();
    client.mark_read(room.clone()).await.unwrap();
    drop(client);
    let change = |op: ChangeOp| ChangeMade {
        room: room.clone(),
        op,
        acked: true,
        now_on: true,
    };
    let mut ledger = Ledger::default();
    ledger.queued.push((
        mine.clone(),
        Queued {
            user: "alice".into(),
            room: room.clone(),
            local_id: mine.clone(),
            text: "alice/1/0".into(),
        },
    ));
    ledger.changes = vec![
        change(ChangeOp::Edit {
            target: mine.clone(),
            text: "alice/1/edit1".into(),
        }),
        change(ChangeOp::React {
            target: bobs_id.to_string(),
            key: "alice.1.2".into(),
        }),
        change(ChangeOp::Delete {
            target: kept.clone(),
        }),
        change(ChangeOp::Read { upto: bobs_id }),
    ];
    // Still queued: kept.
    let found = check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert!(found.changes_lost.is_empty(), "{found:?}");
    // Landed: kept.
    soak::open_store(&url, &store)
        .unwrap()
        .sync_once()
        .await
        .unwrap();
    let found = check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert!(found.changes_lost.is_empty(), "{found:?}");

    // Behind the store's back, as alice elsewhere: another text, the reaction taken back.
    let (_, mine_id) = mirror.sent_as("alice", &mine).cloned().unwrap();
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{url}/v2/rooms/{room}/messages/{mine_id}/edits/x1"))
        .bearer_auth(&alice)
        .json(&json!({"parts": [{"type": "text/plain", "content": "alice/1/tampered"}]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = http
        .put(format!(
            "{url}/v2/rooms/{room}/messages/{bobs_id}/reactions/x2"
        ))
        .bearer_auth(&alice)
        .json(&json!({"key": "alice.1.2", "on": false}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    // And the app "marked read" up to a message it never had, and "deleted" one still there.
    put(&url, &bob, &room, "b2", "bob/1/1").await;
    mirror.refresh().await.unwrap();
    let later = bobs_id + 10;
    put(&url, &alice, &room, "a9", "alice/1/9").await;
    ledger.queued.push((
        "a9".into(),
        Queued {
            user: "alice".into(),
            room: room.clone(),
            local_id: "a9".into(),
            text: "alice/1/9".into(),
        },
    ));
    ledger.changes.push(change(ChangeOp::Read { upto: later }));
    ledger.changes.push(change(ChangeOp::Delete {
        target: "a9".into(),
    }));
    let found = check_store(&url, &store, &ledger, &mut mirror)
        .await
        .unwrap();
    assert_eq!(found.changes_lost.len(), 4, "{:#?}", found.changes_lost);
    for (lost, what) in found
        .changes_lost
        .iter()
        .zip(["edit", "react", "read", "delete"])
    {
        assert!(lost.contains(&format!(": {what} in room")), "{lost}");
    }
    // The final check (whole rooms read, nothing may be queued) finds the same.
    let view = ServerView::of_rooms(&mut mirror, "alice", &store.rooms)
        .await
        .unwrap();
    let at_end = check_changes("alice", &ledger, 0, &[], &mirror, &view, &HashSet::new());
    assert_eq!(at_end.lost.len(), 4, "{:#?}", at_end.lost);

    // A toggle that said "off" for a key no one had used is reported too.
    ledger.changes[1].now_on = false;
    let at_end = check_changes("alice", &ledger, 0, &[], &mirror, &view, &HashSet::new());
    assert_eq!(at_end.lost.len(), 4, "{:#?}", at_end.lost);
    assert!(
        at_end.lost[1].contains("said it is off"),
        "{:?}",
        at_end.lost
    );
    ledger.changes[1].now_on = true;

    // A later edit the device started (killed before it was told) may stand instead ...
    ledger.changes.push(ChangeMade {
        acked: false,
        ..change(ChangeOp::Edit {
            target: mine.clone(),
            text: "alice/1/tampered".into(),
        })
    });
    // ... and a change whose outbox entry the app discarded is excused.
    ledger.change_discards.push(Discard {
        at: ledger.changes.len(),
        local_id: "entry".into(),
        kind: "react".into(),
        room: room.clone(),
        target: Some(bobs_id.to_string()),
        text: "alice.1.2".into(),
    });
    let at_end = check_changes("alice", &ledger, 0, &[], &mirror, &view, &HashSet::new());
    assert_eq!(at_end.lost.len(), 2, "{:#?}", at_end.lost);
    server.shutdown().await;
}
