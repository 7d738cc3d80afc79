#!/usr/bin/env bash
# Installs every toolchain the cross-language tests need (idempotent, cached; see common.sh).
# Prints `KOTLIN_HOME=...` and `SWIFT_ROOT=...` lines on stdout for the callers to eval.
set -euo pipefail
dir="$(dirname "$0")"
start=$(date +%s)
kotlin_home="$("$dir/kotlin.sh" | tail -n1)"
swift_root="$("$dir/swift.sh" | tail -n1)"
echo "KOTLIN_HOME=$kotlin_home"
echo "SWIFT_ROOT=$swift_root"
printf '[toolchains] ready in %ss\n' "$(( $(date +%s) - start ))" >&2
