//! `chatsync doctor` on real stores: a healthy one is left alone; a damaged one is kept aside
//! untouched and rebuilt with its queued messages under their original txn ids, which then
//! reach the server exactly once.

use std::path::PathBuf;

use crate::support::{free_port, snapshot, Device, Server};

#[test]
fn doctor_leaves_a_healthy_store_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(
        tmp.path(),
        "alice",
        &format!("http://127.0.0.1:{}", free_port()),
    );
    dev.expect(0, &["send", "--room", "r1", "queued"]);
    let run = dev.expect(0, &["doctor"]);
    assert!(run.stdout().contains("healthy"), "{}", run.describe());
    let report = dev.json(&["doctor", "--json"]);
    assert_eq!(report["recovered"], false, "{report}");
    assert_eq!(dev.json(&["outbox", "--json"])[0]["text"], "queued");
}

#[test]
fn doctor_rebuilds_a_damaged_store_and_nothing_is_lost_or_sent_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let alice = Device::new(tmp.path(), "alice", &server.url());
    let bob = Device::new(tmp.path(), "bob", &server.url());
    alice.expect(0, &["send", "--to", "bob", "before the tunnel"]);
    server.kill();
    alice.expect(0, &["send", "--to", "bob", "in the tunnel 1"]);
    alice.expect(0, &["send", "--to", "bob", "in the tunnel 2"]);
    let queued: Vec<String> = alice
        .json(&["outbox", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["local_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(queued.len(), 2);

    // The disk garbles the start of the log: the store no longer opens.
    let db = alice.data.join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(4096) {
        *b = !*b;
    }
    std::fs::write(&db, bytes).unwrap();
    let line = alice.expect(5, &["outbox"]).one_stderr_line();
    assert!(line.contains("chatsync doctor"), "{line}");

    let damaged_before = snapshot(&alice.data);
    let run = alice.expect(0, &["doctor"]);
    let out = run.stdout();
    assert!(
        out.contains("rebuilt") && out.contains("2 queued"),
        "{}",
        run.describe()
    );
    let aside = tmp
        .path()
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("alice.damaged-")
        })
        .expect("the damaged store kept aside");
    assert_eq!(
        relative(snapshot(&aside), &aside),
        relative(damaged_before, &alice.data),
        "the damaged store is kept untouched"
    );
    let ids: Vec<String> = alice
        .json(&["outbox", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["local_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, queued, "the same txn ids, in the same order");

    server.restart();
    alice.expect(0, &["sync"]);
    bob.expect(0, &["sync"]);
    let texts: Vec<String> = bob
        .json(&["messages", "--with", "alice", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts,
        ["in the tunnel 2", "in the tunnel 1", "before the tunnel"]
    );
}

#[test]
fn doctor_exits_9_when_some_of_the_store_could_not_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = Device::new(
        tmp.path(),
        "alice",
        &format!("http://127.0.0.1:{}", free_port()),
    );
    dev.expect(0, &["send", "--room", "r1", "queued"]);
    // Both copies gone: the log overwritten, the journal deleted.
    let db = dev.data.join("db");
    let len = std::fs::metadata(&db).unwrap().len() as usize;
    std::fs::write(&db, vec![0u8; len]).unwrap();
    std::fs::remove_file(dev.data.join("outbox.journal")).unwrap();
    let run = dev.run(&["doctor", "--json"]);
    assert_eq!(run.code(), 9, "{}", run.describe());
    let report = run.json();
    assert_eq!(report["recovered"], true, "{report}");
    assert!(
        !report["unreadable"].as_array().unwrap().is_empty(),
        "{report}"
    );
    // The rebuilt store opens (empty); the user logs in again.
    dev.expect(0, &["outbox"]);
}

fn relative(files: Vec<(PathBuf, Vec<u8>)>, root: &std::path::Path) -> Vec<(PathBuf, Vec<u8>)> {
    files
        .into_iter()
        .filter(|(p, _)| p.file_name().is_some_and(|n| n != "chatsync.lock"))
        .map(|(p, b)| (p.strip_prefix(root).unwrap().to_owned(), b))
        .collect()
}
