#!/usr/bin/env bash
# Install the agent, then run its main job. Until `edge-agent demo` lands, the main job is
# decoding a LiDAR capture (argument, default: the shared VLP-16 fixture).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$PWD/.cache/numba}"
if .venv/bin/edge-agent demo --help >/dev/null 2>&1; then
  exec .venv/bin/edge-agent demo "$@"
fi
CAPTURE="${1:-${EDGE_AGENT_FIXTURES:-../shared/fixtures}/lidar/velodyne/vlp16_county_fair.pcap}"
exec .venv/bin/edge-agent decode "$CAPTURE"
