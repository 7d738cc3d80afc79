#!/usr/bin/env bash
# Compiles the generated Kotlin bindings, the Flow wrappers and the scenario with the npm
# kotlin-compiler, then runs the scenario on the JVM (JNA loads target/<profile>/libchatsync.so).
#
#   tests/kotlin/run.sh KOTLIN_HOME GENERATED_DIR LIB_DIR SERVER_BIN PORT
set -euo pipefail
kotlin_home="$1" generated="$2" lib_dir="$3" server_bin="$4" port="$5"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
classes="$repo/target/kotlin-test/classes"
jna=/usr/share/java/jna.jar
coroutines="$kotlin_home/lib/kotlinx-coroutines-core-jvm.jar"
stdlib="$kotlin_home/lib/kotlin-stdlib.jar"

rm -rf "$classes" && mkdir -p "$classes"
echo "[kotlin] compiling (kotlinc $(cat "$kotlin_home/build.txt" 2>/dev/null || echo '?'))" >&2
"$kotlin_home/bin/kotlinc" -jvm-target 17 -nowarn -cp "$jna:$coroutines" -d "$classes" \
    "$generated"/dev/chatsync/*.kt "$repo"/bindings/kotlin/dev/chatsync/*.kt "$here"/Scenario.kt
echo "[kotlin] running the scenario" >&2
CHATSYNC_SERVER_BIN="$server_bin" CHATSYNC_TEST_PORT="$port" \
    java -Djna.library.path="$lib_dir" -cp "$classes:$jna:$coroutines:$stdlib" ScenarioKt
