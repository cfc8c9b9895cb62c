#!/usr/bin/env bash
# A throwaway mail server (Python aiosmtpd, scripts/smtp_test_sink.py) for ai-shell's SMTP tests,
# on 127.0.0.1 only.
#   smtp-test-server.sh start   make a test CA and a server certificate (openssl), start the sink
#   smtp-test-server.sh stop    stop it
#   smtp-test-server.sh env     print the `export AI_SHELL_TEST_SMTP_...=` lines the tests read
# Packages come from scripts/install-deps.sh --test (openssl, python3, PyPI aiosmtpd).
# Ports (env overrides, so parallel runs do not collide): SMTP_PORT (STARTTLS + AUTH PLAIN/LOGIN,
# default 52587), SMTP_LOGIN_PORT (STARTTLS + AUTH LOGIN only, 52588), SMTPS_PORT (implicit TLS,
# 52465). Files live in ${AI_SHELL_TEST_DIR:-/tmp/ai-shell-test}/smtp and are wiped on start:
# ca.pem (the CA the tests pass as caFile), server.pem/server.key, Maildir/ (delivered mail).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${AI_SHELL_TEST_DIR:-/tmp/ai-shell-test}/smtp
export SMTP_PORT=${SMTP_PORT:-52587}
export SMTP_LOGIN_PORT=${SMTP_LOGIN_PORT:-52588}
export SMTPS_PORT=${SMTPS_PORT:-52465}
export SMTP_USER=${AI_SHELL_TEST_SMTP_USER:-mailer}
export SMTP_PASSWORD=${AI_SHELL_TEST_SMTP_PASSWORD:-smtp-test-pass}

running() {   # a zombie (state Z) looks alive to kill -0 until it is reaped
  local pid=$1
  kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]
}

stop() {
  [ -f "$BASE/pid" ] || return 0
  local pid
  pid=$(cat "$BASE/pid")
  if running "$pid"; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
    running "$pid" && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$BASE/pid"
}

certificates() {
  cd "$BASE"
  openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=ai-shell test CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
  printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth" \
    "basicConstraints=CA:FALSE" >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -extfile server.ext \
    -out server.pem 2>/dev/null
  rm -f server.csr server.ext ca.srl
  cd - >/dev/null
}

start() {
  command -v openssl >/dev/null || { echo "openssl is missing: run scripts/install-deps.sh --test" >&2; exit 1; }
  python3 -c 'import aiosmtpd' 2>/dev/null || { echo "aiosmtpd is missing: run scripts/install-deps.sh --test" >&2; exit 1; }
  stop
  for port in "$SMTP_PORT" "$SMTP_LOGIN_PORT" "$SMTPS_PORT"; do
    if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
      echo "port $port is already in use (set SMTP_PORT, SMTP_LOGIN_PORT, SMTPS_PORT)" >&2; exit 1
    fi
  done
  rm -rf "$BASE"
  mkdir -p "$BASE/Maildir/tmp" "$BASE/Maildir/new" "$BASE/Maildir/cur"
  certificates
  setsid python3 "$HERE/smtp_test_sink.py" "$BASE" >"$BASE/server.log" 2>&1 </dev/null &
  echo $! >"$BASE/pid"
  for _ in $(seq 100); do
    grep -q 'ready' "$BASE/server.log" 2>/dev/null && break
    running "$(cat "$BASE/pid")" || break
    sleep 0.1
  done
  grep -q 'ready' "$BASE/server.log" || { cat "$BASE/server.log" >&2; echo "the SMTP test server did not start" >&2; exit 1; }
  echo "SMTP test server on 127.0.0.1: STARTTLS $SMTP_PORT, LOGIN-only $SMTP_LOGIN_PORT, TLS $SMTPS_PORT (files in $BASE)" >&2
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    cat <<ENV
export AI_SHELL_TEST_SMTP_HOST=127.0.0.1
export AI_SHELL_TEST_SMTP_PORT=$SMTP_PORT
export AI_SHELL_TEST_SMTP_LOGIN_PORT=$SMTP_LOGIN_PORT
export AI_SHELL_TEST_SMTPS_PORT=$SMTPS_PORT
export AI_SHELL_TEST_SMTP_USER=$SMTP_USER
export AI_SHELL_TEST_SMTP_PASSWORD=$SMTP_PASSWORD
export AI_SHELL_TEST_SMTP_CA=$BASE/ca.pem
export AI_SHELL_TEST_SMTP_MAILDIR=$BASE/Maildir
ENV
    ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
