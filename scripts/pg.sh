# shellcheck shell=bash
# A throwaway PostgreSQL cluster for the tests. Source this file (bash), then:
#
#   pg_start   make sure PostgreSQL is installed (Debian's `postgresql` package when initdb/pg_ctl
#              are missing), initdb a fresh cluster in a temp dir, start it on a free port on
#              127.0.0.1 only, create the database chatsync_test and export
#              CHATSYNC_TEST_PG_URL=postgres://chatsync@127.0.0.1:PORT/chatsync_test.
#              Does nothing when CHATSYNC_TEST_PG_URL is already set (bring your own server).
#              fsync is off (a throwaway cluster) unless CHATSYNC_PG_DURABLE=1 (benchmarks).
#              Registers pg_stop on EXIT, after any EXIT trap already set (which still runs).
#   pg_stop    stop the cluster (immediate) and delete its temp dir; safe to call twice.
#
# Works as root (CI): initdb and pg_ctl refuse root, so they run as the `postgres` OS user.

# State of the cluster this shell started (kept if the file is sourced again).
: "${_pg_dir:=}" "${_pg_url:=}" "${_pg_bindir:=}" "${_pg_user:=}" "${_pg_trap_pid:=}"

# The newest usable bin dir: initdb/pg_ctl on PATH, else /usr/lib/postgresql/<newest>/bin.
_pg_find_bindir() {
    local p d
    if p=$(command -v initdb) && command -v pg_ctl >/dev/null; then
        d=$(dirname "$(readlink -f "$p")")
        if [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    fi
    for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    return 1
}

# A PostgreSQL program: from the cluster's bin dir when there, else from PATH.
_pg_bin() {
    if [ -x "$_pg_bindir/$1" ]; then echo "$_pg_bindir/$1"; else echo "$1"; fi
}

# Run a command as the cluster's owner (root can't run initdb/pg_ctl), from / so that a cwd
# the owner can't read (e.g. /root) doesn't matter.
_pg_as() {
    if [ "$(id -u)" -ne 0 ]; then (cd / && "$@"); return; fi
    if command -v runuser >/dev/null; then
        (cd / && runuser -u "$_pg_user" -- "$@")
    else
        (cd / && setpriv --reuid="$(id -u "$_pg_user")" --regid="$(id -g "$_pg_user")" --init-groups -- "$@")
    fi
}

_pg_install() {
    echo "pg.sh: installing PostgreSQL from Debian's packages"
    if [ "$(id -u)" -ne 0 ]; then
        echo "pg.sh: PostgreSQL is missing and we are not root: apt-get install postgresql" >&2
        return 1
    fi
    # The machine's own apt sources; `apt-get update` only when the install fails (stale lists).
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends postgresql \
        || { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; }
}

# Chain pg_stop in front of the shell's current EXIT trap (once per shell/subshell).
_pg_register_trap() {
    [ "$_pg_trap_pid" = "$BASHPID" ] && return 0
    # In a subshell `trap -p` still shows the parent's traps, which do not run here, until any trap
    # is changed: touch RETURN so that what we chain is only what really runs at this EXIT.
    if [ "$BASHPID" != "$$" ]; then trap - RETURN; fi
    local old words
    old=$(trap -p EXIT)
    if [ -n "$old" ]; then
        eval "words=($old)"   # old is: trap -- 'command' EXIT
        # shellcheck disable=SC2064  # expand the old command now, on purpose
        trap -- "pg_stop; ${words[2]}" EXIT
    else
        trap -- pg_stop EXIT
    fi
    _pg_trap_pid=$BASHPID
}

pg_start() {
    if [ -n "$_pg_dir" ] && [ "${CHATSYNC_TEST_PG_URL:-}" = "$_pg_url" ] \
        && [ -f "$_pg_dir/data/postmaster.pid" ]; then
        return 0   # already running, started by this shell
    fi
    if [ -n "${CHATSYNC_TEST_PG_URL:-}" ]; then
        echo "pg.sh: using CHATSYNC_TEST_PG_URL from the environment"
        return 0
    fi

    _pg_bindir=$(_pg_find_bindir) || { _pg_install && _pg_bindir=$(_pg_find_bindir); } || {
        echo "pg.sh: no initdb/pg_ctl found, even after installing postgresql" >&2
        return 1
    }
    if [ "$(id -u)" -eq 0 ]; then
        if id -u postgres >/dev/null 2>&1; then _pg_user=postgres; else _pg_user=nobody; fi
    else
        _pg_user=$(id -un)
    fi

    local dir
    dir=$(mktemp -d -t chatsync-pg.XXXXXX) || return 1
    if [ "$(id -u)" -eq 0 ]; then
        chown "$_pg_user" "$dir"
        if ! _pg_as test -w "$dir"; then   # a private TMPDIR (e.g. under /root): use /tmp
            rmdir "$dir"
            dir=$(mktemp -d /tmp/chatsync-pg.XXXXXX) && chown "$_pg_user" "$dir" || return 1
        fi
    fi
    _pg_dir=$dir
    _pg_register_trap

    # --no-sync (and fsync=off below): the cluster lives only as long as this test run and is
    # deleted after it, so surviving an OS crash is worthless and skipping the fsyncs saves seconds.
    # --no-locale: C collation, deterministic and independent of the locales the machine has.
    if ! _pg_as "$(_pg_bin initdb)" -D "$dir/data" --auth=trust -U chatsync --encoding=UTF8 \
        --no-locale --no-sync >"$dir/initdb.log" 2>&1; then
        echo "pg.sh: initdb failed:" >&2; tail -n 20 "$dir/initdb.log" >&2
        pg_stop; return 1
    fi
    cat >>"$dir/data/postgresql.conf" <<EOF
# chatsync test cluster (scripts/pg.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
max_connections = 300
EOF
    # Tests only: this cluster is thrown away. Benchmarks set CHATSYNC_PG_DURABLE=1, so that a
    # commit is on disk before it is answered, as SQLite's synchronous=FULL does.
    if [ -z "${CHATSYNC_PG_DURABLE:-}" ]; then
        echo "fsync = off" >>"$dir/data/postgresql.conf"
    fi

    # A free port: skip the ones something listens on; if the bind still fails (taken meanwhile),
    # try the next one.
    local port started=
    for port in $(seq 55432 55531); do
        if (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue; fi
        rm -f "$dir/postgres.log"
        if _pg_as "$(_pg_bin pg_ctl)" -D "$dir/data" -l "$dir/postgres.log" -o "-p $port" \
            -w -t 60 start >/dev/null 2>&1; then
            started=1; break
        fi
        grep -q 'could not bind\|could not create any TCP/IP sockets\|already in use' \
            "$dir/postgres.log" 2>/dev/null || break
    done
    if [ -z "$started" ]; then
        echo "pg.sh: PostgreSQL did not start:" >&2; tail -n 20 "$dir/postgres.log" >&2
        pg_stop; return 1
    fi
    local i
    for i in $(seq 100); do   # pg_ctl -w already waited; make sure TCP answers too (max 10 s)
        "$(_pg_bin pg_isready)" -q -h 127.0.0.1 -p "$port" -U chatsync -d postgres && break
        [ "$i" -lt 100 ] || { echo "pg.sh: PostgreSQL on port $port not ready" >&2; pg_stop; return 1; }
        sleep 0.1
    done
    if ! "$(_pg_bin createdb)" -h 127.0.0.1 -p "$port" -U chatsync chatsync_test; then
        pg_stop; return 1
    fi
    _pg_url="postgres://chatsync@127.0.0.1:$port/chatsync_test"
    export CHATSYNC_TEST_PG_URL=$_pg_url
    echo "pg.sh: throwaway PostgreSQL $("$(_pg_bin postgres)" -V | awk '{print $3}') on 127.0.0.1:$port (data in $dir): CHATSYNC_TEST_PG_URL=$_pg_url"
}

pg_stop() {
    [ -n "$_pg_dir" ] || return 0
    local dir=$_pg_dir pid
    _pg_dir=
    if [ -f "$dir/data/postmaster.pid" ]; then
        if ! _pg_as "$(_pg_bin pg_ctl)" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1; then
            # pg_ctl failed: SIGQUIT is an immediate shutdown of the postmaster we started.
            pid=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null)
            [ -z "$pid" ] || kill -QUIT "$pid" 2>/dev/null || true
        fi
    fi
    rm -rf "$dir"
    if [ "${CHATSYNC_TEST_PG_URL:-}" = "$_pg_url" ]; then unset CHATSYNC_TEST_PG_URL; fi
    _pg_url=
    return 0
}
