#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the whole test suite (what CI runs).
# System packages: chromium (browser tests) and postgresql (the collector's production backend).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,train,demo,upstream,scan --system
# The peer runtimes (ExecuTorch, LiteRT, OpenVINO) get their own .venv-peers: the peers extra
# cannot share .venv (scripts/setup_peers.sh says why). Installed first, so a failing install
# stops CI before the long suite.
bash scripts/setup_peers.sh
.venv/bin/ruff check .
.venv/bin/mypy
# The collector's PostgreSQL tests run against a real server; if it cannot start, CI fails
# here (and the postgres tests fail rather than skip, because CI is set).
export CI="${CI:-1}"
pg_env=$(bash scripts/postgres.sh start)
eval "$pg_env"
trap 'bash scripts/postgres.sh stop' EXIT
# Every marker but peers: slow, real-data, browser and postgres tests too.
.venv/bin/python -m pytest -m "not peers" -p no:cacheprovider "$@"
# Then tests/test_peers.py alone in .venv-peers (about a minute and a half), every marker: the
# peer tests fail there, not skip, when a peer is missing (CI is set). -p no:anyio: anyio's
# pytest plugin, held at 4.14.2 there, fails to load under pytest 9.2; nothing here uses it.
.venv-peers/bin/python -m pytest -m "" -p no:cacheprovider -p no:anyio tests/test_peers.py
