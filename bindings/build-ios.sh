#!/usr/bin/env bash
# Builds Chatsync.xcframework (static libchatsync.a for devices and simulators, with the C
# header and module map) and the Swift sources to add next to it. Runs on a Mac with Xcode
# (not on CI here: no Apple SDKs).
#
#   bindings/build-ios.sh OUT_DIR
#
# Needs: rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:?output directory}"

for target in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
    cargo build -p chatsync-ffi --release --target "$target"
done

# Swift sources and the C header come from a host build (they do not depend on the target).
bindings/build.sh --release --out target/bindings-release
gen=target/bindings-release/swift

rm -rf "$out" && mkdir -p "$out/include" "$out/sim" "$out/Sources"
cp "$gen/chatsyncFFI.h" "$out/include/"
cp "$gen/chatsyncFFI.modulemap" "$out/include/module.modulemap"
# One simulator slice with both architectures.
lipo -create target/aarch64-apple-ios-sim/release/libchatsync.a target/x86_64-apple-ios/release/libchatsync.a \
    -output "$out/sim/libchatsync.a"
xcodebuild -create-xcframework \
    -library target/aarch64-apple-ios/release/libchatsync.a -headers "$out/include" \
    -library "$out/sim/libchatsync.a" -headers "$out/include" \
    -output "$out/Chatsync.xcframework"
cp "$gen/Chatsync.swift" bindings/swift/*.swift "$out/Sources/"
echo "$out/Chatsync.xcframework and $out/Sources/*.swift (add both to the app target)" >&2
