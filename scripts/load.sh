#!/usr/bin/env bash
# Bounded load on the reference server from separate processes on loopback: four fixed-rate
# streams at once for a fixed time (sends with a new txn id each, history reads, sync reads,
# long-polls parked on a quiet room), with oha from crates.io. Fails on any error or non-2xx
# answer; prints throughput and p50/p99 latency per stream.
#
#   ./scripts/load.sh
#   DURATION=60s SEND_RATE=400 ./scripts/load.sh
#
# The server is built with optimisations (no LTO) in target/load, so it does not disturb the
# shared debug and release builds. oha is installed once under $CHATSYNC_TOOLCHAINS.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${CHATSYNC_TOOLCHAINS:-/var/cache/chatsync-toolchains}"
OHA="$CACHE/oha/bin/oha"
DURATION="${DURATION:-20s}"
SEND_RATE="${SEND_RATE:-200}"   # sends per second
READ_RATE="${READ_RATE:-200}"   # history pages per second
SYNC_RATE="${SYNC_RATE:-100}"   # sync reads per second (50 newest messages each)
POLLERS="${POLLERS:-200}"       # long-polls held at once (2 s each, nothing new)

if [ ! -x "$OHA" ]; then
  cargo install --locked oha --version '^1.16' --root "$CACHE/oha"
fi
CARGO_TARGET_DIR=target/load CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
  CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo build -q --release -p chatsync-server
ulimit -n "$(ulimit -Hn)" || true

WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
RUST_LOG=warn ./target/load/release/chatsync-server --addr "127.0.0.1:$PORT" --db "$WORK/load.db" 2>"$WORK/server.log" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fsS "$URL/health" >/dev/null 2>&1 && break
  sleep 0.1 # polling the health route until the server listens (bounded: 10 s)
done

json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
token() { curl -fsS -X POST "$URL/v1/token" -d "{\"user_id\":\"$1\"}" | json '["access_token"]'; }
A="$(token loader-a)"; B="$(token loader-b)"; Q="$(token loader-quiet)"
ROOM="$(curl -fsS -X POST "$URL/v1/rooms" -H "authorization: Bearer $A" -d '{"name":"load","member_ids":["loader-b"]}' | json '["id"]')"
curl -fsS -X POST "$URL/v1/rooms" -H "authorization: Bearer $Q" -d '{"name":"quiet","member_ids":[]}' >/dev/null
SINCE_B="$(curl -fsS "$URL/v1/sync?limit=1" -H "authorization: Bearer $B" | json '["next_batch"]')"
SINCE_Q="$(curl -fsS "$URL/v1/sync?limit=1" -H "authorization: Bearer $Q" | json '["next_batch"]')"
# Some history to read from the start.
for i in $(seq 1 60); do
  curl -fsS -X PUT "$URL/v1/rooms/$ROOM/messages/seed-$i" -H "authorization: Bearer $A" \
    -d "{\"parts\":[{\"type\":\"text/plain\",\"content\":\"seed $i\"}]}" >/dev/null
done

# oha's URL regex does not take `\.` as a literal dot; `[.]` works. Checked below, so a typo can
# never send traffic anywhere but this loopback server.
HOST_RE="http://127[.]0[.]0[.]1:$PORT"
SEND_RE="$HOST_RE/v1/rooms/$ROOM/messages/[a-z0-9]{24}"
"$OHA" --dump-urls 50 --rand-regex-url "$SEND_RE" | while read -r u; do
  case "$u" in "$URL/v1/rooms/$ROOM/messages/"*) ;; *) echo "refusing: the URL pattern makes $u"; exit 1 ;; esac
done
BODY='{"parts":[{"type":"text/plain","content":"load test message with a little text in it"}]}'
common=(--no-tui -w -z "$DURATION" -t 10s --output-format json)
echo "load: $DURATION; sends $SEND_RATE/s, history $READ_RATE/s, sync $SYNC_RATE/s, $POLLERS long-polls held"
"$OHA" "${common[@]}" -o "$WORK/send.json" -q "$SEND_RATE" -c 32 -m PUT -T application/json \
  -H "authorization: Bearer $A" -d "$BODY" --rand-regex-url "$SEND_RE" &
P1=$!
"$OHA" "${common[@]}" -o "$WORK/history.json" -q "$READ_RATE" -c 32 \
  -H "authorization: Bearer $B" "$URL/v1/rooms/$ROOM/messages?limit=50" &
P2=$!
"$OHA" "${common[@]}" -o "$WORK/sync.json" -q "$SYNC_RATE" -c 16 \
  -H "authorization: Bearer $B" "$URL/v1/sync?since=$SINCE_B&limit=50" &
P3=$!
"$OHA" "${common[@]}" -o "$WORK/longpoll.json" -c "$POLLERS" \
  -H "authorization: Bearer $Q" "$URL/v1/sync?since=$SINCE_Q&timeout_ms=2000" &
P4=$!
wait "$P1" "$P2" "$P3" "$P4"

python3 - "$WORK" <<'PY'
import json, sys, os
work = sys.argv[1]
failed = False
print(f"{'stream':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}  statuses / errors")
for name in ["send", "history", "sync", "longpoll"]:
    r = json.load(open(os.path.join(work, name + ".json")))
    s = r["summary"]
    codes = r.get("statusCodeDistribution", {})
    errors = r.get("errorDistribution", {})
    total = sum(codes.values())
    p = r.get("latencyPercentiles", {})
    print(f"{name:<10} {total:>9} {s['requestsPerSec']:>8.1f} {p.get('p50', 0)*1000:>8.1f} {p.get('p99', 0)*1000:>8.1f}  {codes} {errors}")
    if errors or any(not c.startswith("2") for c in codes) or total == 0:
        failed = True
sys.exit(1 if failed else 0)
PY
STATUS=$?
if grep -qi "panick\|error" "$WORK/server.log"; then
  echo "server log:"; head -20 "$WORK/server.log"; STATUS=1
fi
exit "$STATUS"
