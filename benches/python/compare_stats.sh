#!/usr/bin/env bash
# The statistics featurestore serves (GET /features/{group}/{name}/stats) against pandas and
# numpy computing them from the same Parquet files; see benches/python/compare_stats.py.
#
#   bash benches/python/compare_stats.sh [--url http://127.0.0.1:8080] [--data-dir feature_store] [--token T]
#
# Needs a running server over that data directory (e.g. `featurestore serve --demo`). pandas,
# pyarrow and numpy are installed once, without root, into target/pydeps (as the tests'
# readers do) and reused. Exits 1 on a mismatch.
set -euo pipefail
cd "$(dirname "$0")/../.."
DEPS=target/pydeps
if ! PYTHONPATH=$DEPS python3 -c "import pandas, pyarrow, numpy" 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check --no-input \
    --target "$DEPS" pandas pyarrow numpy
fi
PYTHONPATH=$DEPS exec python3 benches/python/compare_stats.py "$@"
