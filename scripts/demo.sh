#!/usr/bin/env bash
# The README's main job: from a fresh clone to a running chatsync, in one command.
#
# Builds the `chatsync` binary, starts the reference server on its embedded database in a
# temporary folder, and walks two users (alice and bob) through a chat in which bob goes offline,
# sends anyway (queued), and comes back (delivered exactly once). Every step prints the command it
# runs and checks what it printed; any surprise stops the demo with a non-zero exit.
#
# Usage: scripts/demo.sh [--keep]
#   --keep   leave the server and both device stores running/in place afterwards, and print the
#            commands to chat interactively (`chatsync chat`); stop it with the printed kill.
# Environment: CHATSYNC_DEMO_PORT picks the port (default: the first free one from 5000);
#   CHATSYNC_DEMO_BIN uses that chatsync binary instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

KEEP=0
case "${1:-}" in
  --keep) KEEP=1 ;;
  "") ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "demo.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
esac

bold=""; dim=""; reset=""
if [ -t 1 ]; then bold=$'\e[1m'; dim=$'\e[2m'; reset=$'\e[0m'; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$reset"; }
fail() { echo "demo.sh: FAILED: $*" >&2; exit 1; }

# --- build -----------------------------------------------------------------------------------
if [ -n "${CHATSYNC_DEMO_BIN:-}" ]; then
  BIN="$CHATSYNC_DEMO_BIN"   # already built (the test suite runs the demo this way)
else
  step "Building chatsync (cargo build -p chatsync-cli)"
  cargo build -p chatsync-cli
  BIN="$(pwd)/target/debug/chatsync"
fi
[ -x "$BIN" ] || fail "no binary at $BIN"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/chatsync-demo.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ "$KEEP" = 1 ] && [ "${DEMO_OK:-0}" = 1 ]; then return; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- server ----------------------------------------------------------------------------------
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT="${CHATSYNC_DEMO_PORT:-}"
if [ -z "$PORT" ]; then
  PORT=5000
  while listening "$PORT"; do PORT=$((PORT + 1)); done
fi
ADDR="127.0.0.1:$PORT"
export CHATSYNC_SERVER="http://$ADDR"

start_server() {
  "$BIN" serve --addr "$ADDR" --db "$WORK/server.db" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if listening "$PORT"; then return 0; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; fail "the server exited"; }
    sleep 0.1
  done
  fail "the server did not listen on $ADDR within 10 s"
}
stop_server() {
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

step "Starting the reference server on $ADDR (database: $WORK/server.db)"
start_server
echo "server pid $SERVER_PID, log in $WORK/server.log; each user's device store is $WORK/<user> (--data)"

# --- the two devices -------------------------------------------------------------------------
# Each user has a device store of their own, as two phones would.
OUT="$WORK/out"
# Prints arguments as a shell would need them typed (quotes around those with spaces).
show_args() { local a; for a in "$@"; do case "$a" in *[[:space:]]*|*\!*) printf " '%s'" "$a" ;; *) printf ' %s' "$a" ;; esac; done; }
# run USER EXPECTED_EXIT ARGS...: prints the command and its output, checks the exit code.
run() {
  local user="$1" expected="$2"; shift 2
  printf '%s$ chatsync --user %s' "$dim" "$user"; show_args "$@"; printf '%s\n' "$reset"
  local code=0
  "$BIN" --user "$user" --data "$WORK/$user" "$@" >"$OUT" 2>"$OUT.err" || code=$?
  [ "${QUIET:-0}" = 1 ] || cat "$OUT"
  if [ -s "$OUT.err" ]; then sed 's/^/  (stderr) /' "$OUT.err"; fi
  [ "$code" = "$expected" ] || fail "exit code $code, expected $expected"
}
expect() { grep -q -- "$1" "$OUT" || fail "expected output to contain: $1"; }
count() { grep -c -- "$1" "$OUT" || true; }

step "alice says hello to bob"
run alice 0 send --to bob "Hi Bob! Are you there?"
expect '"state": "sent"'

step "bob syncs and reads"
run bob 0 sync
expect '"online": true'
run bob 0 messages --with alice
expect "Hi Bob! Are you there?"

step "bob answers"
run bob 0 send --to alice "Hi Alice, on my way to the tunnel."
expect '"state": "sent"'

step "Now bob goes offline: the server is stopped"
stop_server
echo "server stopped"

step "bob writes anyway: the message is queued on his device (exit 0, state pending)"
run bob 0 send --to alice "Sent from the tunnel, no network here."
expect '"state": "pending"'
run bob 0 outbox
expect "pending"

step "bob tries to sync: offline (exit 3), the message is still queued"
run bob 3 sync
expect '"online": false'
expect '"pending": 1'

step "bob's history shows it, marked pending, read from his store"
run bob 0 messages --with alice
expect "Sent from the tunnel, no network here.  \[pending\]"

step "bob is back: the server starts again on the same database"
start_server
echo "server pid $SERVER_PID"

step "bob syncs: the queued message goes out"
run bob 0 sync
expect '"sent": 1'
expect '"pending": 0'
run bob 0 outbox
[ ! -s "$OUT" ] || fail "the outbox should be empty"
echo "(outbox empty)"

step "alice syncs and gets it exactly once"
run alice 0 sync
QUIET=1 run alice 0 messages --with bob --json
n="$(count '"text": "Sent from the tunnel, no network here."')"
[ "$n" = 1 ] || fail "alice holds the message $n times, expected exactly once"
echo "(JSON checked: alice holds the offline message exactly once)"
run alice 0 messages --with bob

step "Nothing is sent twice: bob syncs again"
run bob 0 sync
expect '"sent": 0'

DEMO_OK=1
step "Done: two users chatted, bob went offline, sent, came back; delivered exactly once."
if [ "$KEEP" = 1 ]; then
  cat <<EOF

The server is still running (pid $SERVER_PID) on $ADDR, with both device stores in $WORK.
Chat interactively, one terminal per user:

  $BIN --server http://$ADDR --user alice --data $WORK/alice chat --with bob
  $BIN --server http://$ADDR --user bob   --data $WORK/bob   chat --with alice

To go offline, stop the server and type anyway; to come back, start it again on the same database:

  kill $SERVER_PID
  $BIN serve --addr $ADDR --db $WORK/server.db

Clean up afterwards: stop the server, then rm -rf $WORK
EOF
else
  cat <<EOF

Try it yourself (one terminal each; add --keep to this script to reuse the demo's server):

  $BIN serve --db /tmp/chatsync-server.db
  $BIN --user alice chat --with bob
  $BIN --user bob chat --with alice

Stop the server while chatting, type anyway, start it again: the lines are delivered once.
EOF
fi
