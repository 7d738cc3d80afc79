#!/usr/bin/env bash
# Checks debian_mirror (scripts/toolchains/apt-mirror.sh) on fixtures of both apt source formats
# and on this machine's own sources, and that no script names a Debian mirror host itself.
#   ./scripts/toolchains/test-apt-mirror.sh     # exit 0: all good
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=scripts/toolchains/apt-mirror.sh
source scripts/toolchains/apt-mirror.sh
unset DEBIAN_MIRROR
fail=0
check() { # name expected actual
    if [ "$2" = "$3" ]; then echo "ok   $1: $3"; else echo "FAIL $1: expected '$2', got '$3'"; fail=1; fi
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# deb822, the security stanza first: skipped; a comment and a continuation line.
mkdir -p "$tmp/a/etc/apt/sources.list.d"
cat > "$tmp/a/etc/apt/sources.list.d/debian.sources" <<'SRC'
Types: deb
URIs: http://security.example.test/debian-security
Suites: bookworm-security
Components: main

# the archive
Types: deb deb-src
URIs:
 http://mirror.example.test/debian/
Suites: bookworm bookworm-updates
Components: main
SRC
check "deb822" "http://mirror.example.test/debian" "$(APT_ROOT="$tmp/a" debian_mirror)"

# One-line format with options, a deb-src line and a security line before the archive.
mkdir -p "$tmp/b/etc/apt"
cat > "$tmp/b/etc/apt/sources.list" <<'SRC'
# comment
deb-src http://src.example.test/debian bookworm main
deb [signed-by=/usr/share/keyrings/x.gpg arch=amd64] http://security.example.test/debian-security bookworm-security main
deb [arch=amd64] https://mirror2.example.test/debian bookworm main
SRC
check "one-line" "https://mirror2.example.test/debian" "$(APT_ROOT="$tmp/b" debian_mirror)"

# Nothing configured: an error, not a guess.
mkdir -p "$tmp/c/etc/apt"
if APT_ROOT="$tmp/c" debian_mirror >/dev/null 2>&1; then echo "FAIL empty: expected an error"; fail=1; else echo "ok   empty: refused"; fi

# DEBIAN_MIRROR wins.
check "override" "http://chosen.example.test/debian" "$(DEBIAN_MIRROR=http://chosen.example.test/debian/ debian_mirror)"

# This machine: whatever its sources say, found by both readers' rules.
mine="$(debian_mirror)"
echo "this machine: $mine"
[ -n "$mine" ] || { echo "FAIL this machine: nothing found"; fail=1; }
grep -rqsF "$mine" /etc/apt/sources.list /etc/apt/sources.list.d/ || { echo "FAIL this machine: $mine is not in its sources"; fail=1; }

# No script names a mirror host.
if grep -rnE 'deb\.debian\.org|debian\.org/' scripts; then echo "FAIL: a script names a Debian host"; fail=1; else echo "ok   no Debian host named in scripts/"; fi
exit "$fail"
