//! Scenario 2, cold start to first screen: a fresh process opens a store holding `total`
//! messages across `rooms` rooms and reads the newest 50 of one room. The parent builds the
//! three stores once from the same messages; each run is a new child process per contender,
//! reporting its time (from its `main` to the checked page) and its peak RSS. An "empty" child
//! that opens nothing gives the floor every process pays, and chatsync on an empty store its
//! fixed cost (runtime, HTTP client, sled), apart from what grows with the messages held.

use std::path::Path;
use std::time::Instant;

use chatsync_core::bench_internals::BenchStore;
use chatsync_core::{ChatClient, ClientConfig, TokenSource};

use crate::baselines::{ReduxPersist, SqliteBaseline};
use crate::data::{check_newest_page, history, room_id, text_of};
use crate::persist::MOBILE_CACHE_BYTES;
use crate::process::{peak_rss_kib, run_child};
use crate::report::{ms_since, Report};
use crate::stats::Samples;
use crate::Sizes;

/// Messages on the first screen.
const FIRST_SCREEN: usize = 50;
/// The contenders, in the order each run starts them.
const KINDS: [&str; 5] = [
    "empty",
    "chatsync-empty-store",
    "chatsync",
    "redux-persist",
    "sqlite",
];
/// Index of chatsync in [`KINDS`] (the ratios' base).
const CHATSYNC: usize = 2;

/// Runs scenario 2.
pub fn run(sizes: &Sizes, report: &mut Report) {
    let (total, rooms) = (sizes.cold_total, sizes.cold_rooms);
    let dir = tempfile::tempdir().expect("temp dir");
    let build = Instant::now();
    {
        let mut store = BenchStore::open(&dir.path().join("chatsync"), MOBILE_CACHE_BYTES)
            .expect("open chatsync");
        let all: Vec<_> = history(total, rooms).collect();
        for chunk in all.chunks(10_000) {
            store.apply_sync_batch(chunk).expect("seed chatsync");
            store.flush().expect("flush chatsync");
        }
        let mut redux = ReduxPersist::new(&dir.path().join("redux.json"), false);
        redux.extend(all.iter().cloned());
        redux.write().expect("write the redux state");
        let mut db = SqliteBaseline::open(&dir.path().join("messages.db")).expect("open SQLite");
        for chunk in all.chunks(100_000) {
            db.insert_many(chunk.iter().cloned()).expect("seed SQLite");
        }
    }
    eprintln!(
        "[bench] cold start: stores of {total} messages built in {:.1} s",
        build.elapsed().as_secs_f64()
    );

    let room = rooms / 2;
    let mut time: Vec<Samples> = vec![Samples::default(); KINDS.len()];
    let mut rss: Vec<Samples> = vec![Samples::default(); KINDS.len()];
    for _ in 0..sizes.cold_runs {
        for (i, kind) in KINDS.iter().enumerate() {
            let result = run_child(&[
                "cold-start".into(),
                kind.to_string(),
                dir.path().display().to_string(),
                total.to_string(),
                rooms.to_string(),
                room.to_string(),
            ]);
            time[i].push(result["ms"].as_f64().expect("ms"));
            rss[i].push(result["peak_rss_kib"].as_f64().expect("peak_rss_kib") / 1024.0);
        }
    }
    report.section(&format!(
        "2. cold start to first screen: fresh process, store of {total} messages in {rooms} rooms, newest {FIRST_SCREEN} of one room"
    ));
    let base_t = time[CHATSYNC].summary().median;
    let base_m = rss[CHATSYNC].summary().median;
    report.row("process floor (opens nothing): time", &time[0], "ms", None);
    report.row(
        "process floor (opens nothing): peak RSS",
        &rss[0],
        "MiB",
        None,
    );
    for i in 1..KINDS.len() {
        report.row(
            &format!("{}: time", KINDS[i]),
            &time[i],
            "ms",
            (i > CHATSYNC).then_some(base_t),
        );
        report.row(
            &format!("{}: peak RSS", KINDS[i]),
            &rss[i],
            "MiB",
            (i > CHATSYNC).then_some(base_m),
        );
    }
    report.note(
        "time runs from the child's main() to the checked first screen; the OS file cache is warm",
    );
}

/// In the child: `cold-start KIND DIR TOTAL ROOMS ROOM`. Prints `{"ms", "peak_rss_kib"}`.
pub fn child(started: Instant, args: &[String]) -> serde_json::Value {
    let [kind, dir, total, rooms, room] = args else {
        panic!("cold-start KIND DIR TOTAL ROOMS ROOM, got {args:?}")
    };
    let dir = Path::new(dir);
    let total: u64 = total.parse().expect("TOTAL");
    let rooms: usize = rooms.parse().expect("ROOMS");
    let r: usize = room.parse().expect("ROOM");
    let room = room_id(r);
    let page: Vec<(u64, String)> = match kind.as_str() {
        "empty" => Vec::new(),
        "chatsync" | "chatsync-empty-store" => {
            let store = if kind == "chatsync" {
                dir.join("chatsync")
            } else {
                dir.join("empty-chatsync")
            };
            let config = ClientConfig::new(
                "http://127.0.0.1:9",
                store,
                "alice",
                TokenSource::Fixed("unused: no network in this scenario".into()),
            );
            let client = ChatClient::new(config).expect("open the chatsync store");
            let page = client
                .messages(room, FIRST_SCREEN as u32, None)
                .expect("read the first screen");
            page.into_iter()
                .map(|m| (m.server_id.expect("a synced message"), m.text))
                .collect()
        }
        "redux-persist" => {
            let state = ReduxPersist::load(&dir.join("redux.json")).expect("rehydrate");
            let messages = &state[&room];
            messages
                .iter()
                .rev()
                .take(FIRST_SCREEN)
                .map(|m| (m.id, m.text().unwrap_or("").to_owned()))
                .collect()
        }
        "sqlite" => {
            let db = SqliteBaseline::open(&dir.join("messages.db")).expect("open SQLite");
            let page = db.newest(&room, FIRST_SCREEN as u32).expect("read SQLite");
            page.iter()
                .map(|m| (m.id, m.text().unwrap_or("").to_owned()))
                .collect()
        }
        other => panic!("unknown kind {other}"),
    };
    let ms = ms_since(started);
    if kind == "chatsync-empty-store" {
        assert!(page.is_empty(), "an empty store showed messages");
    } else if kind != "empty" {
        check_newest_page(&page, total, rooms, r, FIRST_SCREEN)
            .unwrap_or_else(|e| panic!("{kind} showed the wrong first screen: {e}"));
        assert_eq!(page[0].1, text_of(page[0].0));
    }
    serde_json::json!({ "ms": ms, "peak_rss_kib": peak_rss_kib() })
}
