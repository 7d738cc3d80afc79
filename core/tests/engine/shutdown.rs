//! `shutdown()` is an end (issue 13): a call in flight returns `ShutDown` at once (its request
//! dropped, not left to time out), listeners get `Stopped` and nothing after it, a new listener
//! hears only `Stopped`, later calls are refused, and the store is released: another client can
//! take it at once. Also: `sync_once` makes no request while the platform says there is no
//! network.

use std::sync::Arc;
use std::time::Duration;

use chatsync_core::{ChatClient, ChatError, ClientConfig, ClientEvent, SyncState, TokenSource};
use tokio::net::TcpListener;

use crate::common::*;

/// A server that accepts connections and never answers; counts them.
async fn silent_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(socket); // never answered, never closed
        }
    });
    (url, accepted)
}

fn offline_config(url: &str, dir: &std::path::Path) -> ClientConfig {
    ClientConfig::new(
        url,
        dir.join("alice"),
        "alice",
        TokenSource::Fixed("t".into()),
    )
}

/// The store's locks (ours and sled's) are free: another process could open it now.
fn store_is_released(dir: &std::path::Path) -> bool {
    let free = |name: &str| {
        std::fs::File::open(dir.join(name))
            .map(|f| f.try_lock().is_ok())
            .unwrap_or(true)
    };
    free("chatsync.lock") && free("db")
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_calls_in_flight_events_and_the_store() {
    let (url, accepted) = silent_server().await;
    let dir = tempfile::tempdir().unwrap();
    let client = ChatClient::with_runtime(
        offline_config(&url, dir.path()),
        tokio::runtime::Handle::current(),
    )
    .unwrap();
    let recorder = Arc::new(Recorder::default());
    let _sub = client.subscribe(recorder.clone());

    // A sync in flight against a server that never answers (the request would time out after
    // 30 s: on this paused clock, at once if nothing cancelled it).
    let syncing = {
        let client = client.clone();
        tokio::spawn(async move { client.sync_once().await })
    };
    while accepted.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    client.shutdown();
    assert_eq!(syncing.await.unwrap(), Err(ChatError::ShutDown));

    // Later calls are refused, nothing is queued.
    assert_eq!(
        client.send_text("r1".into(), "after".into()).await,
        Err(ChatError::ShutDown)
    );
    assert_eq!(client.sync_once().await, Err(ChatError::ShutDown));
    assert!(matches!(client.outbox(), Err(ChatError::ShutDown)));
    assert!(matches!(
        client.timeline("r1".into()),
        Err(ChatError::ShutDown)
    ));

    // Listeners: Stopped is the last event; a new one hears only Stopped.
    let stopped = ClientEvent::SyncStateChanged {
        state: SyncState::Stopped,
    };
    assert!(
        wait_for(Duration::from_secs(5), || recorder.snapshot().last()
            == Some(&stopped))
        .await
    );
    let late = Arc::new(Recorder::default());
    let _late = client.subscribe(late.clone());
    assert!(wait_for(Duration::from_secs(5), || !late.snapshot().is_empty()).await);
    client.start();
    client.set_network_reachable(false);
    assert_eq!(late.snapshot(), vec![stopped.clone()]);
    let events = recorder.snapshot();
    let at = events.iter().position(|e| *e == stopped).unwrap();
    assert_eq!(at, events.len() - 1, "nothing after Stopped: {events:?}");
    assert_eq!(client.sync_state(), SyncState::Stopped);
    drop(client);
}

/// Issue 13: the store stayed locked after `shutdown()`, and a reopen was `Busy` after a
/// 1.5 s wait. Outside an async context `shutdown()` returns once the store is closed.
#[test]
fn after_shutdown_the_store_is_released_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = offline_config("http://127.0.0.1:9", dir.path());
    let client = ChatClient::new(config.clone()).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(client.send_text("r1".into(), "kept".into()))
        .unwrap();
    assert!(!store_is_released(&dir.path().join("alice")));
    client.shutdown();
    assert!(store_is_released(&dir.path().join("alice")));
    // The client is still held by the app, but another one opens the store.
    let again = ChatClient::new(config).unwrap();
    assert_eq!(again.outbox().unwrap().len(), 1);
    drop(client);
}

/// Issue 13: `sync_once` sent requests and reported online while the platform said there was
/// no network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_once_makes_no_request_while_the_platform_says_no_network() {
    let (url, accepted) = silent_server().await;
    let dir = tempfile::tempdir().unwrap();
    let client = ChatClient::new(offline_config(&url, dir.path())).unwrap();
    client
        .send_text("r1".into(), "queued".into())
        .await
        .unwrap();
    client.set_network_reachable(false);
    let report = client.sync_once().await.unwrap();
    assert!(!report.online && report.pending == 1, "{report:?}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        client.network_status(),
        chatsync_core::NetworkStatus::Offline
    );
}

/// Issue 13: a call whose caller stopped waiting (a cancelled Kotlin coroutine or Swift Task
/// drops the future) kept its HTTP request open until the 30 s timeout. Dropping the call's
/// future now ends its work and closes the connection at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_caller_stops_waiting_ends_its_request() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (closed_tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let (accepted_tx, mut accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let _ = accepted_tx.send(());
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 4096];
                // Never answers; reads until the client closes the connection.
                while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = closed_tx.send(());
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let client = ChatClient::new(offline_config(&url, dir.path())).unwrap();
    let call = {
        let client = client.clone();
        tokio::spawn(async move { client.sync_once().await })
    };
    accepted.recv().await.unwrap();
    call.abort();
    let _ = call.await;
    let ended = tokio::time::timeout(Duration::from_secs(10), closed.recv()).await;
    assert!(
        ended.is_ok(),
        "the request stayed open after its caller stopped waiting"
    );
    client.shutdown();
}
