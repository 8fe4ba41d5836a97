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
SECONDS_TO_RUN=${1:-10}
CONNECTIONS=${2:-8}
source "$(dirname "$0")/common.sh"
need_wrk
start_demo_server 2026-11-01T00:00:00Z

URL="$BASE/features/user/user_profile?limit=100&offset=1000"
curl -sf "$URL" >/dev/null
curl -sf -X DELETE "$BASE/cache" >/dev/null
curl -sf "$URL" >/dev/null   # the one miss: fills both tiers

BEFORE=$(cpu_ticks)
wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_TO_RUN}s" --latency "$URL" | tee /tmp/featurestore-wrk.txt
AFTER=$(cpu_ticks)
REQUESTS=$(awk '/requests in/ {print $1}' /tmp/featurestore-wrk.txt)
echo "server CPU per request: $(per_request_us "$BEFORE" "$AFTER" "$REQUESTS")"
curl -sf "$BASE/cache/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)["memory"]
print("memory tier: hits %d, misses %d, hit rate %.5f" % (s["hits"], s["misses"], s["hit_rate"]))'
echo "server RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$PID/status")"
