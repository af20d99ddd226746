#!/usr/bin/env bash
# Benchmark: `pgbackd drill` (verify + stage + restore + every check) against a plain
# `pg_restore -j 2` of the same dump into an empty database, on the same machine.
#
#   scripts/services.sh start && source .services/env
#   bench/daylog/generate.sh 1000000 daylog_1m
#   bench/drill/run.sh daylog_1m            # PGBACKD_BENCH_RUNS=3 by default
#
# Takes one level-1 backup into a temporary file repository, gunzips its dump once (timed, for
# the note) and then, PGBACKD_BENCH_RUNS times, alternating which goes first:
#   - the reference: `pg_restore -j 2 --no-owner --no-privileges` of the gunzipped dump into an
#     empty database. Its time does not include the gunzip: the reference reads a custom-format
#     file as `pg_dump -Fc` leaves it on disk, as docs/benchmarks.md § Drill measured before
#     (1.20–1.21×), while the drill reads the artifact from the repository, verifies it and
#     decompresses it to staging inside its own time. The note gives the gunzip's time too;
#   - `pgbackd drill ID --json`.
# Records per run (bench/run's table): the wall ratio drill / pg_restore, and the drill's peak RSS
# (largest process, all processes). Prints a markdown table per run, with the drill's phases.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
DB=${1:?usage: bench/drill/run.sh DATABASE}
RUNS=${PGBACKD_BENCH_RUNS:-3}
bench_pg_env
bench_build
BIN=$PGBACKD_TEST_PGBIN
WORK=$(mktemp -d /var/tmp/pgbackd-drill-bench.XXXXXX)
trap 'rm -rf "$WORK"; psql -qXd postgres -c "drop database if exists bench_pg_restore" >/dev/null 2>&1 || true' EXIT

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

ID=$("$PGBACKD" backup --config "$WORK/pgbackd.toml")
DUMP=$WORK/dump.custom
mkdir -p "$WORK/m"
read -r gunzip_wall _ gunzip_cpu _ < <(bench_measure "$WORK/m" bash -c "gunzip -c '$WORK/repo/bench/backups/$ID/$DB.dump.gz' >'$DUMP'")
SIZE=$(psql -XAtc "select pg_size_pretty(pg_database_size('$DB'))")
COMPARISON="drill $DB"
bench_note "drill: $DB ($SIZE, dump $(du -m "$DUMP" | cut -f1) MiB raw); reference pg_restore -j 2 of the gunzipped dump (gunzip itself: ${gunzip_wall} s wall, ${gunzip_cpu} CPU-s, not in the reference); PostgreSQL $($BIN/pg_restore --version | awk '{print $3}'), $("$PGBACKD" --version 2>/dev/null || echo pgbackd)"

reference() {
    psql -qXd postgres -c "drop database if exists bench_pg_restore" -c "create database bench_pg_restore template template0"
    base_wall=
    read -r base_wall base_rss base_cpu _ < <(bench_measure "$WORK/m" "$BIN/pg_restore" -j 2 --no-owner --no-privileges -d bench_pg_restore "$DUMP")
    [[ -n ${base_wall:-} ]] || { echo "bench/drill: pg_restore failed:" >&2; cat "$WORK/m/err" >&2; exit 1; }
    psql -qXd postgres -c "drop database bench_pg_restore"
}

drill() {
    tree=
    read -r wall rss cpu tree < <(bench_measure "$WORK/m" "$PGBACKD" drill "$ID" --json --config "$WORK/pgbackd.toml")
    [[ -n ${tree:-} ]] || { echo "bench/drill: the drill failed:" >&2; cat "$WORK/m/err" "$WORK/m/out" >&2; exit 1; }
    cp "$WORK/m/out" "$WORK/report.json"
}

echo "database $DB ($SIZE), $RUNS run(s); reference: pg_restore -j 2 of the gunzipped dump (gunzip -c: $gunzip_wall s, not included)"
for ((run = 1; run <= RUNS; run++)); do
    if ((run % 2)); then order="pg_restore first"; reference; drill; else order="pgbackd first"; drill; reference; fi
    ratio=$(python3 -c "print(round($wall / $base_wall, 3))")
    bench_record "$COMPARISON" "wall ratio pgbackd drill / pg_restore -j2" "$ratio" "<=1.1"
    bench_record "$COMPARISON" "peak RSS, largest process" "$((rss / 1024))" "<=150" MiB
    bench_record "$COMPARISON" "peak RSS, all processes" "$((tree / 1024))" "<=200" MiB
    bench_record "$COMPARISON" "pg_restore -j2 wall" "$base_wall" "" s
    bench_record "$COMPARISON" "pgbackd drill wall" "$wall" "" s
    python3 - "$WORK/report.json" "$run" "$order" "$base_wall" "$base_cpu" "$wall" "$cpu" "$rss" "$tree" "$gunzip_wall" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
run, order = sys.argv[2], sys.argv[3]
base, base_cpu, wall, cpu, rss, tree, gunzip = (float(x) for x in sys.argv[4:11])
db = report["databases"][0]
print()
print(f"run {run} ({order}): drill {'passed' if report['passed'] else 'FAILED'}")
print()
print("| step | seconds |")
print("| --- | --- |")
print(f"| pg_restore -j 2 of the gunzipped dump (reference; client CPU {base_cpu:.1f} s) | {base:.1f} |")
print(f"| pgbackd drill: verify + stage + pg_restore -j 2 | {db['restore_seconds']:.1f} |")
print(f"| pgbackd drill: all checks | {db['check_seconds']:.1f} |")
print(f"| pgbackd drill: total wall (client CPU {cpu:.1f} s) | {wall:.1f} ({wall / base:.2f}× reference, {wall / (base + gunzip):.2f}× gunzip + reference) |")
print(f"| pgbackd drill: peak RSS, largest process / all processes | {rss / 1024:.0f} / {tree / 1024:.0f} MiB |")
for check in db["checks"]:
    print(f"| check {check['name']}: {'ok' if check['passed'] else 'FAILED'} | {check['summary']} |")
PY
done

# What the drill's lz4 TOAST (drill.toast_compression, default "lz4") is worth, once each
# (PGBACKD_BENCH_DRILL_VARIANTS=0 skips): the drill with the server's own TOAST compression,
# and the reference given lz4 as well. Reported, no target.
if [[ ${PGBACKD_BENCH_DRILL_VARIANTS:-1} == 1 ]]; then
    sed 's/^\[drill\]$/[drill]\ntoast_compression = "server"/' "$WORK/pgbackd.toml" >"$WORK/pgbackd-server-toast.toml"
    read -r server_wall _ < <(bench_measure "$WORK/m" "$PGBACKD" drill "$ID" --json --config "$WORK/pgbackd-server-toast.toml")
    [[ -n ${server_wall:-} ]] || { echo "bench/drill: the drill with toast_compression = server failed:" >&2; cat "$WORK/m/err" >&2; exit 1; }
    PGOPTIONS="-c default_toast_compression=lz4" reference
    lz4_reference=$base_wall
    reference
    bench_record "$COMPARISON" "drill with toast_compression = \"server\" (pglz) / pg_restore -j2" "$(python3 -c "print(round($server_wall / $base_wall, 3))")"
    bench_record "$COMPARISON" "pg_restore -j2 with lz4 TOAST / pg_restore -j2" "$(python3 -c "print(round($lz4_reference / $base_wall, 3))")"
    echo
    echo "| once more | seconds |"
    echo "| --- | --- |"
    echo "| pgbackd drill, toast_compression = \"server\" (the server's pglz) | $server_wall |"
    echo "| pg_restore -j 2, PGOPTIONS=\"-c default_toast_compression=lz4\" | $lz4_reference |"
    echo "| pg_restore -j 2 (reference, once more) | $base_wall |"
fi
