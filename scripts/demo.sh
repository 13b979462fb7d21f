#!/usr/bin/env bash
# Sets up the runtime with the demo extra and starts the kiosk demo on its embedded store and
# bundle at http://127.0.0.1:8420 (no torch needed). Extra arguments go to the kiosk;
# --fleet starts a collector and two kiosks of the chain (docs/kiosk.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
exec .venv/bin/python -m shelfwise.kiosk_demo "$@"
