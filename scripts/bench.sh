#!/usr/bin/env bash
# The benchmark command (issue 8): builds in release with the apps' profile, runs every
# scenario, and prints every figure next to its baselines (redux-persist, SQLite) in one run.
# Results, and the machine they were taken on, are recorded in BENCHMARKS.md.
#
#   scripts/bench.sh          the full run: release build, the Kotlin toolchain (installed once,
#                             cached, see scripts/toolchains/), the release libchatsync and the
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

# Scenarios 7 and 8: the release cdylib, built with -p as the apps build it. The release profile
# strips symbols, and UniFFI's library mode reads its metadata from symbols, so the Kotlin
# bindings are generated from an unstripped debug build of the same source (no features: the
# API the apps get) and then run against the stripped release library.
cargo build -p chatsync-ffi --release
mkdir -p "$out/lib" "$out/gen"
cp target/release/libchatsync.so "$out/lib/libchatsync.so"
cargo build -p chatsync-ffi
cp target/debug/libchatsync.so "$out/gen/libchatsync.so"
cargo build -p uniffi-bindgen
rm -rf "$out/kotlin"
target/debug/uniffi-bindgen generate --no-format --library "$out/gen/libchatsync.so" \
    --language kotlin --out-dir "$out/kotlin"

KOTLIN_HOME="$(scripts/toolchains/kotlin.sh | tail -n1)"
export KOTLIN_HOME
classes="$out/kotlin-classes"
rm -rf "$classes" && mkdir -p "$classes"
echo "[bench] compiling the Kotlin FFI driver" >&2
"$KOTLIN_HOME/bin/kotlinc" -jvm-target 17 -nowarn \
    -cp "/usr/share/java/jna.jar:$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar" -d "$classes" \
    "$out"/kotlin/dev/chatsync/*.kt bench/kotlin/Bench.kt

export CHATSYNC_BENCH_KOTLIN_CLASSES="$PWD/$classes"
export CHATSYNC_BENCH_LIB_DIR="$PWD/$out/lib"
exec "$out/chatsync-bench" run \
    --cdylib "$out/lib/libchatsync.so" \
    --kotlin-runner bench/kotlin/run.sh
