//! The benchmark command itself: a `--quick` run completes and prints every scenario, and a
//! child that reads back the wrong data fails the run loudly instead of printing a figure.

use std::process::Command;

const BENCH: &str = env!("CARGO_BIN_EXE_chatsync-bench");

#[test]
fn a_quick_run_prints_every_scenario() {
    let output = Command::new(BENCH)
        .args(["run", "--quick"])
        .output()
        .expect("run the bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "quick run failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    for n in 1..=8 {
        assert!(
            stdout.lines().any(|l| l.starts_with(&format!("{n}. "))),
            "scenario {n} missing:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("NaN") && !stdout.contains("inf "),
        "a figure is not a number:\n{stdout}"
    );
    // Without --cdylib and a Kotlin runner, those figures are said to be missing, never invented.
    assert_eq!(stdout.matches("not measured").count(), 2, "{stdout}");
}

#[test]
fn a_child_reading_the_wrong_first_screen_fails() {
    let dir = tempfile::tempdir().unwrap();
    // A redux-persist state with one message where the child expects the newest 50 of 100.
    let state = r#"{"room-000":[{"id":100,"user_id":"alice","room_id":"room-000","parts":[{"type":"text/plain","content":"x"}],"created_at":"2026-11-25T06:00:00.000Z","updated_at":"2026-11-25T06:00:00.000Z"}]}"#;
    std::fs::write(dir.path().join("redux.json"), state).unwrap();
    let output = Command::new(BENCH)
        .args(["child", "cold-start", "redux-persist"])
        .arg(dir.path())
        .args(["100", "1", "0"])
        .output()
        .expect("run the child");
    assert!(
        !output.status.success(),
        "a wrong first screen was accepted"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wrong first screen"), "{stderr}");
    assert!(
        output.stdout.is_empty(),
        "a figure was printed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
}
