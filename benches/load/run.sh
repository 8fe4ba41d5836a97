#!/usr/bin/env bash
# The HTTP load harness: every workload at 1, 8 and 32 connections against the HTTP floor.
#
#   bash benches/load/run.sh [--seconds 4] [--rounds 3] [--connections 1,8,32] [--only online_1,...]
#
# Builds the release binary, installs wrk from Debian's packages when missing, then runs
# benches/load/harness.py: the demo data in a temporary data root, the server on a free
# loopback port (started with the hidden --bench-floor-bytes flag, so /_bench/floor answers a
# fixed JSON body the size of the online answer), and each workload driven by wrk for a fixed
# time per connection count, in rounds. Prints one table (medians over rounds: requests/s, p50,
# p99, errors, server CPU µs per request, ratio to the floor, peak RSS) and writes it with the
# machine's description to target/load/<UTC time>.json and target/load/latest.json.
# Loopback only; bounded: about 6 minutes with the defaults once the binary is built. Exits 1
# when any request failed.
set -euo pipefail
source "$(dirname "$0")/common.sh"
need_wrk
cargo build --release --quiet
exec python3 benches/load/harness.py --binary target/release/featurestore "$@"
