#!/usr/bin/env bash
# Side-by-side benchmark in one run: ai-shell against the standard pipeline, with wall time
# ratios and peak RSS (GNU time's maximum resident set size of the whole command).
#   scripts/bench.sh sqlite [size-MB]      (default 500 MB; the database is cached in bench-data/)
#   scripts/bench.sh mariadb [size-MB]     (default 300 MB; generated on a throwaway MariaDB
#                                           started by scripts/mariadb-test-server.sh on port
#                                           ${MARIADB_PORT:-53399}, stopped at the end)
#   scripts/bench.sh postgres [scale]      (pgbench -i -s scale, default 50 (~750 MB), into a
#                                           server of its own: BENCH_PG_PORT, default 55452;
#                                           BENCH_ROUNDS rounds of every measure, default 3)
#   scripts/bench.sh s3 [size-MB]          (default 1024: a backup file of that size, uploaded by
#                                           create --cloud and downloaded by import --cloud, against
#                                           `aws s3 cp` of the same file, both to a SeaweedFS of its
#                                           own started by scripts/s3-test-server.sh on
#                                           BENCH_S3_PORT (default 47800), stopped at the end)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-sqlite}
case "$what" in
  sqlite) MB=${2:-500} ;;
  mariadb) MB=${2:-300} ;;
  postgres) SCALE=${2:-50} ;;
  s3) MB=${2:-1024} ;;
  *) echo "usage: scripts/bench.sh sqlite [size-MB] | mariadb [size-MB] | postgres [scale] | s3 [size-MB]" >&2; exit 64 ;;
esac
scripts/install-deps.sh --test
command -v /usr/bin/time >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
# AI_SHELL_BENCH_BIN: measure that (release) ai-shell binary instead of building this checkout
if [ -n "${AI_SHELL_BENCH_BIN:-}" ]; then
  BIN=$AI_SHELL_BENCH_BIN
else
  swift build -c release 2>&1 | tail -1
  BIN=$(swift build -c release --show-bin-path)/ai-shell
fi
DATA=bench-data; mkdir -p "$DATA"
OUT=$(mktemp -d "${TMPDIR:-/tmp}/ai-shell-bench.XXXXXX")
CLEANUP=("rm -rf '$OUT'")
trap 'for c in "${CLEANUP[@]}"; do eval "$c"; done' EXIT
export AI_SHELL_BACKUP_DIR=$OUT/backups

# measure KEY LABEL CMD: records wall seconds, CPU seconds (user + system, all processes of the
# command) and peak RSS (KiB) under KEY. Measured again (another round), KEY keeps every wall
# time (WALLS), the median (WALL) and the highest peak RSS. With SERVER_PID set (a database
# server's main process), the server's CPU seconds during the command are printed too: the
# work a wall time on this shared machine (CPU steal) hides.
declare -A WALL WALLS CPU RSS
measure() {
  local key=$1 label=$2; shift 2
  sync
  local s0=; [ -n "${SERVER_PID:-}" ] && s0=$(server_cpu "$SERVER_PID")
  /usr/bin/time -f '%e %U %S %M' -o "$OUT/time" bash -c "$*" >/dev/null 2>"$OUT/err" || { cat "$OUT/err" >&2; exit 1; }
  local w u s r; read -r w u s r <"$OUT/time"
  WALLS[$key]="${WALLS[$key]:-} $w"
  # shellcheck disable=SC2086
  WALL[$key]=$(median ${WALLS[$key]})
  [ "$r" -gt "${RSS[$key]:-0}" ] && RSS[$key]=$r
  CPU[$key]=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
  local server=
  if [ -n "$s0" ]; then
    sleep 0.5  # the server reaps the command's backends
    server=$(awk -v a="$s0" -v b="$(server_cpu "$SERVER_PID")" 'BEGIN { printf "  %7.2f s server CPU", b - a }')
  fi
  printf '  %-34s %7.2f s  %7.2f s CPU  %7d MiB peak RSS%s\n' "$label" "$w" "${CPU[$key]}" "$((r / 1024))" "$server" >&2
}
# server_cpu PID: CPU seconds process PID and its children have used so far (its own and its
# reaped children's from /proc/PID/stat, plus every live child's)
server_cpu() {
  { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"
    for c in $(pgrep -P "$1"); do awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null || true; done
  } | awk -v hz="$(getconf CLK_TCK)" '{ t += $1 } END { printf "%.2f", t / hz }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# rounds KEY BASE: KEY's wall time over BASE's in each round (measured minutes apart on the same
# machine state), as "median (round 1, round 2, ...)"
rounds() {
  local -a a b r=()
  read -r -a a <<<"${WALLS[$1]}"
  read -r -a b <<<"${WALLS[$2]}"
  local i
  for i in "${!a[@]}"; do r+=("$(ratio "${a[$i]}" "${b[$i]}")"); done
  if [ ${#r[@]} -eq 1 ]; then echo "${r[0]}"; else echo "$(median "${r[@]}") ($(IFS=,; echo "${r[*]}" | sed 's/,/, /g'))"; fi
}

bench_sqlite() {
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
AGEBIN=$(dirname "$BIN")/age-throughput
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
}

# MySQL/MariaDB: ai-shell against `mariadb-dump --single-transaction | gzip -6` and `gzip -dc | mariadb`
bench_mariadb() {
  export MARIADB_PORT=${MARIADB_PORT:-53399} AI_SHELL_TEST_DIR=${TMPDIR:-/tmp}/ai-shell-bench-mariadb
  scripts/mariadb-test-server.sh start >&2
  CLEANUP+=("scripts/mariadb-test-server.sh stop")
  eval "$(scripts/mariadb-test-server.sh env)"
  local url=$AI_SHELL_TEST_MARIADB_URL
  # the password goes through MYSQL_PWD, never argv (ai-shell reads it too)
  export MYSQL_PWD=${url#*://*:}; MYSQL_PWD=${MYSQL_PWD%%@*}
  local user=${url#*://}; user=${user%%:*}
  local hostport=${url#*@}; hostport=${hostport%%/*}
  local host=${hostport%%:*} port=${hostport##*:}
  local base="mysql://$user@$host:$port"
  local cli="--no-defaults --protocol=TCP -h $host -P $port -u $user"
  local rows=$((MB * 1000000 / 85))
  echo "building a ~$MB MB MariaDB database (bench) on $host:$port ..." >&2
  mariadb $cli <<SQL
SET GLOBAL innodb_flush_log_at_trx_commit = 2;
CREATE DATABASE bench CHARACTER SET utf8mb4;
USE bench;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100), email VARCHAR(100), city VARCHAR(50), created DATETIME);
CREATE TABLE orders (id BIGINT PRIMARY KEY AUTO_INCREMENT, customer_id INT, amount DECIMAL(12,2), status ENUM('new','paid','shipped','closed'),
  note VARCHAR(200), token BINARY(16), KEY (customer_id));
CREATE TABLE events (id BIGINT PRIMARY KEY, kind VARCHAR(20), payload JSON, at TIMESTAMP NULL);
INSERT INTO customers SELECT seq, CONCAT('Customer ', seq), CONCAT('user', seq, '@example.com'), CONCAT('City ', seq % 500),
  FROM_UNIXTIME(1600000000 + seq * 37) FROM seq_1_to_$((rows / 10));
INSERT INTO orders SELECT seq, 1 + seq % $((rows / 10)), (seq % 10007) * 0.37, 1 + seq % 4,
  CONCAT('order ', seq, ' for customer ', seq % 977, ' with some free text that repeats'), UNHEX(MD5(seq)) FROM seq_1_to_$((rows / 2));
INSERT INTO events SELECT seq, CONCAT('kind', seq % 17),
  CONCAT('{"user":', seq % 5000, ',"action":"click","target":"button-', seq % 91, '","value":', seq, '}'), FROM_UNIXTIME(1700000000 + seq)
  FROM seq_1_to_$((rows * 4 / 10));
SQL
  local dbsize
  dbsize=$(mariadb $cli -N -e "SELECT SUM(DATA_LENGTH + INDEX_LENGTH) FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'bench'")
  echo "database: bench ($((dbsize / 1048576)) MiB in InnoDB), $(nproc) cores" >&2
  echo "create:" >&2
  measure my_base_dump "mariadb-dump --single-transaction | gzip -6" \
    "mariadb-dump $cli --single-transaction --routines --events bench | gzip -6 > '$OUT/base.sql.gz'"
  measure my_gz_create "ai-shell create -c gzip" "'$BIN' backup create -d '$base/bench' -c gzip > '$OUT/id-gzip'"
  measure my_zst_create "ai-shell create (zstd default)" "'$BIN' backup create -d '$base/bench' > '$OUT/id-zstd'"
  measure my_j1_create "ai-shell create --jobs 1" "'$BIN' backup create -d '$base/bench' --jobs 1 > '$OUT/id-j1'"
  echo "restore:" >&2
  measure my_base_restore "gzip -dc | mariadb" \
    "mariadb $cli -e 'CREATE DATABASE base_r' && gzip -dc '$OUT/base.sql.gz' | mariadb $cli base_r"
  measure my_gz_restore "ai-shell restore --jobs 1 (gzip)" "'$BIN' backup restore \$(cat '$OUT/id-gzip') -d '$base/r_gz' --jobs 1"
  measure my_zst_restore "ai-shell restore --jobs 1 (zstd)" "'$BIN' backup restore \$(cat '$OUT/id-zstd') -d '$base/r_zst' --jobs 1"
  measure my_j2_restore "ai-shell restore --jobs 2 (zstd)" "'$BIN' backup restore \$(cat '$OUT/id-zstd') -d '$base/r_j2' --jobs 2"
  local mib=$((dbsize / 1048576))
  echo
  echo "| measure (MariaDB, $mib MiB InnoDB, $(nproc) cores) | ratio | target | peak RSS |"
  echo "|---|---|---|---|"
  echo "| create -c gzip / (mariadb-dump \| gzip -6) | $(ratio "${WALL[my_gz_create]}" "${WALL[my_base_dump]}") | <= 1.0 | $((RSS[my_gz_create] / 1024)) MiB |"
  echo "| create (zstd) / (mariadb-dump \| gzip -6) | $(ratio "${WALL[my_zst_create]}" "${WALL[my_base_dump]}") | <= 0.6 | $((RSS[my_zst_create] / 1024)) MiB |"
  echo "| create --jobs 1 (zstd) / (mariadb-dump \| gzip -6) | $(ratio "${WALL[my_j1_create]}" "${WALL[my_base_dump]}") | | $((RSS[my_j1_create] / 1024)) MiB |"
  echo "| restore --jobs 1 (gzip) / (gzip -dc \| mariadb) | $(ratio "${WALL[my_gz_restore]}" "${WALL[my_base_restore]}") | <= 1.0 | $((RSS[my_gz_restore] / 1024)) MiB |"
  echo "| restore --jobs 1 (zstd) / (gzip -dc \| mariadb) | $(ratio "${WALL[my_zst_restore]}" "${WALL[my_base_restore]}") | <= 1.0 | $((RSS[my_zst_restore] / 1024)) MiB |"
  echo "| restore --jobs 2 (zstd) / (gzip -dc \| mariadb) | $(ratio "${WALL[my_j2_restore]}" "${WALL[my_base_restore]}") | <= 0.7 | $((RSS[my_j2_restore] / 1024)) MiB |"
  echo "| baseline peak RSS: dump $((RSS[my_base_dump] / 1024)) MiB, restore $((RSS[my_base_restore] / 1024)) MiB | | | |"
}

bench_postgres() {
  # a server of its own (scripts/pg-test-server.sh), stopped on exit; the password only in PGPASSWORD
  export PG_PORT=${BENCH_PG_PORT:-55452} AI_SHELL_TEST_DIR=${BENCH_PG_DIR:-/tmp/ai-shell-bench-pg}
  scripts/pg-test-server.sh start
  CLEANUP+=("scripts/pg-test-server.sh stop")
  export PGPASSWORD=${AI_SHELL_TEST_PG_PASSWORD:-backup-test-pass} PGUSER=backup PGHOST=127.0.0.1 PGPORT=$PG_PORT
  SERVER_PID=$(head -1 "$AI_SHELL_TEST_DIR/pg/data/postmaster.pid")
  U="postgresql://backup@127.0.0.1:$PG_PORT"
  createdb bench
  echo "pgbench -i -s $SCALE ..." >&2
  pgbench -i -q -s "$SCALE" bench 2>/dev/null
  size=$(psql -Atc "SELECT pg_database_size('bench')" bench)
  echo "database: pgbench scale $SCALE ($((size / 1048576)) MiB), $(nproc) cores" >&2
  # the machine is shared and noisy: every measure is taken ROUNDS times, the rounds one after
  # the other, and the table gives the median of the per-round ratios (and each round's)
  local ROUNDS=${BENCH_ROUNDS:-3} round
  for round in $(seq "$ROUNDS"); do
    rm -rf "$OUT/base.dir"
    for d in r0 r1 r2 r3 r4; do dropdb --if-exists "$d" 2>/dev/null; done
    echo "round $round of $ROUNDS, create:" >&2
    measure base_dump "pg_dump | gzip -6" "pg_dump -d bench | gzip -6 > '$OUT/base.sql.gz'"
    measure fd_dump "pg_dump -Fd -j 2" "pg_dump -d bench -Fd -j 2 -f '$OUT/base.dir'"
    measure gz_create "ai-shell create -c gzip --jobs 1" "'$BIN' backup create -d '$U/bench' -c gzip --jobs 1 > '$OUT/id-gzip'"
    measure zst_create "ai-shell create (zstd) --jobs 1" "'$BIN' backup create -d '$U/bench' --jobs 1 > '$OUT/id-zstd'"
    measure zst2_create "ai-shell create (zstd) --jobs 2" "'$BIN' backup create -d '$U/bench' --jobs 2 > '$OUT/id-zstd2'"
    echo "round $round of $ROUNDS, restore:" >&2
    measure base_restore "gzip -dc | psql" "createdb r0 && gzip -dc '$OUT/base.sql.gz' | psql -q -v ON_ERROR_STOP=1 -d r0"
    measure fd_restore "pg_restore -j 2 (from -Fd)" "createdb r1 && pg_restore -j 2 -d r1 '$OUT/base.dir'"
    measure gz_restore "ai-shell restore (gzip) --jobs 1" "'$BIN' backup restore \$(cat '$OUT/id-gzip') -d '$U/r2' --jobs 1"
    measure zst_restore "ai-shell restore (zstd) --jobs 1" "'$BIN' backup restore \$(cat '$OUT/id-zstd') -d '$U/r3' --jobs 1"
    measure zst2_restore "ai-shell restore (zstd) --jobs 2" "'$BIN' backup restore \$(cat '$OUT/id-zstd') -d '$U/r4' --jobs 2"
  done
  echo
  echo "| measure (PostgreSQL 15, pgbench -s $SCALE, $((size / 1048576)) MiB, $(nproc) cores, $ROUNDS rounds) | ratio: median (each round) | target | peak RSS |"
  echo "|---|---|---|---|"
  echo "| create -c gzip --jobs 1 / (pg_dump \| gzip -6) | $(rounds gz_create base_dump) | <= 1.0 | $((RSS[gz_create] / 1024)) MiB |"
  echo "| create (zstd) --jobs 1 / (pg_dump \| gzip -6) | $(rounds zst_create base_dump) | <= 0.6 | $((RSS[zst_create] / 1024)) MiB |"
  echo "| create (zstd) --jobs 2 / (pg_dump \| gzip -6) | $(rounds zst2_create base_dump) | <= 0.6 | $((RSS[zst2_create] / 1024)) MiB |"
  echo "| create (zstd) --jobs 2 / pg_dump -Fd -j 2 | $(rounds zst2_create fd_dump) | | |"
  echo "| restore (gzip) --jobs 1 / (gzip -dc \| psql) | $(rounds gz_restore base_restore) | <= 1.0 | $((RSS[gz_restore] / 1024)) MiB |"
  echo "| restore (zstd) --jobs 1 / (gzip -dc \| psql) | $(rounds zst_restore base_restore) | <= 1.0 | $((RSS[zst_restore] / 1024)) MiB |"
  echo "| restore (zstd) --jobs 2 / (gzip -dc \| psql) | $(rounds zst2_restore base_restore) | <= 0.7 | $((RSS[zst2_restore] / 1024)) MiB |"
  echo "| restore (zstd) --jobs 2 / pg_restore -j 2 | $(rounds zst2_restore fd_restore) | | |"
  echo "| baseline medians: pg_dump \| gzip -6 ${WALL[base_dump]} s, gzip -dc \| psql ${WALL[base_restore]} s | | | |"
  echo "| baseline peak RSS: pg_dump \| gzip $((RSS[base_dump] / 1024)) MiB, gzip -dc \| psql $((RSS[base_restore] / 1024)) MiB | | | |"
}

# S3: the transfer itself, ours against the AWS CLI, on the same file and the same server
bench_s3() {
  export S3_SEAWEED_PORT=${BENCH_S3_PORT:-47800} S3_MOTO_PORT=$((${BENCH_S3_PORT:-47800} + 100))
  export AI_SHELL_TEST_DIR=${TMPDIR:-/tmp}/ai-shell-bench-s3
  scripts/s3-test-server.sh start >&2
  CLEANUP+=("scripts/s3-test-server.sh stop")
  eval "$(scripts/s3-test-server.sh env)"
  export AWS_ACCESS_KEY_ID=$AI_SHELL_TEST_S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$AI_SHELL_TEST_S3_SECRET_KEY
  export AWS_DEFAULT_REGION=us-east-1 AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  unset AWS_PROFILE AWS_SESSION_TOKEN
  local ep=$AI_SHELL_TEST_S3_ENDPOINT
  aws --endpoint-url "$ep" s3 mb s3://bench >/dev/null
  export AI_SHELL_CONFIG=$OUT/config.json
  "$BIN" backup config --set cloudProvider=aws-s3 cloudConfig.bucket=bench cloudConfig.endpoint="$ep" \
    cloudConfig.region=us-east-1 cloudConfig.forcePathStyle=true >/dev/null
  # incompressible rows, stored as they come (-c none): the backup file is about MB MiB of SQL
  # whose bytes are all transfer work; the dump itself is measured alone (create without --cloud)
  local DB=$DATA/bench-s3-$MB.db
  if [ ! -f "$DB" ]; then
    echo "building a SQLite database whose SQL dump is ~$MB MiB in $DB ..." >&2
    sqlite3 "$DB.tmp" >/dev/null <<SQL
PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
CREATE TABLE blobs(id INTEGER PRIMARY KEY, payload BLOB);
INSERT INTO blobs WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM s WHERE i<$((MB * 128)))
  SELECT i, randomblob(4000) FROM s;
SQL
    mv "$DB.tmp" "$DB"
  fi
  echo "upload:" >&2
  measure s3_local "ai-shell create -c none (no cloud)" "'$BIN' backup create -d '$DB' -c none > '$OUT/id-local'"
  measure s3_create "ai-shell create -c none --cloud" "'$BIN' backup create -d '$DB' -c none --cloud > '$OUT/id-cloud'"
  local id file size
  id=$(cat "$OUT/id-cloud")
  file=$(ls "$AI_SHELL_BACKUP_DIR" | grep "^$id\.sql\$")
  size=$(stat -c %s "$AI_SHELL_BACKUP_DIR/$file")
  echo "  (backup file: $((size / 1048576)) MiB)" >&2
  measure s3_cli_up "aws s3 cp (upload, same file)" "aws --endpoint-url '$ep' s3 cp '$AI_SHELL_BACKUP_DIR/$file' s3://bench/cli/$file"
  # the same upload checked by CRC-32 instead of Content-MD5, as the AWS CLI checks its parts
  "$BIN" backup config --set cloudConfig.checksum=crc32 >/dev/null
  measure s3_create_crc "ai-shell create -c none --cloud (crc32)" "'$BIN' backup create -d '$DB' -c none --cloud > '$OUT/id-crc'"
  "$BIN" backup config --set cloudConfig.checksum=md5 >/dev/null
  echo "download:" >&2
  "$BIN" backup delete "$id" --force >/dev/null   # the local copy only: import fetches it back
  measure s3_import "ai-shell import --cloud" "'$BIN' backup import --cloud '$id' >/dev/null"
  measure s3_cli_down "aws s3 cp (download)" "aws --endpoint-url '$ep' s3 cp s3://bench/cli/$file '$OUT/cli-copy'"
  cmp "$OUT/cli-copy" "$AI_SHELL_BACKUP_DIR/$file" || { echo "the downloads differ" >&2; exit 1; }
  local mib=$((size / 1048576))
  echo
  echo "| measure (S3: SeaweedFS on 127.0.0.1, $mib MiB backup file, $(nproc) cores) | ratio | target | peak RSS |"
  echo "|---|---|---|---|"
  echo "| upload throughput: aws s3 cp / create --cloud (wall, the same file) | $(ratio "${WALL[s3_cli_up]}" "${WALL[s3_create]}") | >= 1.0 | $((RSS[s3_create] / 1024)) MiB |"
  echo "| upload, cloudConfig.checksum=crc32: aws s3 cp / create --cloud | $(ratio "${WALL[s3_cli_up]}" "${WALL[s3_create_crc]}") | >= 1.0 | $((RSS[s3_create_crc] / 1024)) MiB |"
  echo "| upload alone: aws s3 cp / (create --cloud - create) | $(awk -v a="${WALL[s3_cli_up]}" -v b="${WALL[s3_create]}" -v c="${WALL[s3_local]}" 'BEGIN { d = b - c; if (d < 0.01) d = 0.01; printf "%.2f", a / d }') | | |"
  echo "| download throughput: aws s3 cp / import --cloud (wall) | $(ratio "${WALL[s3_cli_down]}" "${WALL[s3_import]}") | >= 1.0 | $((RSS[s3_import] / 1024)) MiB |"
  echo "| create --cloud / create (no cloud) | $(ratio "${WALL[s3_create]}" "${WALL[s3_local]}") | | $((RSS[s3_local] / 1024)) MiB |"
  echo "| MiB/s: create --cloud $(awk -v s="$size" -v w="${WALL[s3_create]}" 'BEGIN { printf "%.0f", s / 1048576 / w }'), aws up $(awk -v s="$size" -v w="${WALL[s3_cli_up]}" 'BEGIN { printf "%.0f", s / 1048576 / w }'), import $(awk -v s="$size" -v w="${WALL[s3_import]}" 'BEGIN { printf "%.0f", s / 1048576 / w }'), aws down $(awk -v s="$size" -v w="${WALL[s3_cli_down]}" 'BEGIN { printf "%.0f", s / 1048576 / w }'); aws peak RSS up $((RSS[s3_cli_up] / 1024)) MiB, down $((RSS[s3_cli_down] / 1024)) MiB | | | |"
}

"bench_$what"
