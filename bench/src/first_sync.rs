//! Scenarios 3 and 5: first sync of a large history from the real server over loopback into an
//! empty store, then an incremental sync of 100 new messages, in a fresh child process with the
//! mobile settings (`ClientConfig::new`: 4 MiB sled cache, pages of 50) whose peak RSS is
//! scenario 5's figure.
//!
//! Protocol v1's initial `/v1/sync` brings the newest page of each room (50 here) and says that
//! older history exists; the rest is fetched the way the app scrolls back: `load_older` in pages
//! of 100 (the server's maximum) until the room's start. "First sync" is both together: every
//! message of every room in the store, checked one by one afterwards.

use std::collections::BTreeSet;
use std::time::Instant;

use chatsync_core::{ChatClient, ClientConfig, TokenSource};

use crate::data::text_of;
use crate::process::{peak_rss_kib, say, wait_for_parent, ChildProcess};
use crate::report::{ms_since, Report};
use crate::server::SeededServer;
use crate::stats::Samples;
use crate::Sizes;

/// Messages per `load_older` call (the server's largest history page).
const BACKFILL_PAGE: u32 = 100;

/// Runs scenarios 3 and 5 against `server` (seeded with `sizes.sync_total` messages).
/// Returns the store of the last run, up to date with the server (scenario 4 wakes on it).
pub fn run(
    sizes: &Sizes,
    server: &mut SeededServer,
    runtime: &tokio::runtime::Runtime,
    report: &mut Report,
) -> tempfile::TempDir {
    let mut initial = Samples::default();
    let mut full = Samples::default();
    let mut rate = Samples::default();
    let mut incremental = Samples::default();
    let mut rss_sync = Samples::default();
    let mut rss = Samples::default();
    let mut last_dir = None;
    for _ in 0..sizes.sync_runs {
        let dir = tempfile::tempdir().expect("temp dir");
        let expected = server.newest_id;
        let mut child = ChildProcess::spawn(&[
            "first-sync".into(),
            server.server.url(),
            server.alice_token.clone(),
            dir.path().display().to_string(),
            expected.to_string(),
            sizes.sync_incremental.to_string(),
        ]);
        child.expect_line("synced");
        runtime.block_on(server.send_new(sizes.sync_incremental));
        child.send_line("go");
        let result = child.finish();
        let full_ms = result["full_ms"].as_f64().expect("full_ms");
        initial.push(result["initial_ms"].as_f64().expect("initial_ms"));
        full.push(full_ms);
        rate.push(expected as f64 / (full_ms / 1_000.0));
        incremental.push(result["incremental_ms"].as_f64().expect("incremental_ms"));
        rss_sync.push(
            result["peak_rss_sync_kib"]
                .as_f64()
                .expect("peak_rss_sync_kib")
                / 1024.0,
        );
        rss.push(result["peak_rss_kib"].as_f64().expect("peak_rss_kib") / 1024.0);
        last_dir = Some(dir);
    }
    report.section(&format!(
        "3. first sync: {} messages in {} rooms from the real server over loopback, into an empty store",
        sizes.sync_total,
        server.rooms.len()
    ));
    report.row(
        "initial /v1/sync (newest 50 per room)",
        &initial,
        "ms",
        None,
    );
    report.row(
        "all history in the store (sync + load_older)",
        &full,
        "ms",
        None,
    );
    report.row("throughput", &rate, "msg/s", None);
    report.row(
        &format!(
            "incremental sync of {} new messages",
            sizes.sync_incremental
        ),
        &incremental,
        "ms",
        None,
    );
    report.section(
        "5. memory: peak RSS of the process doing scenario 3 (mobile settings: 4 MiB sled cache)",
    );
    report.row("at the end of the first sync", &rss_sync, "MiB", None);
    report.row(
        "at the end (+ read-back check, incremental sync)",
        &rss,
        "MiB",
        None,
    );
    let median = rss_sync.summary().median;
    report.note(&format!(
        "iOS notification extension budget: 24 MiB; this is {:.0}% of it{}",
        median / 24.0 * 100.0,
        if median > 24.0 {
            " (OVER the budget)"
        } else {
            ""
        }
    ));
    last_dir.expect("at least one run")
}

/// In the child: `first-sync URL TOKEN DIR EXPECTED INCREMENTAL`.
pub fn child(args: &[String]) -> serde_json::Value {
    let [url, token, dir, expected, incremental] = args else {
        panic!("first-sync URL TOKEN DIR EXPECTED INCREMENTAL, got {args:?}")
    };
    let expected: u64 = expected.parse().expect("EXPECTED");
    let incremental: u32 = incremental.parse().expect("INCREMENTAL");
    let config = ClientConfig::new(url.clone(), dir, "alice", TokenSource::Fixed(token.clone()));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = ChatClient::new(config).expect("open an empty store");

    let started = Instant::now();
    let report = runtime.block_on(client.sync_once()).expect("initial sync");
    assert!(report.online, "the initial sync did not reach the server");
    let initial_ms = ms_since(started);
    let rooms = client.rooms().expect("rooms");
    assert!(!rooms.is_empty(), "the initial sync brought no room");
    for room in &rooms {
        let first = client
            .messages(room.id.clone(), 50, None)
            .expect("first screen");
        let mut before = first.iter().filter_map(|m| m.server_id).min();
        loop {
            let page = runtime
                .block_on(client.load_older(room.id.clone(), before, BACKFILL_PAGE))
                .expect("load_older");
            if !page.has_more {
                break;
            }
            before = page.messages.iter().filter_map(|m| m.server_id).min();
            assert!(before.is_some(), "load_older says more but brought nothing");
        }
    }
    let full_ms = ms_since(started);
    // Before the bench's own read-back check, which a device would not do.
    let peak_after_sync = peak_rss_kib();
    let held = check_store(
        &client,
        &rooms.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
    );
    assert_eq!(
        held,
        (1..=expected).collect::<BTreeSet<_>>(),
        "the store does not hold exactly the server's messages"
    );

    say("synced");
    wait_for_parent("go");
    let started = Instant::now();
    let report = runtime
        .block_on(client.sync_once())
        .expect("incremental sync");
    let incremental_ms = ms_since(started);
    let new: u32 = report.new_messages.values().sum();
    assert_eq!(
        new, incremental,
        "the incremental sync stored {new} new messages: {report:?}"
    );
    let held = check_store(
        &client,
        &rooms.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
    );
    assert_eq!(
        held.len() as u64,
        expected + u64::from(incremental),
        "incremental sync: wrong total"
    );
    serde_json::json!({
        "initial_ms": initial_ms,
        "full_ms": full_ms,
        "incremental_ms": incremental_ms,
        "peak_rss_sync_kib": peak_after_sync,
        "peak_rss_kib": peak_rss_kib(),
    })
}

/// Reads every message of every room back through the public API, checks each text, and
/// returns the set of server ids held.
fn check_store(client: &ChatClient, rooms: &[String]) -> BTreeSet<u64> {
    let mut held = BTreeSet::new();
    for room in rooms {
        let mut before = None;
        loop {
            let page = client
                .messages(room.clone(), 1_000, before)
                .expect("read the store");
            let Some(last) = page.last() else { break };
            before = last.server_id;
            for m in &page {
                let id = m.server_id.expect("a synced message");
                assert_eq!(m.text, text_of(id), "message {id} has the wrong text");
                assert!(held.insert(id), "message {id} returned twice");
            }
        }
    }
    held
}
