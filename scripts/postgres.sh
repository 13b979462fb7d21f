#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the collector tests (initdb into a temp dir, pg_ctl on a
# free localhost port; as the postgres user when run as root). Idempotent.
# Usage: eval "$(bash scripts/postgres.sh start)"   -> exports SHELFWISE_PG_DSN
#        bash scripts/postgres.sh stop
set -euo pipefail
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/initdb" ]; then
  echo "PostgreSQL server binaries not found: apt-get install postgresql (scripts/setup.sh --system)" >&2
  exit 1
fi
DIR="${SHELFWISE_PG_DIR:-${TMPDIR:-/tmp}/shelfwise-pg-$(id -u)}"
AS=()
if [ "$(id -u)" -eq 0 ]; then AS=(runuser -u postgres --); fi
pg() { "${AS[@]}" "$PGBIN/$@"; }

case "${1:-start}" in
  start)
    if [ -f "$DIR/port" ] && pg pg_ctl -D "$DIR/data" status >/dev/null 2>&1; then
      port=$(cat "$DIR/port")
    else
      [ -d "$DIR/data" ] && pg pg_ctl -D "$DIR/data" stop -m immediate >/dev/null 2>&1 || true
      rm -rf "$DIR"
      mkdir -p "$DIR"
      [ ${#AS[@]} -gt 0 ] && chown postgres "$DIR"
      pg initdb -D "$DIR/data" -A trust -U postgres -E UTF8 --no-sync >"$DIR/initdb.log" 2>&1 \
        || { cat "$DIR/initdb.log" >&2; exit 1; }
      port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      pg pg_ctl -D "$DIR/data" -l "$DIR/data/server.log" -w -t 60 \
        -o "-p $port -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start >/dev/null || { cat "$DIR/data/server.log" >&2; exit 1; }
      echo "$port" >"$DIR/port"
    fi
    echo "export SHELFWISE_PG_DSN=postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -d "$DIR/data" ]; then pg pg_ctl -D "$DIR/data" stop -m fast >/dev/null 2>&1 || true; fi
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
