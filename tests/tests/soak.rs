//! The short convergence soak of the test suite: 8 devices as child processes, 3 shared rooms,
//! about 20 s of proxy faults, server kills and device SIGKILLs while devices send, edit and
//! delete their messages, react and mark rooms read, then the checks of `chatsync_tests::soak`
//! (every store equals the server's state for its user, every queued message once).
//! The bigger runs: `chatsync-soak --size N` (docs/reliability.md). The same soak runs again with
//! three server instances on PostgreSQL.

use std::path::PathBuf;

use chatsync_tests::pg::Schema;
use chatsync_tests::soak::{self, SoakConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_converge_with_nothing_lost_or_duplicated_under_faults() {
    soak_and_check(None, 1).await;
}

/// The same with three server instances on one PostgreSQL database behind the proxy, which hands
/// each new connection to the next instance (so a device's requests land on all of them); each
/// server kill kills one instance, mid-run, and restarts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_postgres_converge_with_one_killed_and_restarted_mid_run() {
    let Some(schema) = tokio::task::spawn_blocking(Schema::for_tests).await.unwrap() else {
        return;
    };
    soak_and_check(Some(schema.url.clone()), 3).await;
}

async fn soak_and_check(postgres: Option<String>, instances: usize) {
    let seed = std::env::var("CHATSYNC_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_261_125);
    let mut config = SoakConfig::sized(
        PathBuf::from(env!("CARGO_BIN_EXE_chatsync-soak-client")),
        1,
        seed,
    );
    config.postgres = postgres;
    config.instances = instances;
    let dir = tempfile::tempdir().unwrap();
    let report = soak::run(&config, dir.path()).await.unwrap();
    println!("seed {seed}\n{report}");
    assert!(report.violations.is_empty(), "seed {seed}\n{report}");
    // The run did what it claims: real traffic and every kind of fault.
    assert!(report.queued >= 8 * 5, "{report}");
    assert_eq!(report.server_restarts, config.server_kills);
    assert_eq!(report.client_restarts, config.client_kills);
    assert!(report.proxy.refusal_windows > 0 && report.proxy.connections > 0);
    assert!(report.send_errors.is_empty(), "{:?}", report.send_errors);
    for kind in ["protocol", "storage"] {
        assert!(!report.sync_errors.contains_key(kind), "{report}");
    }
    // Every kind of chat-model change was made, and none hit a fault of the core.
    for op in ["edit", "delete", "react", "read"] {
        assert!(
            report.changes.get(op).copied().unwrap_or(0) > 0,
            "no {op}: {report}"
        );
    }
    assert!(
        report.change_errors.keys().all(|k| !k.ends_with("storage")
            && !k.ends_with("protocol")
            && !k.ends_with("internal")),
        "{report}"
    );
}
