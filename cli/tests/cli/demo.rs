//! The README's main job stays working: scripts/demo.sh runs end to end (with the binary under
//! test, so it does not build again) and exits 0.

use std::path::Path;
use std::process::Command;

use crate::support::BIN;

#[test]
fn the_demo_script_runs_the_walkthrough_and_exits_0() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .env("CHATSYNC_DEMO_BIN", BIN)
        .env("TMPDIR", tmp.path())
        .env_remove("CHATSYNC_SERVER")
        .env_remove("CHATSYNC_USER")
        .env_remove("CHATSYNC_DATA")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("delivered exactly once"), "{stdout}");
    assert!(
        stdout.contains("chat --with bob"),
        "it ends with how to chat: {stdout}"
    );
    // It cleaned up after itself.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
