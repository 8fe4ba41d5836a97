#!/usr/bin/env bash
# Checks that openapi/openapi.json yields a working Python client with a standard generator:
# generates it with openapi-python-client (PyPI), installs it, and runs tests/sdk/smoke.py,
# which calls every operation through the generated functions and models against a real
# server over demo data.
#
# Usage: tests/sdk/python_client_check.sh PATH/TO/featurestore
# Needs python3 (with venv) and access to PyPI. Fails on any generator warning (a warning
# means a schema or an operation was skipped or degraded) and on any smoke failure.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 PATH/TO/featurestore" >&2
    exit 2
fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
[[ -x "$BIN" ]] || { echo "not an executable: $1" >&2; exit 2; }
HERE="$(cd "$(dirname "$0")" && pwd)"
SPEC="$HERE/../../openapi/openapi.json"
GENERATOR="openapi-python-client==0.29.1"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/featurestore-sdk.XXXXXX")"
SERVER_PID=""
cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -f "$WORK/server.log" ]]; then
        echo "--- server log (last 30 lines)" >&2
        tail -n 30 "$WORK/server.log" >&2 || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT INT TERM

echo "== venv and $GENERATOR"
python3 -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install --quiet --disable-pip-version-check "$GENERATOR"

echo "== demo data and server"
# As of an hour ago, so the views' TTLs have not expired and online values are PRESENT.
AS_OF="$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) - d.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))')"
"$BIN" demo --data-dir "$WORK/data" --users 50 --movies 10 --interactions 300 --seed 1 \
    --as-of "$AS_OF" >"$WORK/demo.log" 2>&1
PORT="$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:$PORT"
"$BIN" serve --data-dir "$WORK/data" --port "$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
"$PY" - "$BASE/health" "$SERVER_PID" <<'PYEOF'
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 30
while True:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the server exited before answering /health")
    if time.monotonic() > deadline:
        sys.exit(f"{url} did not answer within 30 s")
    time.sleep(0.2)
PYEOF
echo "server up at $BASE"

echo "== generate the client"
# No post hooks: the default ones run ruff, which is not installed, and would only warn.
printf 'post_hooks: []\n' >"$WORK/generator.yaml"
if ! "$WORK/venv/bin/openapi-python-client" generate --path "$SPEC" --output-path "$WORK/client" \
    --config "$WORK/generator.yaml" --fail-on-warning >"$WORK/generate.log" 2>&1; then
    cat "$WORK/generate.log" >&2
    echo "FAIL: openapi-python-client could not generate a clean client" >&2
    exit 1
fi
cat "$WORK/generate.log"
if grep -qiE 'warning|error|skipping|unable|could not' "$WORK/generate.log"; then
    echo "FAIL: openapi-python-client reported problems (see above)" >&2
    exit 1
fi

echo "== install the client"
"$PY" -m pip install --quiet --disable-pip-version-check "$WORK/client"

echo "== smoke test"
"$PY" "$HERE/smoke.py" "$BASE" "$WORK/data"
echo "python client check passed"
