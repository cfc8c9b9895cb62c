#!/usr/bin/env bash
# Side-by-side benchmark in one run: ai-shell against the standard pipeline, with wall time
# ratios and peak RSS (GNU time's maximum resident set size of the whole command).
#   scripts/bench.sh sqlite [size-MB]      (default 500 MB; the database is cached in bench-data/)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-sqlite}
[ "$what" = sqlite ] || { echo "usage: scripts/bench.sh sqlite [size-MB]" >&2; exit 64; }
MB=${2:-500}
scripts/install-deps.sh --test
command -v /usr/bin/time >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
swift build -c release 2>&1 | tail -1
BIN=$(swift build -c release --show-bin-path)/ai-shell
DATA=bench-data; mkdir -p "$DATA"
DB=$DATA/bench-$MB.db
if [ ! -f "$DB" ]; then
  echo "building a ~$MB MB SQLite database in $DB ..." >&2
  rows=$((MB * 1000000 / 100))
  sqlite3 "$DB.tmp" <<SQL
PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT, city TEXT, created TEXT);
CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, status TEXT, note TEXT, token BLOB);
CREATE TABLE events(id INTEGER PRIMARY KEY, kind TEXT, payload TEXT, at INTEGER);
INSERT INTO customers WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<$((rows / 10)))
  SELECT i, 'Customer ' || i, 'user' || i || '@example.com', 'City ' || (i % 500), datetime(1600000000 + i * 37, 'unixepoch') FROM s;
INSERT INTO orders WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<$((rows / 2)))
  SELECT i, 1 + i % $((rows / 10)), (i % 10007) * 0.37, CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped' ELSE 'closed' END,
         'order ' || i || ' for customer ' || (i % 977) || ' with some free text that repeats', randomblob(16) FROM s;
INSERT INTO events WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<$((rows * 4 / 10)))
  SELECT i, 'kind' || (i % 17), '{"user":' || (i % 5000) || ',"action":"click","target":"button-' || (i % 91) || '","value":' || i || '}', 1700000000 + i FROM s;
CREATE INDEX orders_customer ON orders(customer_id);
SQL
  mv "$DB.tmp" "$DB"
fi
dbsize=$(stat -c %s "$DB")
OUT=$(mktemp -d "${TMPDIR:-/tmp}/ai-shell-bench.XXXXXX")
trap 'rm -rf "$OUT"' EXIT
export AI_SHELL_BACKUP_DIR=$OUT/backups

# measure KEY LABEL CMD: records wall seconds, CPU seconds (user + system, all processes of the
# command) and peak RSS (KiB) under KEY
declare -A WALL CPU RSS
measure() {
  local key=$1 label=$2; shift 2
  sync
  /usr/bin/time -f '%e %U %S %M' -o "$OUT/time" bash -c "$*" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; exit 1; }
  local w u s r; read -r w u s r <"$OUT/time"; WALL[$key]=$w; RSS[$key]=$r
  CPU[$key]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
  printf '  %-34s %7.2f s  %7.2f s CPU  %7d MiB peak RSS\n' "$label" "$w" "${CPU[$key]}" "$((r / 1024))" >&2
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "database: $DB ($((dbsize / 1048576)) MiB), $(nproc) cores" >&2
echo "create:" >&2
measure base_dump "sqlite3 .dump | gzip -6" "sqlite3 '$DB' .dump | gzip -6 > '$OUT/base.sql.gz'"
measure gz_create "ai-shell create -c gzip" "'$BIN' backup create -d '$DB' -c gzip > '$OUT/id-gzip'"
measure zst_create "ai-shell create (zstd default)" "'$BIN' backup create -d '$DB' > '$OUT/id-zstd'"
echo "restore:" >&2
measure base_restore "gzip -dc | sqlite3" "gzip -dc '$OUT/base.sql.gz' | sqlite3 '$OUT/base-restored.db'"
measure gz_restore "ai-shell restore (gzip backup)" "'$BIN' backup restore \$(cat '$OUT/id-gzip') -d '$OUT/r1.db'"
measure zst_restore "ai-shell restore (zstd backup)" "'$BIN' backup restore \$(cat '$OUT/id-zstd') -d '$OUT/r2.db'"

echo "encryption (age, X25519):" >&2
age-keygen -o "$OUT/key.txt" 2>/dev/null
RECIPIENT=$(age-keygen -y "$OUT/key.txt")
measure enc_create "ai-shell create --encrypt" "'$BIN' backup create -d '$DB' --encrypt --recipient $RECIPIENT > '$OUT/id-enc'"
measure enc_restore "ai-shell restore (encrypted)" "'$BIN' backup restore \$(cat '$OUT/id-enc') -d '$OUT/r3.db' --identity '$OUT/key.txt'"
# encryption alone, on the same file (the database file itself): the age CLI and our age code
PLAIN=$DB
AGEBIN=$(swift build -c release --show-bin-path)/age-throughput
measure age_cli "age -r (CLI) on the database file" "age -r $RECIPIENT -o '$OUT/cli.age' '$PLAIN'"
measure age_ours "our age code on the same file" "'$AGEBIN' $RECIPIENT '$PLAIN' '$OUT/ours.age'"
age -d -i "$OUT/key.txt" "$OUT/ours.age" | cmp - "$PLAIN" || { echo "our encryption does not decrypt with age" >&2; exit 1; }

echo
echo "| measure (SQLite, $((dbsize / 1048576)) MiB, $(nproc) cores) | ratio | target | peak RSS |"
echo "|---|---|---|---|"
echo "| create -c gzip / (sqlite3 .dump \| gzip -6) | $(ratio "${WALL[gz_create]}" "${WALL[base_dump]}") | <= 1.0 | $((RSS[gz_create] / 1024)) MiB |"
echo "| create (zstd) / (sqlite3 .dump \| gzip -6) | $(ratio "${WALL[zst_create]}" "${WALL[base_dump]}") | <= 0.6 | $((RSS[zst_create] / 1024)) MiB |"
echo "| restore (gzip) / (gzip -dc \| sqlite3) | $(ratio "${WALL[gz_restore]}" "${WALL[base_restore]}") | <= 1.0 | $((RSS[gz_restore] / 1024)) MiB |"
echo "| restore (zstd) / (gzip -dc \| sqlite3) | $(ratio "${WALL[zst_restore]}" "${WALL[base_restore]}") | <= 1.0 | $((RSS[zst_restore] / 1024)) MiB |"
echo "| create --encrypt / create (both zstd) | $(ratio "${WALL[enc_create]}" "${WALL[zst_create]}") | <= 1.15 | $((RSS[enc_create] / 1024)) MiB |"
echo "| restore encrypted / restore (both zstd) | $(ratio "${WALL[enc_restore]}" "${WALL[zst_restore]}") | <= 1.15 | $((RSS[enc_restore] / 1024)) MiB |"
echo "| our age encryption / age CLI, same $(( $(stat -c %s "$PLAIN") / 1048576 )) MiB file: wall | $(ratio "${WALL[age_ours]}" "${WALL[age_cli]}") | <= 1.5 | $((RSS[age_ours] / 1024)) MiB |"
# both are single-threaded streams: on a shared machine their CPU time is the steadier measure
echo "| our age encryption / age CLI, same file: CPU (user + system) | $(ratio "${CPU[age_ours]}" "${CPU[age_cli]}") | <= 1.5 | |"
echo "| baseline peak RSS: dump $((RSS[base_dump] / 1024)) MiB, restore $((RSS[base_restore] / 1024)) MiB | | | |"
