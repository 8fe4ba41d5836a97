#!/usr/bin/env bash
# The push path and the background fold, against a release server on the demo data:
#  1. p50/p99 of PUSHES sequential offline pushes of one user_profile row (keep-alive);
#  2. how long after the last push the plain user_profile.parquet holds every pushed row
#     (no part file left);
#  3. the server CPU one fold of the 300 000-row user_profile costs (POST .../compact with one
#     pending part, utime + stime from /proc).
# 2 and 3 need a build with folding; with another binary (BIN=path, e.g. the code before it)
# only 1 runs.
#
#   bash benches/load/push_fold.sh                       # builds and runs target/release
#   BIN=target/featurestore-base bash benches/load/push_fold.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
PUSHES=${PUSHES:-2000}

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/featurestore
fi
DATA=$(mktemp -d)
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE="http://127.0.0.1:$PORT"
AS_OF=2026-11-01T00:00:00Z
"$BIN" demo --data-dir "$DATA" --as-of "$AS_OF" >/dev/null
start() {
  RUST_LOG=${RUST_LOG:-warn} "$@" ${SERVER_ENV:-} "$BIN" serve --data-dir "$DATA" --port "$PORT" &
  PID=$!
  for _ in $(seq 100); do curl -sf "$BASE/health" >/dev/null && return 0; sleep 0.1; done
  echo "the server did not come up" >&2
  return 1
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
parts() { find "$DATA/features/user/_appends" -name 'part-*.parquet' 2>/dev/null | wc -l; }

start env
echo "binary: $BIN; $PUSHES offline pushes of one row to the 300 000-row user_profile"
python3 - "$PORT" "$PUSHES" "$AS_OF" <<'PY'
import http.client, json, statistics, sys, time
port, n, as_of = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port)
lat = []
for i in range(n):
    body = json.dumps({"push_source_name": "user_profile_push", "to": "offline", "df": {
        "user_id": [1 + i % 1000], "age": [30 + i % 40], "avg_rating": [4.5],
        "total_movies_watched": [10], "favorite_genre": ["Drama"],
        "account_created_days": [400], "event_timestamp": [as_of]}})
    t = time.perf_counter()
    conn.request("POST", "/push", body, {"content-type": "application/json"})
    r = conn.getresponse(); r.read()
    lat.append((time.perf_counter() - t) * 1000)
    assert r.status == 200, r.status
lat.sort()
print(f"push latency: p50 {statistics.median(lat):.2f} ms, p99 {lat[int(len(lat) * 0.99)]:.2f} ms, max {lat[-1]:.1f} ms")
PY
LAST=$(date +%s.%N)
"$BIN" openapi > "$DATA/openapi.json"
if ! grep -q '/features/{group}/{name}/compact' "$DATA/openapi.json"; then
  echo "(no fold in this build)"
  exit 0
fi
while [ "$(parts)" -gt 0 ]; do sleep 0.02; done
python3 -c "import sys, time; print(f'plain file holds every pushed row {time.time() - float(sys.argv[1]):.2f} s after the last push')" "$LAST"
stop

# 3. One fold of the whole table, background folding held off so the part waits.
start env FEATURESTORE__STORAGE__FOLD_DELAY_MS=60000
curl -sf -X POST -H 'content-type: application/json' "$BASE/push" -d "{\"push_source_name\": \"user_profile_push\", \"to\": \"offline\", \"df\": {\"user_id\": [7], \"age\": [33], \"avg_rating\": [4.5], \"total_movies_watched\": [10], \"favorite_genre\": [\"Drama\"], \"account_created_days\": [400], \"event_timestamp\": [\"$AS_OF\"]}}" >/dev/null
BEFORE=$(cpu_ticks)
T0=$(date +%s.%N)
ANSWER=$(curl -sf -X POST "$BASE/features/user/user_profile/compact")
T1=$(date +%s.%N)
AFTER=$(cpu_ticks)
python3 -c "import os, sys; b, a, t0, t1 = map(float, sys.argv[1:5]); print(f'fold of user_profile: {(a - b) / os.sysconf(\"SC_CLK_TCK\") * 1000:.0f} ms of server CPU, {(t1 - t0) * 1000:.0f} ms wall; answer {sys.argv[5]}')" "$BEFORE" "$AFTER" "$T0" "$T1" "$ANSWER"
