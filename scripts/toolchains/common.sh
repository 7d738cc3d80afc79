# shellcheck shell=bash
# Shared by the toolchain installers: where the cache lives and small helpers.
#
# The cache lives OUTSIDE the repository by default (/var/cache/chatsync-toolchains) because CI
# runs in a fresh clone in another folder on the same machine: a cache inside the clone would be
# rebuilt on every run. Override with CHATSYNC_TOOLCHAINS.
#
# Every installer is idempotent: it writes a `.done` marker only after a complete install, and
# does nothing when the marker is there. A half-finished install (killed session) has no marker
# and is redone from scratch.

CHATSYNC_TOOLCHAINS="${CHATSYNC_TOOLCHAINS:-/var/cache/chatsync-toolchains}"
mkdir -p "$CHATSYNC_TOOLCHAINS"

log() { printf '[toolchains] %s\n' "$*" >&2; }

# One installer at a time per cache (runs of different test stages may start together); the
# lock is held until the installer process exits.
exec 9>"$CHATSYNC_TOOLCHAINS/.install.lock"
flock 9

# Runs apt-get update once per installer process (apt needs fresh lists on a new machine).
apt_updated=0
apt_install() {
    local missing=()
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        apt_updated=1
    fi
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}
