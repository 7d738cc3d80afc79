#!/usr/bin/env bash
# Builds libchatsync.so for Android's ABIs into an app's jniLibs folder, and the Kotlin bindings
# for its source set. Runs on a developer machine with the Android NDK (not on CI here: no NDK).
#
#   bindings/build-android.sh JNI_LIBS_DIR KOTLIN_SRC_DIR
#   e.g. bindings/build-android.sh android/src/main/jniLibs android/src/main/java
#
# Needs: ANDROID_NDK_HOME, `cargo install cargo-ndk`, and
#   rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android
set -euo pipefail
cd "$(dirname "$0")/.."
jni_libs="${1:?jniLibs directory}" kotlin_src="${2:?Kotlin source directory}"

# Release profile of the workspace: fat LTO, opt-level s, stripped; panic=unwind is kept so a
# panic in the core becomes ChatException.Internal instead of killing the app.
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 --platform 24 -o "$jni_libs" build -p chatsync-ffi --release

# The Kotlin sources do not depend on the target: generate them from a host build.
bindings/build.sh --release --out target/bindings-release
mkdir -p "$kotlin_src/dev/chatsync"
cp target/bindings-release/kotlin/dev/chatsync/chatsync.kt bindings/kotlin/dev/chatsync/*.kt "$kotlin_src/dev/chatsync/"
echo "libchatsync.so in $jni_libs/<abi>/, Kotlin in $kotlin_src/dev/chatsync/" >&2
