//! `ChatClient::recover` on real damaged stores (issue 12): a truncated log, bytes flipped,
//! files deleted, a stale snapshot; each time the damaged directory is kept aside byte for
//! byte, a fresh store opens in its place, and the outbox comes back under its original txn
//! ids, so a message that had already reached the server is not sent twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chatsync_core::{ChatClient, ChatError, RecoveryMethod};

use crate::common::*;

/// Every file under `dir` (but the lock file) with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else if e.file_name() != "chatsync.lock" {
                out.insert(
                    p.strip_prefix(root).unwrap().to_owned(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A closed store of alice with a direct room with bob: `sent` messages delivered, then
/// `queued` more queued while the server is down. Returns the store dir, the room and the
/// local ids of the queued ones, in queue order.
async fn store_with_outbox(
    server: &mut TestServer,
    root: &Path,
    sent: usize,
    queued: usize,
) -> (PathBuf, String, Vec<String>) {
    let (alice, room) = device_with_room(server, root, "alice", "bob").await;
    for i in 0..sent {
        alice
            .client
            .send_text(room.clone(), format!("sent {i}"))
            .await
            .unwrap();
    }
    alice.client.sync_once().await.unwrap();
    server.kill().await;
    let mut ids = Vec::new();
    for i in 0..queued {
        let echo = alice
            .client
            .send_text(room.clone(), format!("queued {i}"))
            .await
            .unwrap();
        ids.push(echo.local_id.unwrap());
    }
    server.restart().await;
    let dir = alice.dir.clone();
    drop(alice);
    (dir, room, ids)
}

/// Opens, waiting while this process's previous handle lets go of sled's lock.
fn open(server: &TestServer, dir: &Path) -> Result<std::sync::Arc<ChatClient>, ChatError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut c = config(&server.url(), dir.parent().unwrap(), "alice");
        c.data_dir = dir.to_owned();
        match ChatClient::new(c) {
            Err(ChatError::Busy(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other,
        }
    }
}

fn recover(server: &TestServer, dir: &Path) -> chatsync_core::RecoveryReport {
    let mut c = config(&server.url(), dir.parent().unwrap(), "alice");
    c.data_dir = dir.to_owned();
    ChatClient::recover(c).unwrap()
}

/// The server's texts of `room`, in order.
async fn server_texts(server: &TestServer, room: &str) -> Vec<String> {
    let token = dev_token(server, "bob").await;
    let (status, body) = raw_request(
        server,
        "GET",
        &format!("/v1/rooms/{room}/messages?direction=newer&limit=100"),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let page: chatsync_protocol::HistoryResponse = serde_json::from_str(&body).unwrap();
    page.messages
        .iter()
        .map(|m| m.text().unwrap_or("").to_owned())
        .collect()
}

/// What every damage case must show after `recover`: the damaged directory kept byte for
/// byte, a store that opens, an outbox of original txn ids (all of them unless the report says
/// what it could not read), and after a sync each message on the server exactly once.
async fn check_recovered(
    server: &TestServer,
    dir: &Path,
    room: &str,
    queued: &[String],
    before: &BTreeMap<PathBuf, Vec<u8>>,
    report: &chatsync_core::RecoveryReport,
) {
    assert!(report.recovered, "{report:?}");
    // The journal beside the log was not damaged: every queued message and the login are back
    // (a log cut short may also hold an entry that was sent after the cut: queued again under
    // its txn id, which the server answers with the copy it has).
    assert!(report.requeued as usize >= queued.len(), "{report:?}");
    assert!(report.session_restored, "{report:?}");
    let damaged = PathBuf::from(report.damaged_dir.clone().unwrap());
    assert_eq!(
        &contents(&damaged),
        before,
        "the damaged directory is left untouched"
    );
    let client = open(server, dir).unwrap();
    let outbox: Vec<String> = client
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| e.local_id)
        .collect();
    assert_eq!(outbox.len() as u32, report.requeued, "{report:?}");
    let held: BTreeSet<&String> = outbox.iter().collect();
    assert!(
        queued.iter().all(|id| held.contains(id)),
        "every txn id back: {outbox:?}"
    );
    let r = client.sync_once().await.unwrap();
    assert_eq!((r.pending, r.failed), (0, 0), "{r:?}");
    let texts = server_texts(server, room).await;
    let unique: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(
        unique.len(),
        texts.len(),
        "nothing on the server twice: {texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_store_is_left_as_it_is() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (dir, _, queued) = store_with_outbox(&mut server, root.path(), 2, 3).await;
    // Opened once more so the store is at rest (sled writes a snapshot at every open).
    drop(open(&server, &dir).unwrap());
    let before = contents(&dir);
    let report = recover(&server, &dir);
    assert!(!report.recovered, "{report:?}");
    assert_eq!(contents(&dir), before, "nothing changed");
    let siblings: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        siblings,
        ["alice"],
        "no scratch or damaged folder left behind"
    );
    assert_eq!(
        open(&server, &dir).unwrap().outbox().unwrap().len(),
        queued.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_held_by_a_client_is_busy_not_recovered() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (dir, _, _) = store_with_outbox(&mut server, root.path(), 0, 1).await;
    let _held = open(&server, &dir).unwrap();
    let mut c = config(&server.url(), root.path(), "alice");
    c.data_dir = dir.clone();
    assert!(matches!(ChatClient::recover(c), Err(ChatError::Busy(_))));
}

/// The worst case for duplicates: a queued message whose PUT reached the server but whose
/// answer was lost (the device still holds it as queued), then the store is damaged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_log_gives_back_the_outbox_under_its_txn_ids_and_nothing_is_sent_twice() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (dir, room, queued) = store_with_outbox(&mut server, root.path(), 3, 6).await;
    // queued[0] reached the server; its answer never came back.
    let token = dev_token(&server, "alice").await;
    let (status, body) = raw_request(
        &server,
        "PUT",
        &format!("/v1/rooms/{room}/messages/{}", queued[0]),
        Some(&token),
        r#"{"parts":[{"type":"text/plain","content":"queued 0"}]}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // The log's first 4 KiB garbled: sled no longer opens it.
    let db = dir.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    for (i, b) in bytes.iter_mut().take(4096).enumerate() {
        *b ^= 0x5a ^ (i as u8);
    }
    std::fs::write(&db, bytes).unwrap();
    assert!(matches!(open(&server, &dir), Err(ChatError::Storage(_))));

    let before = contents(&dir);
    let report = recover(&server, &dir);
    println!("{report:#?}");
    check_recovered(&server, &dir, &room, &queued, &before, &report).await;
    let texts = server_texts(&server, &room).await;
    for i in 0..queued.len() {
        let text = format!("queued {i}");
        assert_eq!(
            texts.iter().filter(|t| **t == text).count(),
            1,
            "{text}: {texts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_truncation_and_deleted_files_each_end_in_a_store_that_opens() {
    type Damage = fn(&Path);
    let damages: &[(&str, Damage)] = &[
        ("db truncated to a third", |d| {
            let db = d.join("db");
            let len = std::fs::metadata(&db).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&db)
                .unwrap()
                .set_len(len / 3)
                .unwrap();
        }),
        ("db truncated to nothing", |d| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(d.join("db"))
                .unwrap()
                .set_len(0)
                .unwrap();
        }),
        ("every 97th byte of db flipped", |d| {
            let db = d.join("db");
            let mut bytes = std::fs::read(&db).unwrap();
            for b in bytes.iter_mut().step_by(97) {
                *b = !*b;
            }
            std::fs::write(&db, bytes).unwrap();
        }),
        ("db deleted", |d| {
            std::fs::remove_file(d.join("db")).unwrap()
        }),
        ("snapshots and conf deleted", |d| {
            for e in std::fs::read_dir(d).unwrap() {
                let e = e.unwrap();
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("snap.") || name == "conf" {
                    std::fs::remove_file(e.path()).unwrap();
                }
            }
        }),
        ("an empty snapshot left by a kill", |d| {
            std::fs::write(d.join("snap.FFFFFFFFFFFFFFF0.generating"), b"").unwrap();
        }),
    ];
    for (what, damage) in damages {
        // A server of its own per case: the direct room of alice and bob is one per server.
        let mut server = TestServer::start().await;
        let root = tempfile::tempdir().unwrap();
        let (dir, room, queued) = store_with_outbox(&mut server, root.path(), 2, 5).await;
        damage(&dir);
        let opens = open(&server, &dir).and_then(|c| {
            c.outbox()?;
            c.session()?;
            Ok(())
        });
        let before = contents(&dir);
        let report = recover(&server, &dir);
        println!("{what}: opened before: {opens:?}\n{report:#?}");
        match opens {
            // A store the normal open reads entirely, with every queued message, needs nothing.
            Ok(()) if !report.recovered => {
                let c = open(&server, &dir).unwrap();
                assert_eq!(
                    c.outbox().unwrap().len(),
                    queued.len(),
                    "{what}: {report:?}"
                );
            }
            // One that opens without some of them (a log cut short) is rebuilt.
            _ => check_recovered(&server, &dir, &room, &queued, &before, &report).await,
        }
        let client = open(&server, &dir).unwrap_or_else(|e| panic!("{what}: {e}"));
        client.sync_once().await.unwrap();
        let texts = server_texts(&server, &room).await;
        let unique: BTreeSet<&String> = texts.iter().collect();
        assert_eq!(unique.len(), texts.len(), "{what}: {texts:?}");
    }
}

/// Both copies damaged: the log garbled from its start and the journal gone. The scan of the
/// log's bytes still finds the entries, and the report says it could not tell which of them
/// had been sent already (resending those is harmless: same txn id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_journal_gone_too_the_log_is_scanned_and_nothing_is_sent_twice() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (dir, room, queued) = store_with_outbox(&mut server, root.path(), 3, 4).await;
    std::fs::remove_file(dir.join("outbox.journal")).unwrap();
    let db = dir.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(2048) {
        *b = !*b;
    }
    std::fs::write(&db, bytes).unwrap();
    let report = {
        let mut c = config(&server.url(), root.path(), "alice");
        c.data_dir = dir.clone();
        ChatClient::recover(c).unwrap()
    };
    assert!(report.recovered, "{report:?}");
    assert_eq!(report.method, Some(RecoveryMethod::Scanned), "{report:?}");
    assert!(!report.unreadable.is_empty(), "{report:?}");
    let client = open(&server, &dir).unwrap();
    let ids: BTreeSet<String> = client
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| e.local_id)
        .collect();
    assert!(
        ids.is_superset(&queued.iter().cloned().collect()),
        "{ids:?}"
    );
    client.sync_once().await.unwrap();
    let texts = server_texts(&server, &room).await;
    let unique: BTreeSet<&String> = texts.iter().collect();
    assert_eq!(unique.len(), texts.len(), "{texts:?}");
    assert_eq!(texts.len(), 3 + queued.len(), "{texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_interrupted_between_its_renames_is_finished_by_the_next_open() {
    let mut server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (dir, _, queued) = store_with_outbox(&mut server, root.path(), 0, 4).await;
    // What a recovery leaves when killed after moving the damaged store aside: the ready fresh
    // store in its scratch folder, and no store at `dir`.
    let scratch = root.path().join("alice.recovering-1");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::rename(&dir, scratch.join("new")).unwrap();
    std::fs::write(scratch.join("ready"), b"").unwrap();
    let client = open(&server, &dir).unwrap();
    let ids: Vec<String> = client
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| e.local_id)
        .collect();
    assert_eq!(ids, queued);
    assert!(!scratch.exists());
}

#[test]
fn recovery_method_is_reported_in_snake_case() {
    assert_eq!(
        serde_json::to_string(&RecoveryMethod::Scanned).unwrap(),
        r#""scanned""#
    );
}
