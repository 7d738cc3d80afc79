#!/usr/bin/env bash
# Installs what the Kotlin bindings test needs, idempotently:
# - kotlinc from the npm package `kotlin-compiler` (the full JVM compiler, with kotlin-stdlib and
#   kotlinx-coroutines-core-jvm in its lib/), unpacked into the cache;
# - JNA from Debian's `libjna-java` (jar + its native dispatch library);
# - a JDK (Debian's default-jdk-headless) when `java` is missing.
# Prints nothing on stdout but, as its last line, the kotlin home directory.
set -euo pipefail
source "$(dirname "$0")/common.sh"

KOTLIN_VERSION="${KOTLIN_VERSION:-2.4.20}"
KOTLIN_HOME="$CHATSYNC_TOOLCHAINS/kotlin-compiler-$KOTLIN_VERSION"

command -v java >/dev/null || apt_install default-jdk-headless
apt_install libjna-java

if [ ! -f "$KOTLIN_HOME/.done" ]; then
    log "installing kotlin-compiler $KOTLIN_VERSION from npm into $KOTLIN_HOME"
    rm -rf "$KOTLIN_HOME" "$KOTLIN_HOME.tmp"
    mkdir -p "$KOTLIN_HOME.tmp"
    ( cd "$KOTLIN_HOME.tmp" && npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null )
    tar -xzf "$KOTLIN_HOME.tmp"/kotlin-compiler-*.tgz -C "$KOTLIN_HOME.tmp"
    mv "$KOTLIN_HOME.tmp/package" "$KOTLIN_HOME"
    rm -rf "$KOTLIN_HOME.tmp"
    chmod +x "$KOTLIN_HOME"/bin/*
    for jar in kotlin-stdlib.jar kotlinx-coroutines-core-jvm.jar; do
        [ -f "$KOTLIN_HOME/lib/$jar" ] || { log "missing lib/$jar in kotlin-compiler"; exit 1; }
    done
    touch "$KOTLIN_HOME/.done"
fi
[ -f /usr/share/java/jna.jar ] || { log "jna.jar missing after installing libjna-java"; exit 1; }
echo "$KOTLIN_HOME"
