#!/usr/bin/env bash
# A throwaway MariaDB 10.11 server for ai-shell's tests, on 127.0.0.1 only (Debian 12, run as root).
#   mariadb-test-server.sh start   install the data dir (own defaults file), start, wait until ready
#   mariadb-test-server.sh stop    stop the server (by its own pid file; a stale one is removed)
#   mariadb-test-server.sh restart stop if running, start again on the same data (crash recovery
#                                  after a kill), wait until ready
#   mariadb-test-server.sh env     print `export AI_SHELL_TEST_MARIADB_URL=...` for the tests
# Packages come from scripts/install-deps.sh --test (mariadb-server, mariadb-client).
# Data lives in ${AI_SHELL_TEST_DIR:-/tmp/ai-shell-test}/mariadb and is wiped on start. The server
# reads only its own defaults file (Debian's /etc/mysql points at /run/mysqld and :3306), writes a
# binary log (ROW format), and root is socket-only: the tests connect over TCP as `backup`, which
# has ALL privileges and a password. `localhost` would mean the socket: always use 127.0.0.1.
set -euo pipefail
BASE=${AI_SHELL_TEST_DIR:-/tmp/ai-shell-test}/mariadb
PORT=${MARIADB_PORT:-53306}
DBUSER=backup
DBPASS=${AI_SHELL_TEST_MARIADB_PASSWORD:-backup-test-pass}
CNF=$BASE/my.cnf
URL="mysql://$DBUSER:$DBPASS@127.0.0.1:$PORT/"

stop() {
  [ -f "$BASE/mysqld.pid" ] || return 0
  local pid
  pid=$(cat "$BASE/mysqld.pid")
  # a server killed with SIGKILL leaves its pid file: signal that pid only if it is still ours
  if [ "$(ps -o comm= -p "$pid" 2>/dev/null || true)" = mariadbd ]; then
    kill "$pid" 2>/dev/null || true
  fi
  for _ in $(seq 240); do
    # a zombie (reaped late by PID 1) counts as gone
    st=$(ps -o stat= -p "$pid" 2>/dev/null || true)
    [ -z "$st" ] || [ "${st#Z}" != "$st" ] && break
    sleep 0.25
  done
  rm -f "$BASE/mysqld.pid"
}

ASUSER=()
if [ "$(id -u)" = 0 ]; then ASUSER=(--user=mysql); fi

# starts mariadbd on the data in $BASE (in a session of its own, no terminal, output to files)
# and waits until it answers
launch() {
  setsid "$(command -v mariadbd || echo /usr/sbin/mariadbd)" --defaults-file="$CNF" "${ASUSER[@]}" \
    >>"$BASE/server.log" 2>&1 </dev/null &
  for _ in $(seq 240); do
    mariadb-admin --defaults-file="$CNF" --protocol=socket -uroot ping >/dev/null 2>&1 && break
    sleep 0.25
  done
  mariadb-admin --defaults-file="$CNF" --protocol=socket -uroot ping >/dev/null 2>&1 \
    || { tail -20 "$BASE/error.log" >&2; echo "MariaDB did not become ready" >&2; exit 1; }
}

restart() {
  [ -f "$CNF" ] || { echo "no MariaDB test server in $BASE: run start first" >&2; exit 1; }
  stop
  launch
  echo "MariaDB restarted on 127.0.0.1:$PORT (data in $BASE)" >&2
}

start() {
  command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] \
    || { echo "MariaDB is not installed: run scripts/install-deps.sh --test" >&2; exit 1; }
  stop
  if ss -Htln "sport = :$PORT" 2>/dev/null | grep -q .; then
    echo "port $PORT is already in use (set MARIADB_PORT)" >&2; exit 1
  fi
  rm -rf "$BASE"
  mkdir -p "$BASE"/{data,binlog,tmp}
  chmod 755 "$(dirname "$BASE")" 2>/dev/null || true
  cat >"$CNF" <<CONF
[mysqld]
datadir=$BASE/data
socket=$BASE/mysqld.sock
pid-file=$BASE/mysqld.pid
port=$PORT
bind-address=127.0.0.1
tmpdir=$BASE/tmp
log-error=$BASE/error.log
log-bin=$BASE/binlog/mysql-bin
binlog_format=ROW
server-id=1
skip-name-resolve
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=2
sync_binlog=0
event_scheduler=OFF
[client]
socket=$BASE/mysqld.sock
port=$PORT
CONF
  if [ "$(id -u)" = 0 ]; then chown -R mysql:mysql "$BASE"; fi
  mariadb-install-db --defaults-file="$CNF" "${ASUSER[@]}" --skip-test-db \
    --auth-root-authentication-method=socket >"$BASE/install-db.log" 2>&1 \
    || { cat "$BASE/install-db.log" >&2; exit 1; }
  launch
  # root@localhost authenticates by unix_socket; the tests use a password user over TCP
  mariadb --defaults-file="$CNF" --protocol=socket -uroot -e "
    CREATE USER IF NOT EXISTS '$DBUSER'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
    GRANT ALL PRIVILEGES ON *.* TO '$DBUSER'@'127.0.0.1' WITH GRANT OPTION;"
  MYSQL_PWD="$DBPASS" mariadb-admin --no-defaults --protocol=TCP -h127.0.0.1 -P"$PORT" -u"$DBUSER" ping >/dev/null
  echo "MariaDB $(mariadbd --version | awk '{print $3}') ready on 127.0.0.1:$PORT (data in $BASE)" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  restart) restart ;;
  env) echo "export AI_SHELL_TEST_MARIADB_URL=$URL" ;;
  *) echo "usage: $0 start|stop|restart|env" >&2; exit 2 ;;
esac
