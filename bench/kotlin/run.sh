#!/usr/bin/env bash
# Runs the Kotlin FFI driver (Bench.kt) compiled by scripts/bench.sh; called by chatsync-bench
# with the driver's arguments (see Bench.kt). Needs CHATSYNC_BENCH_KOTLIN_CLASSES (compiled
# classes), CHATSYNC_BENCH_LIB_DIR (the libchatsync.so the bindings were generated from) and
# KOTLIN_HOME (for the Kotlin stdlib and coroutines jars).
set -euo pipefail
: "${CHATSYNC_BENCH_KOTLIN_CLASSES:?} ${CHATSYNC_BENCH_LIB_DIR:?} ${KOTLIN_HOME:?}"
jna=/usr/share/java/jna.jar
cp="$CHATSYNC_BENCH_KOTLIN_CLASSES:$jna:$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar:$KOTLIN_HOME/lib/kotlin-stdlib.jar"
exec java -Djna.library.path="$CHATSYNC_BENCH_LIB_DIR" -cp "$cp" BenchKt "$@"
