#!/usr/bin/env bash
# The benchmark command (issue 8): builds in release with the apps' profile, runs every
# scenario, and prints every figure next to its baselines (redux-persist, SQLite) in one run.
# Results, and the machine they were taken on, are recorded in BENCHMARKS.md.
#
#   scripts/bench.sh          the full run: release build, the Kotlin toolchain (installed once,
#                             cached, see scripts/toolchains/), the release libchatsync and its
#                             generated Kotlin bindings for scenarios 7 and 8
#   scripts/bench.sh --quick  the CI smoke run: debug build, small sizes, no size/FFI
#                             scenarios; under a minute once built (its figures mean nothing)
#
# Exits non-zero when any scenario fails or reads back wrong data.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--quick" ]; then
    cargo build -p chatsync-bench
    exec target/debug/chatsync-bench run --quick
fi
[ $# -eq 0 ] || { echo "usage: scripts/bench.sh [--quick]" >&2; exit 2; }

out=target/bench
mkdir -p "$out"
cargo build --release -p chatsync-bench
# A private copy: other builds in the shared target dir may replace target/release meanwhile.
cp target/release/chatsync-bench "$out/chatsync-bench"

# Scenarios 7 and 8: the release cdylib (built with -p, as the apps build it) and its Kotlin
# bindings, compiled with the driver.
KOTLIN_HOME="$(scripts/toolchains/kotlin.sh | tail -n1)"
export KOTLIN_HOME
bindings/build.sh --release --out "$out/bindings"
classes="$out/kotlin-classes"
rm -rf "$classes" && mkdir -p "$classes"
echo "[bench] compiling the Kotlin FFI driver" >&2
"$KOTLIN_HOME/bin/kotlinc" -jvm-target 17 -nowarn \
    -cp "/usr/share/java/jna.jar:$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar" -d "$classes" \
    "$out"/bindings/kotlin/dev/chatsync/*.kt bench/kotlin/Bench.kt

export CHATSYNC_BENCH_KOTLIN_CLASSES="$PWD/$classes"
export CHATSYNC_BENCH_LIB_DIR="$PWD/$out/bindings/lib"
exec "$out/chatsync-bench" run \
    --cdylib "$out/bindings/lib/libchatsync.so" \
    --kotlin-runner bench/kotlin/run.sh
