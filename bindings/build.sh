#!/usr/bin/env bash
# Builds libchatsync for this machine and generates the Kotlin and Swift bindings from it
# (UniFFI library mode), next to the idiomatic wrappers of bindings/kotlin and bindings/swift.
#
#   bindings/build.sh [--release] [--features F] [--out DIR]
#
# Output (default DIR = target/bindings):
#   DIR/kotlin/dev/chatsync/chatsync.kt   generated Kotlin (package dev.chatsync)
#   DIR/swift/Chatsync.swift              generated Swift
#   DIR/swift/chatsyncFFI.h, .modulemap   the C part Swift imports
#   DIR/lib/libchatsync.so                the library the bindings were generated from (a
#                                         private copy: other builds in the shared target dir
#                                         may rebuild target/debug with other features)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
cargo_flags=()
out=target/bindings
while [ $# -gt 0 ]; do
    case "$1" in
        --release) profile=release; cargo_flags+=(--release) ;;
        --features) cargo_flags+=(--features "$2"); shift ;;
        --out) out="$2"; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

# Build only the FFI crate (-p): the generator's `cli` feature must not leak into the library.
cargo build -p chatsync-ffi ${cargo_flags[@]+"${cargo_flags[@]}"}
cargo build -p uniffi-bindgen
bindgen=target/debug/uniffi-bindgen
rm -rf "$out/kotlin" "$out/swift" "$out/lib"
mkdir -p "$out/kotlin" "$out/swift" "$out/lib"
cp "target/$profile/libchatsync.so" "$out/lib/"
lib="$out/lib/libchatsync.so"
"$bindgen" generate --no-format --library "$lib" --language kotlin --out-dir "$out/kotlin"
"$bindgen" generate --no-format --library "$lib" --language swift --out-dir "$out/swift"
# The Swift module map name SwiftPM and swiftc -I expect.
cp "$out/swift/chatsyncFFI.modulemap" "$out/swift/module.modulemap"
echo "bindings generated in $out (library: $lib)" >&2
