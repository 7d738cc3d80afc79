//! A store written by the release before protocol v2 (format 1, core/tests/fixtures) opens with
//! this build: migrated in place, nothing lost, its queued messages delivered once (issue 14).

use std::path::Path;

use chatsync_core::{ChatClient, MessageState};

use crate::common::*;

fn unpack_fixture(into: &Path) {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-format-1.tar.gz");
    std::fs::create_dir_all(into).unwrap();
    let status = std::process::Command::new("tar")
        .args(["xzf", fixture, "-C"])
        .arg(into)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The format version record, read with sled directly.
fn format_version(dir: &Path) -> u32 {
    let db = sled::Config::new().path(dir).open().unwrap();
    let v = db.open_tree("meta").unwrap().get("format_version").unwrap().unwrap();
    u32::from_be_bytes(v.as_ref().try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_store_migrates_in_place_and_loses_nothing() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("alice");
    unpack_fixture(&dir);
    assert_eq!(format_version(&dir), 1);

    let mut c = config(&server.url(), root.path(), "alice");
    c.data_dir = dir.clone();
    let alice = ChatClient::new(c.clone()).unwrap();
    assert_eq!(alice.session().unwrap().unwrap().user.name, "Alice");
    let rooms = alice.rooms().unwrap();
    assert_eq!(rooms.len(), 1);
    let room = rooms[0].id.clone();
    let held = alice.messages(room.clone(), 100, None).unwrap();
    let sent: Vec<&str> = held
        .iter()
        .filter(|m| m.state == MessageState::Sent)
        .map(|m| m.text.as_str())
        .collect();
    assert_eq!(sent.len(), 10, "{sent:?}");
    let queued: Vec<String> = alice.outbox().unwrap().into_iter().map(|e| e.text).collect();
    assert_eq!(queued, ["queued 1", "queued 2"]);
    alice.shutdown();
    drop(alice);
    assert_eq!(format_version(&dir), 2, "migrated in place");

    // Opening again changes nothing (the migration ran once).
    let alice = ChatClient::new(c).unwrap();
    assert_eq!(alice.outbox().unwrap().len(), 2);
    assert_eq!(alice.messages(room, 100, None).unwrap().len(), 12);
}
