#!/usr/bin/env bash
# Load test: a cached 100-row page of the demo's user_profile over HTTP, with wrk.
#
#   bash benches/load/cached_page.sh [SECONDS] [CONNECTIONS]
#
# Builds the release binary, writes the demo data into a temporary data root, starts the
# server on a free loopback port, warms the page, drives it with wrk for a fixed time (default
# 10 s, 8 connections, 1 wrk thread: the machine has 2 cores and the load generator shares
# them), then prints wrk's figures, the cache hit rate, and the server's CPU time per request
# (utime + stime from /proc, steadier than requests/s on a shared machine). Loopback only;
# bounded in time; the server is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_TO_RUN=${1:-10}
CONNECTIONS=${2:-8}

if ! command -v wrk >/dev/null; then
  apt-get update -qq && apt-get install -y -qq wrk
fi
cargo build --release --quiet
BIN=target/release/featurestore
DATA=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() { [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null; wait "${PID:-}" 2>/dev/null || true; rm -rf "$DATA"; }
trap cleanup EXIT

"$BIN" demo --data-dir "$DATA" --as-of 2026-11-01T00:00:00Z >/dev/null
RUST_LOG=warn "$BIN" serve --data-dir "$DATA" --port "$PORT" &
PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

URL="http://127.0.0.1:$PORT/features/user/user_profile?limit=100&offset=1000"
curl -sf "$URL" >/dev/null
curl -sf -X DELETE "http://127.0.0.1:$PORT/cache" >/dev/null
curl -sf "$URL" >/dev/null   # the one miss: fills both tiers

ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
HZ=$(getconf CLK_TCK)
BEFORE=$(ticks)
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_TO_RUN}s" --latency "$URL" | tee /tmp/featurestore-wrk.txt
AFTER=$(ticks)
REQUESTS=$(awk '/requests in/ {print $1}' /tmp/featurestore-wrk.txt)
echo "server CPU per request: $(python3 -c "print(f'{($AFTER - $BEFORE) / $HZ / $REQUESTS * 1e6:.1f} us')")"
curl -sf "http://127.0.0.1:$PORT/cache/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)["memory"]
print("memory tier: hits %d, misses %d, hit rate %.5f" % (s["hits"], s["misses"], s["hit_rate"]))'
echo "server RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$PID/status")"
