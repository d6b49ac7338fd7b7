#!/usr/bin/env bash
# Install what the tests need, then run them. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh test
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"
# pytest exits 5 when it collected no test: that is a failure here too.
exec .venv/bin/python -m pytest "$@"
