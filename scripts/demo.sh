#!/usr/bin/env bash
# Install the agent, then run its main job. Extra arguments go to `edge-agent demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"
exec .venv/bin/edge-agent demo "$@"
