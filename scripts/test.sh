#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (with Swift) and runs the whole test suite:
# formatting check, a warning-free build, unit, interop and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
echo "== swift format lint" >&2
lint=$(swift format lint -r Sources Tests Package.swift 2>&1 || true)
if [ -n "$lint" ]; then echo "$lint" >&2; echo "swift format lint failed (run scripts/fmt.sh)" >&2; exit 1; fi
echo "== swift build (a warning in our own code fails the run)" >&2
log=$(mktemp)
if ! swift build --build-tests >"$log" 2>&1; then grep -E 'error' "$log" | head -40 >&2; tail -20 "$log" >&2; exit 1; fi
tail -1 "$log" >&2
if grep -E "^$PWD/(Sources|Tests)/.*warning:" "$log"; then echo "the build has warnings" >&2; exit 1; fi
echo "== PostgreSQL 15 test server" >&2
scripts/pg-test-server.sh start
trap 'scripts/pg-test-server.sh stop; scripts/mariadb-test-server.sh stop; scripts/smtp-test-server.sh stop; scripts/s3-test-server.sh stop' EXIT
eval "$(scripts/pg-test-server.sh env)"
echo "== MariaDB 10.11 test server" >&2
scripts/mariadb-test-server.sh start
eval "$(scripts/mariadb-test-server.sh env)"
echo "== SMTP test server (aiosmtpd)" >&2
scripts/smtp-test-server.sh start
eval "$(scripts/smtp-test-server.sh env)"
echo "== S3 test servers (SeaweedFS, moto)" >&2
scripts/s3-test-server.sh start
eval "$(scripts/s3-test-server.sh env)"
echo "== swift test" >&2
swift test --skip-build 2>&1
