//! End-to-end costs against the real server (not run by default:
//! `cargo nextest run -p chatsync-core --release --test engine --run-ignored only measure`).

use std::time::Instant;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn measure_queue_flush_and_sync_of_1000_messages() {
    let server = TestServer::start().await;
    let root = tempfile::tempdir().unwrap();
    let (bob, room) = device_with_room(&server, root.path(), "bob", "alice").await;
    let mut cfg = config(&server.url(), root.path(), "alice");
    cfg.page_size = 100;
    let (alice, _) = device_with_config(cfg, "bob").await;
    bob.client
        .send_text(room.clone(), "first".into())
        .await
        .unwrap();
    bob.client.sync_once().await.unwrap();
    alice.client.sync_once().await.unwrap();

    let start = Instant::now();
    for i in 0..1000 {
        bob.client
            .send_text(
                room.clone(),
                format!("message number {i:04} with some text"),
            )
            .await
            .unwrap();
    }
    let queued = start.elapsed();
    let start = Instant::now();
    assert_eq!(bob.client.sync_once().await.unwrap().sent, 1000);
    let flushed = start.elapsed();
    let start = Instant::now();
    let report = alice.client.sync_once().await.unwrap();
    let synced = start.elapsed();
    assert_eq!(report.new_messages.get(&room), Some(&1000));
    let shown = alice.client.messages(room.clone(), 1000, None).unwrap();
    assert_eq!(shown.len(), 1000);
    let below = alice
        .client
        .messages(room.clone(), 10, shown[999].server_id)
        .unwrap();
    assert_eq!(
        texts(&below),
        vec!["first"],
        "contiguous down to what was held before"
    );
    println!(
        "1000 messages: queued (flushed each) in {queued:?} ({:.0}/s); sent one PUT each in {flushed:?} ({:.0}/s); \
         synced by the other side (1 sync + 9 gap pages of 100) in {synced:?}",
        1000.0 / queued.as_secs_f64(),
        1000.0 / flushed.as_secs_f64()
    );
}
