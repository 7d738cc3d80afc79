//! Scenario 7, size: the release cdylib the apps ship (`libchatsync.so`, built by
//! `cargo build -p chatsync-ffi --release` in scripts/bench.sh), with the release profile it was
//! built with, read from the root Cargo.toml so the printed profile cannot drift.

use std::path::Path;

use crate::report::Report;

/// Runs scenario 7 on the library at `cdylib`.
pub fn run(cdylib: &Path, report: &mut Report) {
    let bytes =
        std::fs::read(cdylib).unwrap_or_else(|e| panic!("cannot read {}: {e}", cdylib.display()));
    assert!(
        bytes.starts_with(b"\x7fELF"),
        "{} is not an ELF library",
        cdylib.display()
    );
    // A stripped library has no static symbol table; its section-name table then has no `.symtab`.
    let stripped = !bytes.windows(8).any(|w| w == b".symtab\0");
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
            .expect("read the root Cargo.toml");
    let profile: Vec<&str> = manifest
        .lines()
        .skip_while(|l| l.trim() != "[profile.release]")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::trim)
        .collect();
    report.section("7. size: release cdylib of chatsync-ffi (linux x86_64)");
    report.single(
        &format!(
            "{} ({})",
            cdylib.file_name().unwrap_or_default().to_string_lossy(),
            if stripped { "stripped" } else { "NOT stripped" }
        ),
        bytes.len() as f64,
        "bytes",
        None,
    );
    report.note(&format!(
        "[profile.release] {}; panic strategy: {}",
        profile.join(", "),
        if profile.iter().any(|l| l.starts_with("panic")) {
            "as set above"
        } else {
            "unwind (the default; kept so the FFI turns panics into errors)"
        }
    ));
    assert!(stripped, "the release cdylib is not stripped");
}
