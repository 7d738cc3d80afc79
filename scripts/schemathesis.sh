#!/usr/bin/env bash
# Fuzzes the reference server from its own OpenAPI document (GET /v1/openapi.json) with
# schemathesis (PyPI), in a bounded run: deterministic generation, a fixed number of examples per operation,
# a dev token. Fails on any 5xx and on answers that do not match the document.
#
#   ./scripts/schemathesis.sh            # 25 examples per operation
#   EXAMPLES=200 ./scripts/schemathesis.sh
#
# Installs schemathesis once into a venv under $CHATSYNC_TOOLCHAINS (outside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${CHATSYNC_TOOLCHAINS:-/var/cache/chatsync-toolchains}"
VENV="$CACHE/schemathesis-venv"
EXAMPLES="${EXAMPLES:-25}"
CHECKS="${CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance}"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  mkdir -p "$CACHE"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis>=4.3,<5"
fi

cargo build -q -p chatsync-server
WORK="$(mktemp -d)"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
./target/debug/chatsync-server --addr "127.0.0.1:$PORT" --db "$WORK/fuzz.db" 2>"$WORK/server.log" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

for _ in $(seq 1 100); do
  curl -fsS "$URL/health" >/dev/null 2>&1 && break
  sleep 0.1 # polling the health route until the server listens (bounded: 10 s)
done
TOKEN="$(curl -fsS -X POST "$URL/v1/token" -H 'content-type: application/json' -d '{"user_id":"fuzzer"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"

set +e
"$VENV/bin/schemathesis" run "$URL/v1/openapi.json" \
  --url "$URL" \
  -H "Authorization: Bearer $TOKEN" \
  --checks "$CHECKS" \
  --max-examples "$EXAMPLES" \
  --generation-deterministic \
  --request-timeout 40 \
  --workers 2 \
  --no-color \
  --report junit --report-dir "$WORK/report"
STATUS=$?
set -e
if grep -q '"status": *5[0-9][0-9]\|status=5[0-9][0-9]' "$WORK/server.log"; then
  echo "server logged 5xx answers:"; grep '5[0-9][0-9]' "$WORK/server.log" | head -20
fi
exit "$STATUS"
