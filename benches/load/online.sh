#!/usr/bin/env bash
# Load test of POST /get-online-features with wrk (Lua request bodies), over loopback:
# 1 entity × 5 features, 100 entities × 5 features, and the feature service for 1 entity.
#
#   bash benches/load/online.sh [SECONDS] [CONNECTIONS]
#
# Builds the release binary, writes the demo data (as of one hour ago) into a temporary data
# root, starts the server on a free port, warms every index, and drives each workload for a
# fixed time (default 10 s, 8 connections, 1 wrk thread: the load generator shares the 2
# cores). Prints requests/s, latency percentiles, errors (non-2xx) and the server's CPU time
# per request (utime + stime from /proc). Bounded in time; the server is stopped on exit.
set -euo pipefail
SECONDS_TO_RUN=${1:-10}
CONNECTIONS=${2:-8}
source "$(dirname "$0")/common.sh"
need_wrk
AS_OF=$(python3 -c 'import datetime; print((datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))')
start_demo_server "$AS_OF" featurestore=info,warn

FEATURES='["user_profile:age","user_profile:avg_rating","user_profile:total_movies_watched","user_profile:favorite_genre","user_profile:account_created_days"]'
ids() { python3 -c "import sys; print(','.join(str(i * 997 % 100000 + 1) for i in range(int(sys.argv[1]))))" "$1"; }
write_script() { # $1 file, $2 JSON body
  python3 - "$1" "$2" <<'PY'
import json, sys
body = json.dumps(json.loads(sys.argv[2]))
with open(sys.argv[1], "w") as f:
    f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n')
    f.write("wrk.body = " + json.dumps(body) + "\n")
    f.write('done = function(summary, latency, requests)\n'
            '  io.write(string.format("non-2xx or errors: %d\\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n'
            'end\n')
PY
}
write_script "$DATA/one.lua" "{\"features\": $FEATURES, \"entities\": {\"user_id\": [$(ids 1)]}}"
write_script "$DATA/hundred.lua" "{\"features\": $FEATURES, \"entities\": {\"user_id\": [$(ids 100)]}}"
write_script "$DATA/service.lua" "{\"feature_service\": \"movie_recommendation_service\", \"entities\": {\"user_id\": [$(ids 1)], \"movie_id\": [42]}}"

for workload in one hundred service; do
  # Warm-up: wait until the indexes the workload needs are built (a 200 answer).
  BODY=$(python3 -c 'import json,sys; src=open(sys.argv[1]).read(); print(json.loads(src.split("wrk.body = ",1)[1].split("\n",1)[0]))' "$DATA/$workload.lua")
  for _ in $(seq 600); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'content-type: application/json' -d "$BODY" "$BASE/get-online-features")" = 200 ] && break
    sleep 0.1
  done
  BEFORE=$(cpu_ticks)
  wrk -t1 -c"$CONNECTIONS" -d"${SECONDS_TO_RUN}s" --latency -s "$DATA/$workload.lua" "$BASE/get-online-features" > "$DATA/$workload.txt"
  AFTER=$(cpu_ticks)
  REQUESTS=$(awk '/requests in/ {print $1}' "$DATA/$workload.txt")
  echo "== $workload: $(grep 'Requests/sec' "$DATA/$workload.txt")"
  grep -E '^ +(50|99)%|non-2xx' "$DATA/$workload.txt"
  echo "   server CPU per request: $(per_request_us "$BEFORE" "$AFTER" "$REQUESTS")"
done
echo "server RSS: $(awk '/VmRSS/ {print $2, $3}' "/proc/$PID/status")"
