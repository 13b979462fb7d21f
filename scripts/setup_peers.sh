#!/usr/bin/env bash
# Usage: scripts/setup_peers.sh
# Creates .venv-peers, a second virtualenv beside .venv, with shelfwise (editable) and the
# train, peers and dev extras: the peer runtimes tests/test_peers.py converts and runs.
# Separate, because the peers extra cannot share .venv: litert-converter needs xdsl 0.28, which
# pins typing-extensions < 4.13, so anyio falls back to 4.14.2, whose pytest plugin fails the
# main suite under pytest 9 (scripts/test.sh runs the peer tests with -p no:anyio).
# torch stays the exact CPU build of the train extra (torch==2.13.0, the wheel on this disk):
# none of the peers' pinned versions (pyproject's peers extra) asks for another torch.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-peers/bin/python ] || python3 -m venv .venv-peers
.venv-peers/bin/python -m pip install -q --upgrade pip setuptools >/dev/null 2>&1 || true
.venv-peers/bin/python -m pip install -q "torch==2.13.0" -e ".[train,peers,dev]" 2>&1 \
  | grep -vE "^(WARNING: Location|  )" || true
# Fail here, not in the tests, when the install left a peer out or replaced torch.
.venv-peers/bin/python - <<'EOF'
import importlib.metadata as md
import sys

torch = md.version("torch")
if not torch.startswith("2.13.0"):
    sys.exit(f".venv-peers: torch {torch} instead of 2.13.0 (a peer pulled another build)")
for name in ("executorch", "litert-torch", "ai-edge-litert", "openvino"):
    md.version(name)  # PackageNotFoundError names the missing one
EOF
