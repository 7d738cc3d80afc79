#!/usr/bin/env bash
# Installs Swift for Linux, idempotently: Debian bookworm has no Swift, Debian trixie has
# `swiftlang` (6.0.x), so we debootstrap a minimal trixie root with swiftlang and libc6-dev
# (Foundation needs the C headers) into the cache. About 565 MB download, 3.3 GB on disk.
# Prints, as its last line, the root directory of the chroot.
set -euo pipefail
source "$(dirname "$0")/common.sh"

SWIFT_ROOT="$CHATSYNC_TOOLCHAINS/swift-trixie"
# shellcheck source=scripts/toolchains/apt-mirror.sh
source "$(dirname "$0")/apt-mirror.sh"

if [ ! -f "$SWIFT_ROOT/.done" ]; then
    # The archive this machine's apt already uses (DEBIAN_MIRROR overrides it).
    DEBIAN_MIRROR="$(debian_mirror)"
    apt_install debootstrap
    # A previous attempt may have died with /proc mounted inside: never rm -rf through a mount.
    if mountpoint -q "$SWIFT_ROOT/proc" 2>/dev/null; then umount "$SWIFT_ROOT/proc"; fi
    rm -rf "$SWIFT_ROOT"
    log "debootstrap trixie + swiftlang into $SWIFT_ROOT (a few minutes)"
    debootstrap --variant=minbase --include=swiftlang,libc6-dev trixie "$SWIFT_ROOT" "$DEBIAN_MIRROR" >&2
    [ -x "$SWIFT_ROOT/usr/bin/swiftc" ] || { log "swiftc missing after debootstrap"; exit 1; }
    # Drop the downloaded .debs: 565 MB we never need again.
    rm -f "$SWIFT_ROOT"/var/cache/apt/archives/*.deb
    touch "$SWIFT_ROOT/.done"
fi
echo "$SWIFT_ROOT"
