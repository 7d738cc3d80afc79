#!/usr/bin/env bash
# Compiles the generated Swift bindings, the AsyncStream wrappers and the scenario with Debian
# trixie's swiftc inside the toolchain chroot, then runs the scenario there. The library and the
# server are built on the host and copied in (the host's glibc is older than trixie's, so they
# load there); the chroot shares the host's network, so loopback is the host's loopback.
#
#   tests/swift/run.sh SWIFT_ROOT GENERATED_DIR LIB_DIR SERVER_BIN PORT
set -euo pipefail
root="$1" generated="$2" lib_dir="$3" server_bin="$4" port="$5"
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

# A private work folder inside the chroot, so concurrent runs do not collide.
inner="/work/chatsync-swift-$$"
work="$root$inner"
in_root="$repo/scripts/toolchains/in-swift-root.sh"  # chroot with a private /proc
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$work/lib" "$work/gen" "$work/src"
cp "$lib_dir/libchatsync.so" "$work/lib/"
cp "$server_bin" "$work/chatsync-server"
cp "$generated"/Chatsync.swift "$generated"/chatsyncFFI.h "$generated"/chatsyncFFI.modulemap "$work/gen/"
cp "$repo"/bindings/swift/*.swift "$here"/main.swift "$work/src/"

sources=("$inner/gen/Chatsync.swift")
for f in "$work"/src/*.swift; do sources+=("$inner/src/$(basename "$f")"); done
echo "[swift] compiling ($("$in_root" "$root" swiftc --version 2>&1 | head -n1))" >&2
"$in_root" "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root \
    swiftc -swift-version 6 -module-name ChatsyncScenario \
    -I "$inner/gen" -Xcc -fmodule-map-file="$inner/gen/chatsyncFFI.modulemap" \
    -L "$inner/lib" -lchatsync -Xlinker -rpath -Xlinker "$inner/lib" \
    "${sources[@]}" -o "$inner/scenario"
echo "[swift] running the scenario" >&2
"$in_root" "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root TMPDIR=/tmp \
    CHATSYNC_SERVER_BIN="$inner/chatsync-server" CHATSYNC_TEST_PORT="$port" \
    "$inner/scenario"
