#!/usr/bin/env bash
# The main job on an embedded SQLite database, on a fresh Debian 12 machine with Swift:
# installs what is needed, builds, creates a small sample database unless one is given,
# backs it up, verifies the backup, restores it into a new file and lists the backups.
#   scripts/demo.sh [path/to/database.db]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
swift build -c release 2>&1 | tail -1
BIN=$(swift build -c release --show-bin-path)/ai-shell
WORK=${DEMO_DIR:-$(mktemp -d /tmp/ai-shell-demo.XXXXXX)}
mkdir -p "$WORK"
export AI_SHELL_BACKUP_DIR=$WORK/backups
DB=${1:-}
if [ -z "$DB" ]; then
  DB=$WORK/sample.db
  rm -f "$DB"
  sqlite3 "$DB" <<'SQL'
PRAGMA user_version = 7;
CREATE TABLE customers(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, email TEXT UNIQUE, note TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), total REAL, placed_at TEXT, receipt BLOB);
CREATE INDEX orders_by_customer ON orders(customer_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
INSERT INTO customers(name, email, note)
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
  SELECT 'Customer ' || i, 'c' || i || '@example.com', CASE WHEN i % 7 = 0 THEN NULL ELSE 'It''s note ' || i END FROM n;
INSERT INTO orders(customer_id, total, placed_at, receipt)
  WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
  SELECT 1 + i % 2000, (i % 977) * 1.25, datetime(1700000000 + i * 60, 'unixepoch'), randomblob(16) FROM n;
SQL
  echo "created sample database $DB" >&2
fi
echo "== backup create" >&2
ID=$("$BIN" backup create -d "$DB" --name demo --verbose | tail -1)
echo "== backup verify --test $ID" >&2
"$BIN" backup verify "$ID" --test
echo "== backup restore into $WORK/restored.db" >&2
rm -f "$WORK/restored.db"
"$BIN" backup restore "$ID" -d "$WORK/restored.db"
echo "== backup list" >&2
"$BIN" backup list
echo "== compare" >&2
if [ "$(sqlite3 "$DB" .dump)" = "$(sqlite3 "$WORK/restored.db" .dump)" ]; then
  echo "restored database matches the source: $WORK/restored.db"
else
  echo "restored database differs from the source" >&2; exit 1
fi
