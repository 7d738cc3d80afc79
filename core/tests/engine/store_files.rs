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
async fn a_destroyed_log_is_a_storage_error_not_a_panic_nor_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    filled_store(dir.path()).await;
    let path = dir.path().join("db");
    let len = std::fs::metadata(&path).unwrap().len() as usize;
    scribble(&path, 0, len.max(64));
    match ChatClient::new(offline_config(dir.path())) {
        Err(ChatError::Storage(_)) => {}
        Err(e) => panic!("expected Storage, got {e:?}"),
        Ok(client) => panic!("opened a destroyed store (session: {:?})", client.session()),
    }
}

/// sled's `conf` holds nothing but settings this build always uses, so a garbled one (disk
/// damage, or a kill between its two unsynced writes at the first open) is written anew and
/// the store opens with everything in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbled_conf_is_rewritten_and_nothing_is_lost() {
    let garbles: [fn(&Path); 2] = [
        |p| {
            let len = std::fs::metadata(p).unwrap().len() as usize;
            scribble(p, 0, len.max(64));
        },
        // The text without its checksum: what a kill between sled's two writes leaves.
        |p| {
            let len = std::fs::metadata(p).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .unwrap()
                .set_len(len - 4)
                .unwrap();
        },
    ];
    for garble in garbles {
        let dir = tempfile::tempdir().unwrap();
        filled_store(dir.path()).await;
        garble(&dir.path().join("conf"));
        let client = ChatClient::new(offline_config(dir.path())).unwrap();
        assert_eq!(client.session().unwrap().unwrap().user.name, "Alice");
        assert_eq!(client.outbox().unwrap().len(), 20);
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

/// The snapshot files sled keeps in a store: `snap.<16 hex digits of an LSN>`.
fn snapshot_lsns(dir: &Path) -> Vec<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let hex = name.strip_prefix("snap.")?;
            (hex.len() == 16).then(|| u64::from_str_radix(hex, 16).ok())?
        })
        .collect()
}

/// Issue 12's brick: sled writes a snapshot while it opens a store, as
/// `snap.<lsn>.generating`, renamed when complete. A SIGKILL (or a full disk) part way leaves
/// that file empty or half written, and sled 0.34 then reads it as the newest snapshot and
/// refuses the whole store ("Read corrupted data"). Opening must recognise the leftover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_left_half_written_by_an_interrupted_open_does_not_brick_the_store() {
    for leftover in [&b""[..], &b"\x01\x02\x03 half a snapshot, no checksum"[..]] {
        let dir = tempfile::tempdir().unwrap();
        filled_store(dir.path()).await;
        // One more open and close, so a finished snapshot exists beside the planted one.
        drop(ChatClient::new(offline_config(dir.path())).unwrap());
        let newest = snapshot_lsns(dir.path()).into_iter().max().unwrap_or(0);
        let planted = dir
            .path()
            .join(format!("snap.{:016X}.generating", newest + 0x1000));
        std::fs::write(&planted, leftover).unwrap();

        let client = ChatClient::new(offline_config(dir.path()))
            .unwrap_or_else(|e| panic!("{} bytes left over: {e}", leftover.len()));
        assert_eq!(client.session().unwrap().unwrap().user.name, "Alice");
        let texts: Vec<String> = client
            .outbox()
            .unwrap()
            .into_iter()
            .map(|e| e.text)
            .collect();
        let expected: Vec<String> = (0..20).map(|i| format!("queued {i}")).collect();
        assert_eq!(texts, expected, "every queued message is still queued");
    }
}
