//! Measurements of the store's costs (not run by default: `cargo test -p chatsync-core --lib
//! --release -- --ignored --nocapture measure`). Numbers are recorded in
//! docs/adr/0003-device-store.md.

use std::time::Instant;

use chatsync_protocol::v2::{Message, RoomSync, SyncResponse};
use chatsync_protocol::Part;

use super::Store;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
#[ignore]
fn measure_sync_throughput_open_time_and_memory() {
    for total in [10_000u64, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), 4 << 20).unwrap();
        let rss_before = rss_kib();
        let start = Instant::now();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut id = 0;
        // Pages of 100 (the sync limit), flushed after each, as the engine does.
        while id < total {
            let messages = (0..100)
                .map(|_| {
                    id += 1;
                    // About 160 bytes of JSON per message, the measure the issue uses.
                    Message {
                        id,
                        user_id: "bob".into(),
                        room_id: "room".into(),
                        parts: vec![Part::text(format!("message number {id:08} with some text"))],
                        created_at: "2026-11-25T06:00:00.000Z".into(),
                        updated_at: "2026-11-25T06:00:00.000Z".into(),
                        edited_at: None,
                        deleted: false,
                        reactions: vec![],
                        txn_id: None,
                    }
                })
                .collect();
            let response = SyncResponse {
                next_batch: format!("s{id}"),
                has_more: false,
                rooms: [(
                    "room".to_owned(),
                    RoomSync {
                        messages,
                        limited: false,
                        ..Default::default()
                    },
                )]
                .into(),
            };
            let since = store.meta.sync_token().unwrap();
            store.apply_sync(&response, since.as_deref()).unwrap();
            runtime.block_on(store.flush()).unwrap();
        }
        let elapsed = start.elapsed();
        let peak_rss = rss_kib();
        drop(store);
        std::thread::sleep(std::time::Duration::from_millis(200)); // let sled's I/O threads let go
        let rss_closed = rss_kib();
        let open_start = Instant::now();
        let store = Store::open(dir.path(), 4 << 20).unwrap();
        let open = open_start.elapsed();
        let open_rss = rss_kib().saturating_sub(rss_closed);
        let page_start = Instant::now();
        let page = store.messages.page_desc("room", 0, u64::MAX, 50).unwrap();
        let page_time = page_start.elapsed();
        assert_eq!(page.len(), 50);
        println!(
            "{total} messages: sync {:.0} msg/s, RSS +{} KiB while syncing; disk {} MiB; reopen {:?} and +{} KiB RSS; newest 50 in {:?}",
            total as f64 / elapsed.as_secs_f64(),
            peak_rss.saturating_sub(rss_before),
            dir_bytes(dir.path()) >> 20,
            open,
            open_rss,
            page_time
        );
    }
}
