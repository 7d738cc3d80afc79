#!/usr/bin/env bash
# The reference server's throughput and wake-up latency (issue 15; BENCHMARKS.md, server section):
# sends/s at 1, 8, 32 and 128 senders on SQLite with group commit on and off and on PostgreSQL
# with one and three instances, wake latency of 5,000 parked long-polls, sends/s with 1,000 live
# pollers, and latency under offered loads of 1,000 to 4,000 sends/s (open loop). Every figure comes from one run of `chatsync-bench server` against server binaries in
# child processes on loopback. PostgreSQL: a throwaway cluster on loopback with fsync on
# (scripts/pg.sh, CHATSYNC_PG_DURABLE=1; installed from Debian's packages when missing), or the
# database at CHATSYNC_BENCH_PG_URL; NO_POSTGRES=1 leaves those columns out.
#
#   scripts/bench-server.sh                        this build, group commit on and off
#   BASELINE_REV=3b9b418 scripts/bench-server.sh   and the server of that commit (built in a
#                                                  temporary worktree), measured in the same run
#   BASELINE_BIN=path scripts/bench-server.sh      and that server binary
#   DURATION=10 scripts/bench-server.sh            seconds per throughput figure (default 5)
#   scripts/bench-server.sh --only wake            one scenario: sends, wake, live or offered
#
# Built with optimisations and no LTO in target/load, like scripts/load.sh (the same profile for
# every binary measured, so the comparison is fair). Exits non-zero if any answer is not 2xx.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
build_env=(CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
    CARGO_PROFILE_RELEASE_OPT_LEVEL=3 CARGO_PROFILE_RELEASE_STRIP=false)
env "${build_env[@]}" CARGO_TARGET_DIR="$root/target/load" \
    cargo build -q --release -p chatsync-server -p chatsync-bench
args=(--server-bin "$root/target/load/release/chatsync-server" --duration "${DURATION:-5}")

if [ -n "${BASELINE_REV:-}" ]; then
    base="$(mktemp -d)"
    cleanup() {
        git -C "$root" worktree remove --force "$base/src" >/dev/null 2>&1 || true
        rm -rf "$base"
    }
    trap cleanup EXIT
    git -C "$root" worktree add --detach -q "$base/src" "$BASELINE_REV"
    # Its own target dir (builds of two checkouts in one target dir can mix up their crates).
    (cd "$base/src" && env "${build_env[@]}" CARGO_TARGET_DIR="$base/target" \
        cargo build -q --release -p chatsync-server)
    args+=(--baseline-bin "$base/target/release/chatsync-server")
elif [ -n "${BASELINE_BIN:-}" ]; then
    args+=(--baseline-bin "$BASELINE_BIN")
fi
if [ -z "${NO_POSTGRES:-}" ]; then
    if [ -z "${CHATSYNC_BENCH_PG_URL:-}" ]; then
        # shellcheck source=scripts/pg.sh
        source scripts/pg.sh
        unset CHATSYNC_TEST_PG_URL
        CHATSYNC_PG_DURABLE=1 pg_start
        CHATSYNC_BENCH_PG_URL=$CHATSYNC_TEST_PG_URL
    fi
    args+=(--postgres "$CHATSYNC_BENCH_PG_URL")
fi
# Thousands of connections: both ends live on this machine.
ulimit -n "$(ulimit -Hn)" || true
"$root/target/load/release/chatsync-bench" server "${args[@]}" "$@"
