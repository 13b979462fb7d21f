#!/usr/bin/env bash
# Sets up everything on a fresh machine and runs the whole test suite (what CI runs).
# System packages: chromium (browser tests) and postgresql (the collector's production backend).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev,train,demo,upstream,scan --system
.venv/bin/ruff check .
.venv/bin/mypy
# The collector's PostgreSQL tests run against a real server; if it cannot start, CI fails
# here (and the postgres tests fail rather than skip, because CI is set).
export CI="${CI:-1}"
pg_env=$(bash scripts/postgres.sh start)
eval "$pg_env"
trap 'bash scripts/postgres.sh stop' EXIT
# -m "" runs every marker: slow, real-data, browser and postgres tests too.
.venv/bin/python -m pytest -m "" -p no:cacheprovider "$@"
