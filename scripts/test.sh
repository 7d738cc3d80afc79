#!/usr/bin/env bash
# Runs every test of the project: the Rust workspace (against the real server on loopback), and
# the cross-language stages as they land. Installs what it needs itself, idempotently.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
cargo nextest run --workspace --no-fail-fast
