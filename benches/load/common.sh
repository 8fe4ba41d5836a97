# Shared by the load scripts (sourced, not run): builds the release binary, writes the demo
# data into a temporary data root, starts the server on a free loopback port and stops it
# (and removes the data) on exit. After `start_demo_server AS_OF [LOG_FILTER]`: BIN, DATA,
# PORT, BASE and PID are set.
#
# Also: `need_wrk` installs wrk from Debian's packages when missing; `cpu_ticks` reads the
# server's utime + stime from /proc; `per_request_us BEFORE AFTER REQUESTS` turns them into
# microseconds of server CPU per request.

cd "$(dirname "${BASH_SOURCE[0]}")/../.."

need_wrk() {
  if ! command -v wrk >/dev/null; then
    apt-get update -qq && apt-get install -y -qq wrk
  fi
}

cleanup() {
  if [ -n "${PID:-}" ]; then
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  [ -n "${DATA:-}" ] && rm -rf "$DATA"
}

start_demo_server() {
  local as_of=$1 filter=${2:-warn}
  cargo build --release --quiet
  BIN=target/release/featurestore
  DATA=$(mktemp -d)
  trap cleanup EXIT
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  BASE="http://127.0.0.1:$PORT"
  "$BIN" demo --data-dir "$DATA" --as-of "$as_of" >/dev/null
  RUST_LOG=$filter "$BIN" serve --data-dir "$DATA" --port "$PORT" &
  PID=$!
  for _ in $(seq 100); do curl -sf "$BASE/health" >/dev/null && return 0; sleep 0.1; done
  echo "the server did not come up" >&2
  return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }

per_request_us() {
  python3 -c "import os, sys; b, a, n = map(float, sys.argv[1:]); print(f'{(a - b) / os.sysconf(\"SC_CLK_TCK\") / n * 1e6:.1f} us')" "$1" "$2" "$3"
}
