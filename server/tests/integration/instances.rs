//! Several instances on one PostgreSQL database (docs/adr/0017-postgresql.md): a long-poll parked
//! on one instance is woken by a commit on another and answered with it; an instance killed
//! mid-run loses nothing that was acknowledged, the others go on, and a restarted one catches up.
//! Skipped without PostgreSQL (`CHATSYNC_TEST_PG_URL`; `scripts/test.sh` starts one).

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::support::{text, Client, Cluster};

/// `who`'s request to instance `at` only.
fn on(who: &Client, url: &str) -> Client {
    Client {
        url: url.to_owned(),
        spread: Default::default(),
        ..who.clone()
    }
}

async fn wait_until_parked(t: &Cluster, instance: usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let server = t.servers[instance].as_ref().unwrap();
    while server.parked_long_polls() < n {
        assert!(Instant::now() < deadline, "the long-poll never parked");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_parked_on_one_instance_is_woken_by_a_send_on_another() {
    let Some(t) = Cluster::postgres(3).await else {
        return;
    };
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let bob_on_2 = on(&bob, &t.urls[2]);
    let alice_on_0 = on(&alice, &t.urls[0]);
    let mut since = bob_on_2.sync_v2("").await["next_batch"].as_str().unwrap().to_owned();
    for round in 0..5 {
        let poll = {
            let bob = bob_on_2.clone();
            let since = since.clone();
            tokio::spawn(async move { bob.sync_v2(&format!("since={since}&timeout_ms=20000")).await })
        };
        wait_until_parked(&t, 2, 1).await;
        let sent = alice_on_0.send_v2(&room.id, &format!("m{round}"), &format!("hello {round}")).await;
        // Without a wake-up across instances the poll would answer empty after 20 s.
        let body: Value = tokio::time::timeout(Duration::from_secs(10), poll)
            .await
            .expect("the long-poll answered")
            .unwrap();
        let messages = body["rooms"][&room.id]["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 1, "round {round}: {body}");
        assert_eq!(messages[0]["id"], sent["id"]);
        assert_eq!(text(&messages[0]), format!("hello {round}"));
        since = body["next_batch"].as_str().unwrap().to_owned();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_run_loses_nothing_acknowledged_and_a_restarted_one_catches_up() {
    let Some(mut t) = Cluster::postgres(3).await else {
        return;
    };
    let alice = t.user("alice").await;
    let bob = t.user("bob").await;
    let room = alice.create_room(&["bob"]).await;
    let mut acknowledged = Vec::new();
    for i in 0..30 {
        if i == 10 {
            // Killed: connections cut, nothing flushed on the way out.
            t.servers[1].take().unwrap().kill().await;
        }
        if i == 20 {
            t.restart(1).await;
        }
        // Around the instance that is down, as a load balancer's health check would.
        let url = &t.urls[if i >= 10 && i < 20 && i % 3 == 1 { 0 } else { i % 3 }];
        let sent = on(&alice, url).send_v2(&room.id, &format!("t{i}"), &format!("m{i}")).await;
        acknowledged.push(sent["id"].as_u64().unwrap());
    }
    // Every instance, the restarted one included, answers every acknowledged message once, in
    // order, from a fresh sync and from one that follows the stream from the start.
    for url in &t.urls {
        let bob = on(&bob, url);
        let body = bob.sync_v2("limit=100").await;
        let ids: Vec<u64> = body["rooms"][&room.id]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, acknowledged, "on {url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_on_one_instance_wakes_and_shows_on_another() {
    let Some(t) = Cluster::postgres(2).await else {
        return;
    };
    let alice = on(&t.user("alice").await, &t.urls[0]);
    let bob = on(&t.user("bob").await, &t.urls[1]);
    let room = alice.create_room(&["bob"]).await;
    let since = bob.sync_v2("").await["next_batch"].as_str().unwrap().to_owned();
    let poll = {
        let bob = bob.clone();
        let since = since.clone();
        tokio::spawn(async move { bob.sync_v2(&format!("since={since}&timeout_ms=20000")).await })
    };
    wait_until_parked(&t, 1, 1).await;
    alice.typing(&room.id, true).await;
    // Without the notice crossing instances the poll would answer empty after 20 s.
    let body: Value = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long-poll answered")
        .unwrap();
    assert_eq!(body["rooms"][&room.id]["typing"], serde_json::json!(["alice"]), "{body}");
    // And it stops the same way.
    let since = body["next_batch"].as_str().unwrap().to_owned();
    let poll = {
        let bob = bob.clone();
        tokio::spawn(async move { bob.sync_v2(&format!("since={since}&timeout_ms=20000")).await })
    };
    wait_until_parked(&t, 1, 1).await;
    alice.typing(&room.id, false).await;
    let body: Value = tokio::time::timeout(Duration::from_secs(10), poll)
        .await
        .expect("the long-poll answered")
        .unwrap();
    assert_eq!(body["rooms"][&room.id]["typing"], serde_json::json!([]), "{body}");
}

/// `chatsync-server --db postgres://...` (here through CHATSYNC_DB, as the README advises): it
/// migrates an empty schema, serves, and never writes the URL's password to its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_runs_on_postgres_and_never_logs_the_password() {
    use std::process::{Command, Stdio};

    use crate::binary::{Log, Running, BIN};

    let Some(t) = Cluster::postgres(0).await else {
        return;
    };
    // The test cluster trusts loopback: the password is sent nowhere, but it is in the URL.
    let db = t.db.replacen("://chatsync@", "://chatsync:s3cret-pw@", 1);
    assert!(db.contains("s3cret-pw"));
    let mut child = Command::new(BIN)
        .args(["--addr", "127.0.0.1:0"])
        .env("CHATSYNC_DB", &db)
        .env("RUST_LOG", "debug")
        .env("NO_COLOR", "1")
        .env_remove("CHATSYNC_AUTH")
        .env_remove("CHATSYNC_TOKEN_SECRET")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Log::capture(&mut child);
    let child = Running(child);
    let line = log.wait_for("listening").await;
    assert!(line.contains("db=postgres://chatsync@127.0.0.1"), "{line}");
    let addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("addr="))
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("http://{addr}/v1/token"))
        .json(&serde_json::json!({"user_id": "alice"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice = Client {
        url: format!("http://{addr}"),
        http,
        token: token["access_token"].as_str().unwrap().to_owned(),
        spread: Default::default(),
    };
    let room = alice.create_room(&[]).await;
    alice.send_v2(&room.id, "t1", "on postgres").await;
    let held = t
        .query(&format!("SELECT COUNT(*) FROM messages WHERE room_id = '{}'", room.id))
        .await;
    assert_eq!(held[0][0], 1);
    drop(child);
    let lines = log.finish();
    assert!(lines.iter().all(|l| !l.contains("s3cret-pw")), "{lines:#?}");
}
