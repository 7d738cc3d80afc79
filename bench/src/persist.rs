//! Scenario 1, persist one received message into a room already holding N messages, and
//! scenario 6, bytes on disk per 100k messages, measured on the same stores.
//!
//! chatsync: the message applied as a one-message sync batch (one sled transaction) and
//! flushed, which is what the engine does after the network. redux-persist: the whole state
//! re-serialized and written. SQLite: one committed INSERT.

use std::time::Instant;

use chatsync_core::bench_internals::BenchStore;

use crate::baselines::{ReduxPersist, SqliteBaseline};
use crate::data::{history, message, room_id};
use crate::process::disk_bytes;
use crate::report::{ms_since, Report};
use crate::stats::Samples;
use crate::Sizes;

/// sled page cache of the mobile default (`ClientConfig::new`).
pub const MOBILE_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Runs scenario 1 for every N, then scenario 6 on the largest N.
pub fn run(sizes: &Sizes, report: &mut Report) {
    let room = room_id(0);
    let mut disk = None;
    for &n in &sizes.persist_ns {
        let dir = tempfile::tempdir().expect("temp dir");
        let samples = if n >= 100_000 {
            sizes.persist_samples_large
        } else {
            sizes.persist_samples
        };

        // Every contender seeded with the same N messages.
        let store_dir = dir.path().join("chatsync");
        let mut store =
            BenchStore::open(&store_dir, MOBILE_CACHE_BYTES).expect("open the chatsync store");
        let seed: Vec<_> = history(n, 1).collect();
        for chunk in seed.chunks(1_000) {
            store
                .apply_sync_batch(chunk)
                .expect("seed the chatsync store");
            store.flush().expect("flush the chatsync store");
        }
        let mut redux = [false, true].map(|fsync| {
            let name = if fsync {
                "redux-fsync.json"
            } else {
                "redux.json"
            };
            let mut redux = ReduxPersist::new(&dir.path().join(name), fsync);
            redux.extend(seed.iter().cloned());
            redux.write().expect("write the redux state");
            redux
        });
        let mut db = SqliteBaseline::open(&dir.path().join("messages.db")).expect("open SQLite");
        db.insert_many(seed.iter().cloned()).expect("seed SQLite");
        drop(seed);

        // Interleaved, one message each in turn: a burst of load from other work on the machine
        // hits every contender alike.
        let mut chatsync = Samples::default();
        let mut redux_samples = [Samples::default(), Samples::default()];
        let mut sqlite = Samples::default();
        for k in 1..=samples as u64 {
            let m = message(&room, n + k);
            let t = Instant::now();
            let new = store
                .apply_sync_batch(std::slice::from_ref(&m))
                .expect("persist one message");
            store.flush().expect("flush");
            chatsync.push(ms_since(t));
            assert_eq!(new, 1, "the message was not new to the store");
            for (r, s) in redux.iter_mut().zip(&mut redux_samples) {
                let t = Instant::now();
                r.persist_one(m.clone()).expect("persist the redux state");
                s.push(ms_since(t));
            }
            let t = Instant::now();
            db.persist_one(&m).expect("insert into SQLite");
            sqlite.push(ms_since(t));
        }

        // Each read back: every message there, the last one intact.
        let held = n + samples as u64;
        let newest = store.newest(&room, samples).expect("read back");
        let expected: Vec<u64> = (n + 1..=held).rev().collect();
        assert_eq!(
            newest.iter().map(|m| m.id).collect::<Vec<_>>(),
            expected,
            "chatsync store lost a message"
        );
        assert_eq!(
            newest[0],
            message(&room, held),
            "chatsync store changed a message"
        );
        drop(store);
        for name in ["redux.json", "redux-fsync.json"] {
            let loaded =
                ReduxPersist::load(&dir.path().join(name)).expect("read the redux state back");
            assert_eq!(
                loaded[&room].len() as u64,
                held,
                "redux state lost a message"
            );
            assert_eq!(loaded[&room].last(), Some(&message(&room, held)));
        }
        assert_eq!(db.count().expect("count"), held, "SQLite lost a message");
        assert_eq!(
            db.newest(&room, 1).expect("read SQLite")[0],
            message(&room, held)
        );
        drop(db);

        let label = format!("1. persist one received message, room holding N={n}: ms per message");
        report.section(&label);
        let base = chatsync.summary().median;
        report.row("chatsync (sled txn + flush)", &chatsync, "ms", None);
        report.row(
            "redux-persist (whole JSON, no fsync)",
            &redux_samples[0],
            "ms",
            Some(base),
        );
        report.row(
            "redux-persist (whole JSON, fsync)",
            &redux_samples[1],
            "ms",
            Some(base),
        );
        report.row(
            "SQLite (WAL, synchronous=FULL, 1 row)",
            &sqlite,
            "ms",
            Some(base),
        );

        disk = Some((
            held,
            disk_bytes(&store_dir),
            disk_bytes(&dir.path().join("redux.json")),
            ["messages.db", "messages.db-wal", "messages.db-shm"]
                .iter()
                .map(|f| dir.path().join(f))
                .filter(|p| p.exists())
                .map(|p| disk_bytes(&p))
                .sum::<u64>(),
        ));
    }

    let (held, chatsync, redux, sqlite) = disk.expect("at least one N");
    report.section(&format!(
        "6. disk: bytes per 100k messages (measured on the stores of scenario 1 holding {held} messages, scaled)"
    ));
    let per_100k = |bytes: u64| bytes as f64 * 100_000.0 / held as f64;
    report.single("chatsync (sled dir)", per_100k(chatsync), "bytes", None);
    report.single(
        "redux-persist (JSON file)",
        per_100k(redux),
        "bytes",
        Some(per_100k(chatsync)),
    );
    report.single(
        "SQLite (db + wal + shm)",
        per_100k(sqlite),
        "bytes",
        Some(per_100k(chatsync)),
    );
}
