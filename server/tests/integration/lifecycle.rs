//! Starting and stopping: restart keeps everything, graceful shutdown answers parked long-polls,
//! kill cuts connections, the old port and database are reusable at once, and the server runs on
//! current-thread and paused-time runtimes.

use std::time::Duration;

use chatsync_server::ServerConfig;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{ids, TestServer};
use crate::sync::wait_until_parked;

async fn restart(mut t: TestServer, graceful: bool) -> TestServer {
    let addr = t.server().addr();
    let server = t.server.take().unwrap();
    if graceful {
        server.shutdown().await;
    } else {
        server.kill().await;
    }
    // Same address, same database, at once.
    TestServer::start_in(t.dir, |c| c.addr = addr).await
}

async fn restart_keeps_everything(graceful: bool) {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    alice
        .call(
            reqwest::Method::PUT,
            "/v1/users/alice",
            Some(json!({"name": "Alice"})),
        )
        .await
        .ok();
    let room = alice.create_room(&["bob"]).await;
    let sent = alice.send_many(&room.id, "t", 5).await;
    let sync_before = alice.get("/v1/sync").await.ok();
    let token = sync_before["next_batch"].as_str().unwrap().to_owned();
    let url = t.url.clone();

    let t = restart(t, graceful).await;
    assert_eq!(t.url, url);
    let alice = t.user("alice").await;
    assert_eq!(alice.get("/v1/users/alice").await.ok()["name"], "Alice");
    assert_eq!(
        alice.get(&format!("/v1/rooms/{}", room.id)).await.ok()["member_ids"],
        json!(["alice", "bob"])
    );
    let history = alice
        .get(&format!("/v1/rooms/{}/messages", room.id))
        .await
        .ok();
    assert_eq!(
        ids(&history["messages"]),
        sent.iter().map(|m| m.id).collect::<Vec<_>>()
    );
    // The old sync token is still valid and there is nothing new.
    assert_eq!(
        alice.get(&format!("/v1/sync?since={token}")).await.ok()["rooms"],
        json!({})
    );
    // Idempotency survives too, and new ids keep increasing.
    assert_eq!(alice.send(&room.id, "t0", "again").await, sent[0]);
    assert!(alice.send(&room.id, "new", "new").await.id > sent[4].id);
}

#[tokio::test]
async fn a_graceful_restart_keeps_everything() {
    restart_keeps_everything(true).await;
}

#[tokio::test]
async fn a_kill_and_restart_keeps_everything_acknowledged() {
    restart_keeps_everything(false).await;
}

#[tokio::test]
async fn graceful_shutdown_answers_parked_long_polls() {
    let mut t = TestServer::start().await;
    let alice = t.user("alice").await;
    alice.create_room(&[]).await;
    let since = alice.get("/v1/sync").await.ok()["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = {
        let alice = alice.clone();
        tokio::spawn(async move {
            alice
                .get(&format!("/v1/sync?since={since}&timeout_ms=30000"))
                .await
        })
    };
    wait_until_parked(&t, 1).await;
    let started = std::time::Instant::now();
    t.server.take().unwrap().shutdown().await;
    let answer = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["rooms"], json!({}));
    assert!(started.elapsed() < Duration::from_secs(5));
    // And the port is closed.
    assert!(t
        .http
        .get(format!("{}/health", t.url))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn kill_cuts_parked_requests_and_closes_the_port() {
    let mut t = TestServer::start().await;
    let alice = t.user("alice").await;
    let since = alice.get("/v1/sync").await.ok()["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let poll = {
        let (http, url, token) = (t.http.clone(), t.url.clone(), alice.token.clone());
        tokio::spawn(async move {
            http.get(format!("{url}/v1/sync?since={since}&timeout_ms=30000"))
                .bearer_auth(token)
                .send()
                .await
        })
    };
    wait_until_parked(&t, 1).await;
    t.server.take().unwrap().kill().await;
    let result = tokio::time::timeout(Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    assert!(
        result.is_err(),
        "the client sees a reset/EOF, not an answer: {result:?}"
    );
    assert!(t
        .http
        .get(format!("{}/health", t.url))
        .send()
        .await
        .is_err());
}

#[test]
fn runs_on_a_current_thread_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = TestServer::start().await;
        let alice = t.user("alice").await;
        let room = alice.create_room(&[]).await;
        alice.send(&room.id, "a", "hi").await;
        let since = alice.get("/v1/sync").await.ok()["next_batch"]
            .as_str()
            .unwrap()
            .to_owned();
        let poll = {
            let alice = alice.clone();
            tokio::spawn(async move {
                alice
                    .get(&format!("/v1/sync?since={since}&timeout_ms=10000"))
                    .await
            })
        };
        wait_until_parked(&t, 1).await;
        let m = alice.send(&room.id, "b", "wake").await;
        assert_eq!(
            ids(&poll.await.unwrap().body["rooms"][&room.id]["messages"]),
            vec![m.id]
        );
        let mut t = t;
        t.server.take().unwrap().shutdown().await;
    });
}

#[tokio::test(start_paused = true)]
async fn runs_on_a_paused_clock_without_spinning() {
    let t = TestServer::start().await;
    let alice = t.user("alice").await;
    let room = alice.create_room(&[]).await;
    alice.send(&room.id, "a", "hi").await;
    let since = alice.get("/v1/sync").await.ok()["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    // With time paused the long-poll's timer auto-advances once everything is idle: it answers
    // empty, quickly in real time.
    let started = std::time::Instant::now();
    let body = alice
        .get(&format!("/v1/sync?since={since}&timeout_ms=30000"))
        .await
        .ok();
    assert_eq!(body["rooms"], json!({}));
    assert!(started.elapsed() < Duration::from_secs(10));
    let mut t = t;
    t.server.take().unwrap().shutdown().await;
}

#[tokio::test]
async fn a_busy_port_and_a_bad_database_path_are_clear_errors() {
    let t = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::for_tests(dir.path().join("other.db"));
    config.addr = t.server().addr();
    let err = chatsync_server::start(config).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {}", t.server().addr())),
        "{err}"
    );
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let mut config = ServerConfig::for_tests(file.join("db.sqlite"));
    config.auth = chatsync_server::AuthMode::Secret;
    config.token_secret = Some("s".into());
    let err = chatsync_server::start(config).await.unwrap_err();
    assert!(err.to_string().starts_with("cannot open database"), "{err}");
}
