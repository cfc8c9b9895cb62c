#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for ai-shell's tests, on 127.0.0.1 only (Debian 12, run as root).
#   pg-test-server.sh start   initdb (as the 'postgres' system user), start, wait until ready
#   pg-test-server.sh stop    pg_ctl stop (fast)
#   pg-test-server.sh env     print `export AI_SHELL_TEST_PG_URL=...` for the tests
# Packages come from scripts/install-deps.sh --test (postgresql-15, postgresql-client-15).
# Data lives in ${AI_SHELL_TEST_DIR:-/tmp/ai-shell-test}/pg and is wiped on start.
# The superuser is `backup` with a password (scram-sha-256 over TCP); the socket is in the data dir.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
BASE=${AI_SHELL_TEST_DIR:-/tmp/ai-shell-test}/pg
PORT=${PG_PORT:-55432}
DBUSER=backup
DBPASS=${AI_SHELL_TEST_PG_PASSWORD:-backup-test-pass}
URL="postgresql://$DBUSER:$DBPASS@127.0.0.1:$PORT/postgres"

as_postgres() {   # initdb and pg_ctl refuse to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop() {
  if [ -f "$BASE/data/postmaster.pid" ]; then
    as_postgres "$PGBIN/pg_ctl" -D "$BASE/data" -m fast -w -t 60 stop >/dev/null || true
  fi
}

start() {
  [ -x "$PGBIN/initdb" ] || { echo "PostgreSQL 15 is not installed: run scripts/install-deps.sh --test" >&2; exit 1; }
  stop
  if ss -Htln "sport = :$PORT" 2>/dev/null | grep -q .; then
    echo "port $PORT is already in use (set PG_PORT)" >&2; exit 1
  fi
  rm -rf "$BASE"
  mkdir -p "$BASE"
  # the postgres user must be able to reach the directory
  chmod 755 "$(dirname "$BASE")" 2>/dev/null || true
  printf '%s\n' "$DBPASS" >"$BASE/pwfile"
  chmod 600 "$BASE/pwfile"
  [ "$(id -u)" = 0 ] && chown -R postgres:postgres "$BASE"
  as_postgres "$PGBIN/initdb" -D "$BASE/data" -U "$DBUSER" --pwfile="$BASE/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$BASE/initdb.log" 2>&1 \
    || { cat "$BASE/initdb.log" >&2; exit 1; }
  rm -f "$BASE/pwfile"
  cat >>"$BASE/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$BASE'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
CONF
  as_postgres "$PGBIN/pg_ctl" -D "$BASE/data" -l "$BASE/server.log" -w -t 60 start >/dev/null \
    || { tail -20 "$BASE/server.log" >&2; exit 1; }
  for _ in $(seq 120); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" && break
    sleep 0.25
  done
  "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" || { echo "PostgreSQL did not become ready" >&2; exit 1; }
  echo "PostgreSQL 15 ready on 127.0.0.1:$PORT (data in $BASE)" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) echo "export AI_SHELL_TEST_PG_URL=$URL" ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
