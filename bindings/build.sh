#!/usr/bin/env bash
# Builds libchatsync for this machine and generates the Kotlin and Swift bindings from it
# (UniFFI library mode), next to the idiomatic wrappers of bindings/kotlin and bindings/swift.
#
#   bindings/build.sh [--release] [--features F] [--out DIR]
#
# Output (default DIR = target/bindings):
#   DIR/kotlin/dev/chatsync/chatsync.kt   generated Kotlin (package dev.chatsync), post-processed
#   DIR/swift/Chatsync.swift              generated Swift, post-processed (needs
#                                         bindings/swift/ChatsyncExtensions.swift in its module)
#   DIR/swift/chatsyncFFI.h, .modulemap   the C part Swift imports
#   DIR/lib/libchatsync.so                the library the bindings were generated from (a
#                                         private copy: other builds in the shared target dir
#                                         may rebuild target/debug with other features)
#
# With --release, DIR/lib holds the stripped release library, but the sources are generated from
# a debug build of the same code: the release profile strips symbols, and UniFFI's library mode
# reads its metadata from them. The generated sources are the same for both profiles.
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
rm -rf "$out/kotlin" "$out/swift" "$out/lib" "$out/gen"
mkdir -p "$out/kotlin" "$out/swift" "$out/lib"
cp "target/$profile/libchatsync.so" "$out/lib/"
lib="$out/lib/libchatsync.so"
meta_lib="$lib"
if [ "$profile" = release ]; then
    # Same features, debug profile: symbols intact for the generator (see the header).
    debug_flags=()
    for f in ${cargo_flags[@]+"${cargo_flags[@]}"}; do [ "$f" = --release ] || debug_flags+=("$f"); done
    cargo build -p chatsync-ffi ${debug_flags[@]+"${debug_flags[@]}"}
    mkdir -p "$out/gen"
    cp target/debug/libchatsync.so "$out/gen/"
    meta_lib="$out/gen/libchatsync.so"
fi
"$bindgen" generate --no-format --library "$meta_lib" --language kotlin --out-dir "$out/kotlin"
"$bindgen" generate --no-format --library "$meta_lib" --language swift --out-dir "$out/swift"
# Adjust what UniFFI generates (docs/adr/0013): Kotlin error messages are the readable text and
# a closed object throws ChatException.ShutDown; Swift async calls honour Task cancellation.
# Each rewrite checks the shape it rewrites and fails the build when it is not found.
perl bindings/postprocess.pl kotlin "$out/kotlin/dev/chatsync/chatsync.kt"
perl bindings/postprocess.pl swift "$out/swift/Chatsync.swift"
# The Swift module map name SwiftPM and swiftc -I expect.
cp "$out/swift/chatsyncFFI.modulemap" "$out/swift/module.modulemap"
echo "bindings generated in $out (library: $lib)" >&2
