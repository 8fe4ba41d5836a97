#!/usr/bin/env bash
# Two end-to-end figures against the release server on loopback:
#  1. a 100 000-record JSON POST (records of the demo's interaction table), timed by curl;
#  2. the server's RSS while every 1000-row page of the 1 000 000-row interaction table is
#     read once through the caches (1000 requests on one keep-alive connection), against the
#     configured memory budget (cache.memory_max_mb).
#
#   bash benches/load/post_and_rss.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
start_demo_server 2026-11-01T00:00:00Z

rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
echo "idle RSS after loading the demo: $(( $(rss) / 1024 )) MiB"

# 1. The body: 100 pages of 1000 records, concatenated into one records array.
python3 - "$BASE" "$DATA/body.json" <<'PY'
import json, sys, urllib.request
base, out = sys.argv[1], sys.argv[2]
records = []
for offset in range(0, 100_000, 1000):
    with urllib.request.urlopen(f"{base}/features/interaction/user_movie_interactions?limit=1000&offset={offset}") as r:
        records.extend(json.load(r)["data"])
with open(out, "w") as f:
    json.dump({"records": records, "entity_key": ["user_id", "movie_id"]}, f)
PY
echo "POST of 100000 records ($(( $(stat -c %s "$DATA/body.json") / 1024 / 1024 )) MiB of JSON), 3 runs:"
for run in 1 2 3; do
  curl -s -o /dev/null -w "  %{http_code} in %{time_total} s\n" -X POST -H 'content-type: application/json' \
    --data-binary "@$DATA/body.json" "$BASE/features/interaction/interactions_100k"
done

# 2. Every page of the 1M-row table, on one connection.
for offset in $(seq 0 1000 999000); do
  echo "url = \"$BASE/features/interaction/user_movie_interactions?limit=1000&offset=$offset\""
  echo "output = /dev/null"
done > "$DATA/pages.curl"
PEAK=0
( curl -s -K "$DATA/pages.curl" ) &
CURL=$!
while kill -0 "$CURL" 2>/dev/null; do R=$(rss); [ "$R" -gt "$PEAK" ] && PEAK=$R; sleep 0.05; done
wait "$CURL"
BUDGET=$(curl -sf "$BASE/cache/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["memory"]["max_bytes"] // 1048576)')
echo "peak RSS over 1000 pages: $(( PEAK / 1024 )) MiB (memory budget $BUDGET MiB, limit budget + 100 MiB)"
curl -sf "$BASE/cache/stats" | python3 -c 'import json,sys; s=json.load(sys.stdin); print("memory tier items %d, %.1f MiB; disk tier items %d, %.1f MiB" % (s["memory"]["items"], s["memory"]["bytes"]/2**20, s["disk"]["items"], s["disk"]["bytes"]/2**20))'
