#!/usr/bin/env bash
# Usage: scripts/setup.sh EXTRAS [--system]
# Creates .venv and installs shelfwise (editable) with the given extras; --system also installs
# the Debian packages the browser and PostgreSQL tests need (chromium, postgresql).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-demo}"
if [ "${2:-}" = "--system" ]; then
  missing=()
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  [ -x /usr/lib/postgresql/15/bin/postgres ] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip setuptools >/dev/null 2>&1 || true
# torch==2.13.0 (train extra) resolves to the CPU wheel this machine keeps locally.
.venv/bin/python -m pip install -q -e ".[${extras}]" 2>&1 | grep -vE "^(WARNING: Location|  )" || true
.venv/bin/python -c "import shelfwise" 
