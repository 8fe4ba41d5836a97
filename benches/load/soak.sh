#!/usr/bin/env bash
# Soak test: mixed reads and writes for a fixed time (default 300 s) against one server.
#
#   bash benches/load/soak.sh [--seconds 300] [--connections 8]
#
# Builds the release binary, installs wrk from Debian's packages when missing, then runs
# benches/load/soak.py: the demo data in a temporary data root, the server on a free loopback
# port, wrk rotating a fixed mix (92 % reads: online, service, pages, projections, batch,
# health; 8 % writes: online and offline pushes, a table replace), and the server's RSS, CPU
# and open descriptors sampled every 5 s. Passes with 0 failed requests, a healthy server at
# the end and flat RSS; writes target/load/soak-<UTC time>.json. Loopback only; bounded.
set -euo pipefail
source "$(dirname "$0")/common.sh"
need_wrk
cargo build --release --quiet
exec python3 benches/load/soak.py --binary target/release/featurestore "$@"
