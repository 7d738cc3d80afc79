#!/usr/bin/env bash
# Runs a command inside the Swift root (see swift.sh) with its own /proc (swiftc finds its
# libraries through /proc/self/exe), in a private mount namespace: the mount is invisible to
# other runs using the same root at the same time, and vanishes with the command, even when the
# command is killed. (A shared /proc mount in the root would be unmounted by whichever run
# finishes first, under the feet of the others.)
#
#   scripts/toolchains/in-swift-root.sh SWIFT_ROOT COMMAND [ARGS...]
set -euo pipefail
root="${1:?swift root}"
shift
exec unshare --mount --propagation private -- \
    /bin/sh -c 'mount -t proc proc "$0/proc" && exec chroot "$0" "$@"' "$root" "$@"
