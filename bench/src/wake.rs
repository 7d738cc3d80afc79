//! Scenario 4, idle background wake: `background_sync` when nothing is new, through a counting
//! loopback proxy (requests and bytes on the wire as the proxy saw them), with the wall and CPU
//! time of the child process doing it. Two shapes: a client that stays open between wakes
//! (`ChatClient::background_sync`, all wakes in one process), and the one-shot an OS background
//! task runs in a process started for it (`background_sync_at`: open the store, sync, close;
//! one fresh process per wake, whose peak RSS is what an iOS extension would be charged).

use std::time::{Duration, Instant};

use chatsync_core::{background_sync_at, ChatClient, ClientConfig, TokenSource};

use crate::process::{cpu_time, peak_rss_kib, say, wait_for_parent, ChildProcess};
use crate::proxy;
use crate::report::{ms_since, Report};
use crate::server::SeededServer;
use crate::stats::Samples;
use crate::Sizes;

/// Budget handed to `background_sync` (what iOS gives a refresh task, roughly).
const BUDGET_MS: u64 = 25_000;

/// Runs scenario 4 against `server`.
/// `store` is up to date with the server (the last store of scenario 3, holding its history).
pub fn run(
    sizes: &Sizes,
    server: &SeededServer,
    store: &std::path::Path,
    runtime: &tokio::runtime::Runtime,
    report: &mut Report,
) {
    let (proxy_addr, counters) = runtime
        .block_on(proxy::start(server.server.addr()))
        .expect("start the proxy");
    let proxy_url = format!("http://{proxy_addr}");
    report.section(&format!(
        "4. idle background wake: background_sync with nothing new, store holding {} messages ({} wakes per shape, through a counting proxy)",
        server.newest_id, sizes.wakes
    ));
    for mode in ["warm", "oneshot"] {
        // The open client wakes `wakes` times in one process; each one-shot is a process of its
        // own, as the OS starts one per background task.
        let (children, wakes_per_child) = if mode == "warm" {
            (1, sizes.wakes)
        } else {
            (sizes.wakes, 1)
        };
        let (mut wall, mut cpu, mut rss) =
            (Samples::default(), Samples::default(), Samples::default());
        let mut wire = proxy::Counts::default();
        for _ in 0..children {
            let mut child = ChildProcess::spawn(&[
                "idle-wake".into(),
                mode.into(),
                proxy_url.clone(),
                server.alice_token.clone(),
                store.display().to_string(),
                wakes_per_child.to_string(),
            ]);
            child.expect_line("ready");
            let before = counters.snapshot();
            child.send_line("go");
            child.expect_line("done");
            let seen = counters.snapshot().since(before);
            wire = wire.plus(seen);
            let result = child.finish();
            let values = |key: &str| -> Vec<f64> {
                result[key]
                    .as_array()
                    .expect(key)
                    .iter()
                    .map(|v| v.as_f64().expect("number"))
                    .collect()
            };
            wall.0.extend(values("wall_ms"));
            cpu.0.extend(values("cpu_ms"));
            rss.push(result["peak_rss_kib"].as_f64().expect("peak_rss_kib") / 1024.0);
        }
        let per_wake = |n: u64| n as f64 / sizes.wakes as f64;
        let label = if mode == "warm" {
            "open client"
        } else {
            "one-shot (fresh process)"
        };
        report.row(&format!("{label}: wall"), &wall, "ms", None);
        report.row(&format!("{label}: CPU (user+sys)"), &cpu, "ms", None);
        report.single(
            &format!("{label}: requests per wake"),
            per_wake(wire.requests),
            "",
            None,
        );
        report.single(
            &format!("{label}: bytes up per wake"),
            per_wake(wire.bytes_up),
            "bytes",
            None,
        );
        report.single(
            &format!("{label}: bytes down per wake"),
            per_wake(wire.bytes_down),
            "bytes",
            None,
        );
        report.single(
            &format!("{label}: TCP connections per wake"),
            per_wake(wire.connections),
            "",
            None,
        );
        report.row(
            &format!("{label}: peak RSS of the process"),
            &rss,
            "MiB",
            None,
        );
    }
    report.note(
        "requests and bytes are totals seen by the proxy over all wakes, divided by the wakes",
    );
    report.note(
        "one-shot: background_sync_at in a new process per wake (open the store, sync, close)",
    );
}

/// In the child: `idle-wake MODE URL TOKEN DIR WAKES`. Waits for `go`, wakes, says `done`.
pub fn child(args: &[String]) -> serde_json::Value {
    let [mode, url, token, dir, wakes] = args else {
        panic!("idle-wake MODE URL TOKEN DIR WAKES, got {args:?}")
    };
    let wakes: usize = wakes.parse().expect("WAKES");
    let config = ClientConfig::new(url.clone(), dir, "alice", TokenSource::Fixed(token.clone()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = (mode == "warm").then(|| ChatClient::new(config.clone()).expect("open the store"));
    say("ready");
    wait_for_parent("go");
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..wakes {
        let (t, c) = (Instant::now(), cpu_time());
        let report = match &client {
            Some(client) => runtime.block_on(client.background_sync(BUDGET_MS)),
            None => runtime.block_on(background_sync_at(config.clone(), BUDGET_MS)),
        };
        wall.push(ms_since(t));
        cpu.push((cpu_time() - c).as_secs_f64() * 1_000.0);
        assert!(
            report.outcome == chatsync_core::BackgroundOutcome::Completed && report.online,
            "wake did not finish: {report:?}"
        );
        assert!(report.error.is_none(), "wake failed: {report:?}");
        assert!(
            report.new_messages.is_empty(),
            "an idle wake found new messages: {report:?}"
        );
    }
    say("done");
    if let Some(client) = client {
        client.shutdown();
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    serde_json::json!({ "wall_ms": wall, "cpu_ms": cpu, "peak_rss_kib": peak_rss_kib() })
}
