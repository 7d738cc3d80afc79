# shellcheck shell=bash
# The Debian archive this machine already uses, read from its own apt sources, so no script of
# the project names a mirror host: a machine behind a proxy, a local mirror or a snapshot archive
# keeps using what its administrator configured.
#
#   source scripts/toolchains/apt-mirror.sh
#   mirror="$(debian_mirror)"     # the URI as the sources write it, without a trailing slash
#
# Sourcing it has no side effect (unlike common.sh, it takes no lock). Reads, in order:
#   - deb822 files, $APT_ROOT/etc/apt/sources.list.d/*.sources: the `URIs:` of a stanza whose
#     `Types:` include `deb` and whose `Suites:` are not only -security ones;
#   - one-line files, $APT_ROOT/etc/apt/sources.list and sources.list.d/*.list: `deb` lines
#     (options in [brackets] skipped), -security suites skipped.
# The first URI found wins. Fails (status 1, a line on stderr) when there is none: set
# DEBIAN_MIRROR to choose one by hand. APT_ROOT (default empty: /) exists for the check in
# scripts/toolchains/test-apt-mirror.sh.

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then
        printf '%s\n' "${DEBIAN_MIRROR%/}"
        return 0
    fi
    local root="${APT_ROOT:-}"
    local uri=""
    local f
    for f in "$root"/etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        # One stanza per blank-line-separated paragraph; fields may be in any order.
        uri="$(awk '
            function flush() {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && uris != "" && suites != "" && !only_security) {
                    split(uris, u, /[ \t]+/); print u[1]; found = 1; exit
                }
                types = ""; uris = ""; suites = ""; only_security = 0
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            # A continuation line (leading blank) adds to the field above it.
            /^[ \t]/ { value = value " " $0 }
            /^[^ \t]/ {
                key = tolower($1); sub(/:.*$/, "", key)
                value = $0; sub(/^[^:]*:/, "", value)
            }
            {
                sub(/^[ \t]+/, "", value); sub(/[ \t]+$/, "", value)
                if (key == "types") types = value
                else if (key == "uris") uris = value
                else if (key == "suites") {
                    suites = value; only_security = 1
                    n = split(value, s, /[ \t]+/)
                    for (i = 1; i <= n; i++) if (s[i] != "" && s[i] !~ /-security$/) only_security = 0
                }
            }
            END { if (!found) flush() }
        ' "$f")"
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ]; then
        for f in "$root"/etc/apt/sources.list "$root"/etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            uri="$(awk '
                $1 != "deb" { next }
                {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) ~ /-security$/) next
                    print $i; exit
                }
            ' "$f")"
            [ -n "$uri" ] && break
        done
    fi
    if [ -z "$uri" ]; then
        printf 'no Debian archive found in %s/etc/apt sources; set DEBIAN_MIRROR\n' "${root:-}" >&2
        return 1
    fi
    printf '%s\n' "${uri%/}"
}
