#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv.
#   scripts/bootstrap.sh            runtime only
#   scripts/bootstrap.sh test       runtime + reference libraries + test tools
# Idempotent: pip runs only when pyproject.toml, the lock or the extras changed.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="${1:-}"
VENV="${EDGE_AGENT_VENV:-.venv}"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 11))'; then
      PY="$cand"; break
    fi
  done
fi
[[ -n "$PY" ]] || { echo "ERROR: Python 3.11 or newer is needed (set PYTHON=...)" >&2; exit 2; }

# System libraries the binary wheels link against (open3d needs libusb, libGL, libgomp;
# OpenCV needs libGL). Installed through apt only when missing.
need_apt=()
for pair in libusb-1.0.so.0:libusb-1.0-0 libGL.so.1:libgl1 libgomp.so.1:libgomp1 libEGL.so.1:libegl1; do
  lib="${pair%%:*}"; pkg="${pair##*:}"
  ldconfig -p 2>/dev/null | grep -q "$lib" || need_apt+=("$pkg")
done
if [[ "$EXTRAS" == test ]]; then
  command -v mosquitto >/dev/null || need_apt+=(mosquitto)
  command -v openssl >/dev/null || need_apt+=(openssl)  # fleet TLS tests make their certificates
  command -v gpsd >/dev/null || [[ -x /usr/sbin/gpsd ]] || need_apt+=(gpsd)  # GNSS source tests: real gpsd
  command -v gpsfake >/dev/null || need_apt+=(gpsd-clients)  # ... fed by gpsfake
  command -v npm >/dev/null || need_apt+=(nodejs npm)  # chain tests: solcjs + ganache (npm ci in contracts/)
fi
if (( ${#need_apt[@]} )); then
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "bootstrap: installing system packages: ${need_apt[*]}" >&2
  $SUDO apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi

[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
SPEC="."; [[ -n "$EXTRAS" ]] && SPEC=".[$EXTRAS]"
STAMP="$VENV/.edge-agent-stamp-${EXTRAS:-runtime}"
LOCK="requirements/constraints-$(uname -m).txt"  # versions CI was run with, per architecture
LOCKS=(pyproject.toml); [[ -f "$LOCK" ]] && LOCKS+=("$LOCK")
WANT="$(cat "${LOCKS[@]}" | sha256sum | cut -c1-16)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$WANT" ]]; then
  echo "bootstrap: installing $SPEC into $VENV" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  CONSTRAINT=(); [[ -f "$LOCK" ]] && CONSTRAINT=(-c "$LOCK")
  "$VENV/bin/python" -m pip install -q "${CONSTRAINT[@]}" -e "$SPEC" >&2
  echo "$WANT" > "$STAMP"
fi
