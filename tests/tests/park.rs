//! 5,000 parked `/v1/sync` long-polls on one server, woken by one send: every one is answered
//! with the message, quickly, and the server holds them without a thread each.

use chatsync_tests::park;

const POLLS: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_parked_long_polls_are_woken_by_one_send() {
    let limit = park::raise_fd_limit();
    // Both ends of every connection live in this process.
    if limit < 2 * POLLS as u64 + 200 {
        println!(
            "SKIPPED: open-file hard limit {limit} is below {}",
            2 * POLLS + 200
        );
        return;
    }
    let threads_before = park::proc_status("Threads:").unwrap_or(0);
    let dir = tempfile::tempdir().unwrap();
    let server = chatsync_server::start(chatsync_server::ServerConfig::for_tests(
        dir.path().join("p.db"),
    ))
    .await
    .unwrap();
    let report = park::run(server.addr(), POLLS, 50, || {
        Some(server.parked_long_polls())
    })
    .await
    .unwrap();
    println!("{report}");
    assert_eq!(report.parked, POLLS);
    assert_eq!(report.answered_with_message, POLLS);
    // Not a thread each: the runtime's workers and a few blocking threads at most.
    let threads = report.threads_while_parked.unwrap();
    assert!(
        threads < threads_before + 64,
        "{threads} threads while {POLLS} long-polls wait"
    );
    assert!(report.wake_time.as_secs() < 20, "{report}");
    assert_eq!(server.parked_long_polls(), 0);
    server.shutdown().await;
}
