//! What opening a store does with files it cannot trust: a newer format version, damage, a
//! store held by another client. Always a typed error, never a panic, data left as it was.

use std::path::Path;

use chatsync_core::{ChatClient, ChatError, ClientConfig, TokenSource};

/// An offline config (nothing listens on port 9; no network I/O happens at open anyway).
fn offline_config(dir: &Path) -> ClientConfig {
    ClientConfig::new(
        "http://127.0.0.1:9",
        dir,
        "alice",
        TokenSource::Fixed("t".into()),
    )
}

/// sled opened directly, as a stranger (or a damaged disk) would write it.
fn raw_sled(dir: &Path) -> sled::Db {
    // sled's I/O threads may hold the file lock a moment after the client is dropped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new().path(dir).cache_capacity(1 << 20).open() {
            Ok(db) => return db,
            Err(e)
                if std::time::Instant::now() < deadline
                    && e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn set_format_version(dir: &Path, value: &[u8]) {
    let db = raw_sled(dir);
    db.open_tree("meta")
        .unwrap()
        .insert("format_version", value)
        .unwrap();
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_a_newer_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    {
        let client = ChatClient::new(offline_config(dir.path())).unwrap();
        client.login("Alice".into(), None).await.unwrap();
    }
    set_format_version(dir.path(), &99u32.to_be_bytes());
    match ChatClient::new(offline_config(dir.path())) {
        Err(ChatError::Storage(msg)) => assert!(msg.contains("newer"), "{msg}"),
        Err(e) => panic!("expected Storage, got {e:?}"),
        Ok(_) => panic!("a newer store was opened"),
    }
    // Untouched: with the version put back, the session is still there.
    set_format_version(dir.path(), &1u32.to_be_bytes());
    let client = ChatClient::new(offline_config(dir.path())).unwrap();
    assert_eq!(client.session().unwrap().unwrap().user.name, "Alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_version_record_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(ChatClient::new(offline_config(dir.path())).unwrap());
    set_format_version(dir.path(), b"garbage!");
    assert!(matches!(
        ChatClient::new(offline_config(dir.path())),
        Err(ChatError::Storage(_))
    ));
}

/// A store with a session and 20 queued messages, closed.
async fn filled_store(dir: &Path) {
    let client = ChatClient::new(offline_config(dir)).unwrap();
    client.login("Alice".into(), None).await.unwrap();
    for i in 0..20 {
        client
            .send_text("r1".into(), format!("queued {i}"))
            .await
            .unwrap();
    }
}

/// Overwrites `len` bytes of `path` from `offset` with xorshift noise.
fn scribble(path: &Path, offset: usize, len: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    bytes.resize(bytes.len().max(offset + len), 0);
    for b in &mut bytes[offset..offset + len] {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        *b = rng as u8;
    }
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_a_storage_error_not_a_panic_nor_an_empty_store() {
    for victim in ["conf", "db"] {
        let dir = tempfile::tempdir().unwrap();
        filled_store(dir.path()).await;
        let path = dir.path().join(victim);
        let len = std::fs::metadata(&path).unwrap().len() as usize;
        scribble(&path, 0, len.max(64));
        match ChatClient::new(offline_config(dir.path())) {
            Err(ChatError::Storage(_)) => {}
            Err(e) => panic!("{victim}: expected Storage, got {e:?}"),
            Ok(client) => panic!(
                "{victim}: opened a destroyed store (session: {:?})",
                client.session()
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partly_damaged_log_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    filled_store(dir.path()).await;
    let path = dir.path().join("db");
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    scribble(&path, len / 2, (len / 4).max(1));
    // sled may refuse the log or recover a consistent prefix of it; either way no panic, and
    // whatever opens reads back without one.
    match ChatClient::new(offline_config(dir.path())) {
        Err(ChatError::Storage(_)) => {}
        Err(e) => panic!("expected Storage, got {e:?}"),
        Ok(client) => {
            let _ = client.session();
            let _ = client.outbox();
            let _ = client.messages("r1".into(), 10, None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_held_by_another_client_is_busy() {
    let dir = tempfile::tempdir().unwrap();
    let first = ChatClient::new(offline_config(dir.path())).unwrap();
    assert!(matches!(
        ChatClient::new(offline_config(dir.path())),
        Err(ChatError::Busy(_))
    ));
    drop(first);
    ChatClient::new(offline_config(dir.path())).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_value_is_a_storage_error_on_read() {
    let dir = tempfile::tempdir().unwrap();
    filled_store(dir.path()).await;
    {
        let db = raw_sled(dir.path());
        let outbox = db.open_tree("outbox").unwrap();
        let (first, _) = outbox.first().unwrap().unwrap();
        outbox.insert(first, &b"{not json"[..]).unwrap();
        db.flush().unwrap();
    }
    let client = ChatClient::new(offline_config(dir.path())).unwrap();
    assert!(matches!(client.outbox(), Err(ChatError::Storage(_))));
    assert!(matches!(
        client.messages("r1".into(), 10, None),
        Err(ChatError::Storage(_))
    ));
    // What does decode is still readable.
    assert_eq!(client.session().unwrap().unwrap().user.name, "Alice");
}
