//! Scenario 8, FFI: a page of 50 messages fetched from the Kotlin bindings on the JVM, per
//! call, against the same call made from Rust in-process on the same store (the in-run
//! baseline that shows what the FFI crossing and conversion cost). The Kotlin driver
//! (bench/kotlin/Bench.kt, compiled and started by bench/kotlin/run.sh) prints its samples as
//! one JSON line, like the bench's own children.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use chatsync_core::bench_internals::BenchStore;
use chatsync_core::{ChatClient, ClientConfig, TokenSource};

use crate::data::{check_newest_page, history, room_id};
use crate::persist::MOBILE_CACHE_BYTES;
use crate::report::{ms_since, Report};
use crate::stats::Samples;
use crate::Sizes;

/// Messages in the room the pages are read from.
const ROOM_MESSAGES: u64 = 10_000;
/// Calls per timed batch (a single call is too short to time alone).
const CALLS_PER_BATCH: usize = 100;

/// Runs scenario 8 with the Kotlin runner script `runner` (None: not measured).
pub fn run(sizes: &Sizes, runner: Option<&Path>, report: &mut Report) {
    report.section("8. FFI: a page of 50 messages per call (microseconds per call)");
    let dir = tempfile::tempdir().expect("temp dir");
    let store_dir = dir.path().join("chatsync");
    {
        let mut store = BenchStore::open(&store_dir, MOBILE_CACHE_BYTES).expect("open");
        let all: Vec<_> = history(ROOM_MESSAGES, 1).collect();
        for chunk in all.chunks(1_000) {
            store.apply_sync_batch(chunk).expect("seed");
            store.flush().expect("flush");
        }
    }
    let room = room_id(0);

    // Rust, in-process: the same public call the bindings wrap.
    let rust = {
        let config = ClientConfig::new(
            "http://127.0.0.1:9",
            &store_dir,
            "alice",
            TokenSource::Fixed("unused".into()),
        );
        let client = ChatClient::new(config).expect("open the store");
        let page = |client: &ChatClient| {
            client
                .messages(room.clone(), 50, None)
                .expect("read a page")
        };
        let first: Vec<(u64, String)> = page(&client)
            .into_iter()
            .map(|m| (m.server_id.expect("id"), m.text))
            .collect();
        check_newest_page(&first, ROOM_MESSAGES, 1, 0, 50).expect("Rust read the wrong page");
        for _ in 0..sizes.ffi_warmup {
            std::hint::black_box(page(&client));
        }
        let mut samples = Samples::default();
        for _ in 0..sizes.ffi_batches {
            let t = Instant::now();
            for _ in 0..CALLS_PER_BATCH {
                std::hint::black_box(page(&client));
            }
            samples.push(ms_since(t) * 1_000.0 / CALLS_PER_BATCH as f64);
        }
        client.shutdown();
        samples
    };
    report.row("Rust ChatClient::messages (in-process)", &rust, "us", None);

    let Some(runner) = runner else {
        report.not_measured(
            "Kotlin/JVM through the UniFFI bindings",
            "no Kotlin runner given (--kotlin-runner)",
        );
        return;
    };
    let output = Command::new("bash")
        .arg(runner)
        .args([
            store_dir.display().to_string(),
            room.clone(),
            ROOM_MESSAGES.to_string(),
            sizes.ffi_warmup.to_string(),
            sizes.ffi_batches.to_string(),
            CALLS_PER_BATCH.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("start the Kotlin runner");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Kotlin runner failed ({}): {stdout}",
        output.status
    );
    let line = stdout.lines().last().unwrap_or_default();
    let result: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("Kotlin runner printed {line:?}, not JSON: {e}"));
    let kotlin = Samples(
        result["per_call_us"]
            .as_array()
            .expect("per_call_us")
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect(),
    );
    report.row(
        "Kotlin ChatClient.messages (JVM, UniFFI/JNA)",
        &kotlin,
        "us",
        Some(rust.summary().median),
    );
    report.note("the ratio is Kotlin's per-call time over the same call made from Rust in-process");
}
