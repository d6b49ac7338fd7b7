#!/usr/bin/env bash
# Install the agent, then run its main job: `edge-agent demo` (arguments go to it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"
exec .venv/bin/edge-agent demo "$@"
