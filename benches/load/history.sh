#!/usr/bin/env bash
# Table history (issue 16) against a release server on the demo data: the cost of a push to
# the 300 000-row user_profile with history on and off, a pinned old version read against the
# current one, and the history's size after the soak's write mix. See benches/load/history.py.
#
#   bash benches/load/history.sh [--pushes 500] [--entity-rows 10000] [--reads 20] [--mix-writes 1000]
#   BIN=path bash benches/load/history.sh      # another binary, no build
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/featurestore
fi
exec python3 benches/load/history.py --binary "$BIN" "$@"
