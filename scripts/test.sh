#!/usr/bin/env bash
# All the tests of chatsync, in one command (the README's test command; CI runs exactly this).
#
#   1. rust      the whole workspace with cargo-nextest: server, core, CLI, reliability harness,
#                all against the real reference server on loopback with real sled stores.
#                It starts a throwaway PostgreSQL cluster (scripts/pg.sh; PostgreSQL installed from
#                Debian's packages when missing) for the PostgreSQL store tests, stopped at its end.
#   2. bindings  the generated Kotlin (JVM) and Swift (Linux, trixie chroot) bindings, compiled
#                and run through the same scenario against the real server.
#   3. rn        the React Native package: tsc, JS unit tests, the Android module compiled against
#                android.jar, the iOS module's portable Swift compiled.
#   4. bench     the benchmark binary built and smoke-run (`--quick`) so it never rots.
#
# Every stage installs what it needs itself, idempotently, into /var/cache/chatsync-toolchains
# (override with CHATSYNC_TOOLCHAINS). Stages run even after one fails; the exit code is non-zero
# when any failed. Run a subset with e.g. `scripts/test.sh rust bindings`.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/test-logs

stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(rust bindings rn bench)

ensure_nextest() {
    command -v cargo-nextest >/dev/null && return 0
    cargo install --locked cargo-nextest
}

# The PostgreSQL store tests find their server in CHATSYNC_TEST_PG_URL (set by pg_start, unless the
# caller already set it). pg_stop also runs on EXIT, e.g. when the run is interrupted.
run_rust() {
    ensure_nextest || return
    # shellcheck source=scripts/pg.sh
    source scripts/pg.sh && pg_start || return
    # A missing database fails the PostgreSQL tests instead of skipping them.
    CHATSYNC_REQUIRE_PG=1 cargo nextest run --workspace --no-fail-fast
    local rc=$?
    pg_stop
    return "$rc"
}

run_stage() {
    case "$1" in
        rust) run_rust ;;
        bindings) scripts/test-bindings.sh ;;
        rn) scripts/test-rn.sh ;;
        bench) [ -x scripts/bench.sh ] && scripts/bench.sh --quick ;;
        *) echo "test.sh: unknown stage $1 (rust, bindings, rn, bench)" >&2; return 2 ;;
    esac
}

failed=()
summary=()
for s in "${stages[@]}"; do
    printf '\n===== stage %s =====\n' "$s"
    t0=$(date +%s)
    run_stage "$s" 2>&1 | tee "target/test-logs/$s.log"
    rc=${PIPESTATUS[0]}
    dt=$(( $(date +%s) - t0 ))
    if [ "$rc" -eq 0 ]; then summary+=("$s: ok (${dt}s)"); else summary+=("$s: FAILED rc=$rc (${dt}s)"); failed+=("$s"); fi
done

# Totals: nextest's summary plus each cross-language stage's `N passed, N failed` line.
passed=0; nfailed=0
if [ -f target/test-logs/rust.log ]; then
    line=$(grep -E 'tests run: [0-9]+ passed' target/test-logs/rust.log | tail -n1)
    p=$(sed -nE 's/.*tests run: ([0-9]+) passed.*/\1/p' <<<"$line"); passed=$((passed + ${p:-0}))
    f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line"); nfailed=$((nfailed + ${f:-0}))
fi
for s in bindings rn bench; do
    [ -f "target/test-logs/$s.log" ] || continue
    line=$(grep -E '^([A-Za-z-]+: )?[0-9]+ passed, [0-9]+ failed' "target/test-logs/$s.log" | tail -n1)
    p=$(sed -nE 's/^([A-Za-z-]+: )?([0-9]+) passed.*/\2/p' <<<"$line"); passed=$((passed + ${p:-0}))
    f=$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$line"); nfailed=$((nfailed + ${f:-0}))
done

printf '\n===== summary =====\n'
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ] && [ "$nfailed" -eq 0 ]; then nfailed=${#failed[@]}; fi
echo "total: $passed passed, $nfailed failed"
[ ${#failed[@]} -eq 0 ]
