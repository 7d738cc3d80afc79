#!/usr/bin/env bash
# The Kotlin + Swift stage of the tests: installs the toolchains (idempotent, cached outside the
# clone, see scripts/toolchains/common.sh), builds libchatsync with its test hooks and the
# reference server, generates both bindings, then compiles and runs the same scenario in Kotlin
# (JVM) and Swift (trixie chroot) against the real server on loopback.
#
# Also checks that the post-processing of the generated code (bindings/postprocess.pl) refuses
# code it does not recognise. Prints each stage's `N passed, N failed`, then `bindings: N passed,
# N failed`; exits non-zero when a stage fails or does not report.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

eval "$(scripts/toolchains/install.sh)"   # sets KOTLIN_HOME and SWIFT_ROOT

bindings/build.sh --features selftest --out target/bindings
cargo build -p chatsync-server
server_bin="$PWD/target/debug/chatsync-server"
# A private copy, as for the library: other builds in the shared target dir may replace it.
cp "$server_bin" target/bindings/chatsync-server
server_bin="$PWD/target/bindings/chatsync-server"

# Free loopback ports, one per language (the scenarios restart the server on the same port).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
    local port=$((20000 + RANDOM % 20000))
    while listening "$port"; do port=$((port + 1)); done
    echo "$port"
}

logs="target/bindings/logs"
mkdir -p "$logs"
status=0
run_stage() { # NAME COMMAND...
    local name="$1"; shift
    local t0=$(date +%s)
    # A scenario (a program) runs bounded: one that hangs (a deadlock) fails the stage instead of
    # the whole CI run. A shell function of this script runs as it is (`timeout` cannot run it).
    local bounded=(timeout --kill-after=10 "${SCENARIO_TIMEOUT:-900}")
    declare -F "$1" >/dev/null && bounded=()
    if "${bounded[@]}" "$@" 2>&1 | tee "$logs/$name.log"; then :; else
        status=1
        echo "[$name] failed or ran out of its ${SCENARIO_TIMEOUT:-900} s" >&2
    fi
    echo "[$name] $(( $(date +%s) - t0 ))s" >&2
}
# The post-processing of the generated code (bindings/postprocess.pl, run by build.sh above) must
# refuse code whose shape it does not recognise, or a UniFFI upgrade could undo it silently:
# fed its own output (the shapes it rewrites are gone), each language's run must fail.
postprocess_refuses() {
    local passed=0 failed=0 lang file copy
    for lang in kotlin swift; do
        file=target/bindings/kotlin/dev/chatsync/chatsync.kt
        [ "$lang" = swift ] && file=target/bindings/swift/Chatsync.swift
        copy="$logs/refused.$lang"
        cp "$file" "$copy"
        if perl bindings/postprocess.pl "$lang" "$copy" 2>"$logs/refused.$lang.err"; then
            echo "FAIL postprocess.pl $lang accepted code without the shapes it rewrites"
            failed=$((failed + 1))
        elif cmp -s "$file" "$copy"; then
            echo "ok   postprocess.pl $lang refuses unknown code: $(head -n1 "$logs/refused.$lang.err")"
            passed=$((passed + 1))
        else
            echo "FAIL postprocess.pl $lang changed the file it refused"
            failed=$((failed + 1))
        fi
    done
    echo "postprocess: $passed passed, $failed failed"
}
run_stage postprocess postprocess_refuses
run_stage kotlin tests/kotlin/run.sh "$KOTLIN_HOME" target/bindings/kotlin target/bindings/lib "$server_bin" "$(free_port)"
run_stage swift tests/swift/run.sh "$SWIFT_ROOT" target/bindings/swift target/bindings/lib "$server_bin" "$(free_port)"

passed=0 failed=0
for name in postprocess kotlin swift; do
    line="$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" "$logs/$name.log" | tail -n1 || true)"
    if [ -z "$line" ]; then
        echo "[$name] did not report its results" >&2
        status=1
        failed=$((failed + 1))
        continue
    fi
    read -r p f <<<"$(sed -E 's/^[a-z]+: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$line")"
    passed=$((passed + p)) failed=$((failed + f))
done
echo "[bindings] stage took $(( $(date +%s) - start ))s" >&2
echo "bindings: $passed passed, $failed failed"
[ "$status" = 0 ] && [ "$failed" = 0 ]
