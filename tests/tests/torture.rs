//! The crash torture at the test suite's size (300 SIGKILLs at random moments, opening and
//! flushing included, plus full-disk and read-only cycles on a tmpfs when root): every store
//! opens after every kill, nothing acknowledged is lost, nothing is duplicated, ids stay in
//! order; then every store converges with the server. Bigger runs: `chatsync-torture --size N`
//! (docs/reliability.md).

use std::path::PathBuf;

use chatsync_tests::torture::{self, TortureConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_kill_and_no_bad_disk_bricks_a_store_or_loses_a_message() {
    let seed = std::env::var("CHATSYNC_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_202);
    let config = TortureConfig::sized(
        PathBuf::from(env!("CARGO_BIN_EXE_chatsync-torture-client")),
        1,
        seed,
    );
    let dir = tempfile::tempdir().unwrap();
    let report = torture::run(&config, dir.path()).await.unwrap();
    println!("seed {seed}\n{report}");
    assert!(report.passed(), "seed {seed}\n{report}");
    // The run did what it claims: the kills landed, some while opening, and messages flowed.
    assert!(report.kills() >= u64::from(config.kills), "{report}");
    assert!(
        report.kills_by_phase.get("opening").copied().unwrap_or(0) >= 10,
        "too few kills while opening: {report}"
    );
    assert!(report.queued >= 100, "{report}");
    assert!(report.server_kills > 0, "{report}");
    if report.disk_skipped.is_none() {
        assert_eq!(report.disk_full_cycles, u64::from(config.disk_full_cycles));
        assert_eq!(report.read_only_cycles, u64::from(config.read_only_cycles));
        assert!(
            report.storage_send_errors + report.opens_refused_on_bad_disk > 0,
            "{report}"
        );
    }
}
