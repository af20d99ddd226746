#!/usr/bin/env bash
# Benchmark: `pgbackd drill` (verify + restore + every check) against a plain
# `pg_restore -j 2` of the same dump into an empty database, on the same machine.
#
#   scripts/services.sh start pg && source .services/env
#   bench/daylog/generate.sh 1000000 daylog_bench
#   bench/drill/run.sh daylog_bench
#
# Takes one backup (level 1) into a temporary file repository first. Prints a markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
DB=${1:?usage: bench/drill/run.sh DATABASE}
: "${PGBACKD_TEST_PGHOST:?source .services/env first}"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

swift build -c release --product pgbackd --scratch-path .build-bench >/dev/null
PGBACKD=$PWD/.build-bench/release/pgbackd
WORK=$(mktemp -d /var/tmp/pgbackd-drill-bench.XXXXXX)
trap 'rm -rf "$WORK"; psql -qXd postgres -c "drop database if exists bench_pg_restore" >/dev/null 2>&1 || true' EXIT
export PGHOST=$PGBACKD_TEST_PGHOST PGPORT=$PGBACKD_TEST_PGPORT PGUSER=$PGBACKD_TEST_PGUSER
BIN=$PGBACKD_TEST_PGBIN

cat >"$WORK/pgbackd.toml" <<TOML
[repository]
type = "file"
path = "$WORK/repo"
stanza = "bench"
[postgres]
conninfo = "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres"
databases = ["$DB"]
bin_dir = "$BIN"
[compression]
level = 1
[drill]
jobs = 2
staging_dir = "$WORK"
[[checks.content_size]]
table = "public.journal_journalentry"
column = "content"
max_bytes = 1048576
[[checks.sql]]
name = "editorjs-shape"
query = "select id from journal_journalentry where jsonb_typeof(content) <> 'object' or not content ? 'blocks'"
TOML

measure() { /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err" "$WORK/out" >&2; return 1; }; cat "$WORK/time"; }

ID=$("$PGBACKD" backup --config "$WORK/pgbackd.toml")
DUMP=$WORK/dump.custom
gunzip -c "$WORK/repo/bench/backups/$ID/$DB.dump.gz" >"$DUMP"

psql -qXd postgres -c "drop database if exists bench_pg_restore" -c "create database bench_pg_restore template template0"
read -r base_wall base_rss < <(measure "$BIN/pg_restore" -j 2 --no-owner --no-privileges -d bench_pg_restore "$DUMP")
psql -qXd postgres -c "drop database bench_pg_restore"
rm -f "$DUMP"

read -r wall rss < <(measure "$PGBACKD" drill "$ID" --json --config "$WORK/pgbackd.toml")
python3 - "$WORK/out" "$base_wall" "$wall" "$rss" "$(psql -XAtc "select pg_size_pretty(pg_database_size('$DB'))")" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
base, wall, rss, size = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
db = report["databases"][0]
print(f"database {db['name']} ({size}), drill {'passed' if report['passed'] else 'FAILED'}")
print()
print("| step | seconds |")
print("| --- | --- |")
print(f"| pg_restore -j 2 of the same dump (baseline) | {base:.1f} |")
print(f"| pgbackd drill: verify + stage + pg_restore -j 2 | {db['restore_seconds']:.1f} |")
print(f"| pgbackd drill: all checks | {db['check_seconds']:.1f} |")
print(f"| pgbackd drill: total wall | {wall:.1f} ({wall / base:.2f}× baseline) |")
print(f"| pgbackd drill: peak RSS | {rss / 1024:.0f} MiB |")
PY
