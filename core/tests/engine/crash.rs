//! SIGKILL during a 1,000-message send loop. The test binary re-executes itself as the child
//! (`CHATSYNC_CRASH_CHILD` selects the child role in `child_role_for_sigkill_test`), the parent
//! kills it with SIGKILL mid-loop, reopens its store and flushes: the server must hold each
//! message exactly once, the store must agree, and every message the child reported as queued
//! must be there.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use chatsync_core::ChatClient;

use crate::common::*;

const CHILD_ENV: &str = "CHATSYNC_CRASH_CHILD";
const MESSAGES: usize = 1_000;
/// The parent kills the child once it has reported this many messages queued.
const KILL_AFTER: usize = 150;

/// The child's side. A no-op in a normal test run (the env var is unset).
#[test]
fn child_role_for_sigkill_test() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let [dir, url, room]: [&str; 3] = spec.splitn(3, '\n').collect::<Vec<_>>().try_into().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut config = config(url, std::path::Path::new(dir), "alice");
    config.data_dir = dir.into();
    let client = ChatClient::new(config).unwrap();
    let stdout = std::io::stdout();
    runtime.block_on(async {
        for i in 0..MESSAGES {
            client
                .send_text(room.to_owned(), format!("crash {i:04}"))
                .await
                .unwrap();
            // Only after send_text returned is the message promised to the user.
            writeln!(stdout.lock(), "queued {i}").unwrap();
            if i % 25 == 24 {
                // Flushes in between, so the kill lands among sends as well as queueing.
                client.sync_once().await.unwrap();
            }
        }
    });
    panic!("the parent should have killed this child before the loop ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_send_loop_loses_nothing_and_duplicates_nothing() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (alice, room) = device_with_room(&server, root.path(), "alice", "bob").await;
    let alice_dir = alice.dir.clone();
    drop(alice);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::child_role_for_sigkill_test",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}\n{}", alice_dir.display(), server.url(), room),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (queued, kill_reply) = tokio::task::spawn_blocking(move || {
        let mut queued = BTreeSet::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if let Some(n) = line.strip_prefix("queued ") {
                queued.insert(n.parse::<usize>().unwrap());
                if queued.len() == KILL_AFTER {
                    child.kill().unwrap(); // SIGKILL
                    break;
                }
            }
        }
        // Whatever the child printed before it died also counts as promised.
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("queued ") {
                queued.insert(n.parse::<usize>().unwrap());
            }
        }
        let status = child.wait().unwrap();
        (queued, status)
    })
    .await
    .unwrap();
    assert!(!kill_reply.success(), "the child was killed mid-loop");
    assert!(queued.len() >= KILL_AFTER && queued.len() < MESSAGES);

    // Reopen the dead child's store and flush until the outbox is empty.
    let alice = ChatClient::new(config(&server.url(), root.path(), "alice")).unwrap();
    let mut report = alice.sync_once().await.unwrap();
    while report.pending > 0 {
        assert_eq!(report.failed, 0);
        report = alice.sync_once().await.unwrap();
    }
    alice.sync_once().await.unwrap();

    // The server's view, through another user's fresh device paging all history.
    let (bob, _) = device_with_room(&server, root.path(), "bob", "alice").await;
    bob.client.sync_once().await.unwrap();
    let on_server = scroll_to_start(&bob.client, &room).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for m in &on_server {
        *counts.entry(m.text.clone()).or_default() += 1;
    }
    let duplicates: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "sent twice: {duplicates:?}");
    for i in &queued {
        assert!(
            counts.contains_key(&format!("crash {i:04}")),
            "queued message {i} lost"
        );
    }
    // The store agrees with the server, message for message.
    let in_store = alice.messages(room.clone(), 1_000, None).unwrap();
    let ids = |ms: &[chatsync_core::ChatMessage]| {
        ms.iter()
            .map(|m| (m.server_id, m.text.clone()))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(ids(&in_store), ids(&on_server));
    assert!(in_store
        .iter()
        .all(|m| m.state == chatsync_core::MessageState::Sent));
    assert!(alice.outbox().unwrap().is_empty());
}
