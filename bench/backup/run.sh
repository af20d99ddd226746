#!/usr/bin/env bash
# Benchmark: `pgbackd backup` (logical, to a file repository) against `pg_dump -Fc -Z<level> -f file`
# on the same database, and against the CPU floor measured in the same run.
#
#   scripts/services.sh start && source .services/env
#   bench/daylog/generate.sh 1000000 daylog_bench
#   bench/backup/run.sh [DATABASE]              # default daylog_bench
#
# Settings (environment):
#   PGBACKD_BENCH_RUNS=3        runs; the tool order alternates (odd runs: pg_dump first)
#   PGBACKD_BENCH_LEVELS="1"    compression levels to compare ("1 6" adds level 6)
#   PGBACKD_BENCH_S3=1          adds a pgbackd → S3 backup per run (moto, with moto's CPU-s)
#   PGBACKD_BENCH_BIN=path      a pgbackd binary to use instead of building one (bench/lib.sh)
#
# The floor, measured once per level before the runs:
#   - the PostgreSQL server's CPU-s during `pg_dump -Fc -Z0 -f raw` (every process of the
#     cluster, the reaped backend included: the postmaster's cutime + cstime grow by it),
#   - that pg_dump's own CPU-s (it is the child pgbackd runs: parsing COPY, writing the pipe),
#   - the compressor's CPU-s on those raw bytes: libdeflate gzip members of 4 MiB at the level,
#     one thread (deflate-floor.c, compiled here with cc -ldeflate),
#   floor = (server + pg_dump + compressor) / cores. A single backend cannot use two cores, so
#   the server's CPU-s alone are a second lower bound on wall time; both are printed.
# Per run it records (bench_record) wall ratio to pg_dump, wall / floor, pgbackd's CPU-s (its
# processes and children: pg_dump, pg_dumpall), the server's CPU-s during the backup, peak RSS of
# the largest process and of all processes, and the memory bound the settings imply.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
DB=${1:-daylog_bench}
RUNS=${PGBACKD_BENCH_RUNS:-3}
read -r -a LEVELS <<<"${PGBACKD_BENCH_LEVELS:-1}"
bench_pg_env
bench_build
BIN=$PGBACKD_TEST_PGBIN
CORES=$(nproc)
WORK=$(mktemp -d /tmp/pgbackd-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
command -v cc >/dev/null || apt-get install -y -qq gcc >/dev/null
[[ -e /usr/include/libdeflate.h ]] || apt-get install -y -qq libdeflate-dev >/dev/null
cc -O2 -o "$WORK/deflate-floor" bench/backup/deflate-floor.c -ldeflate

calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
moto_cpu() { # utime+stime of moto in seconds
    local pid; pid=$(head -n1 "$PGBACKD_SERVICES_DIR/moto.pid")
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat"
}
POSTMASTER=$(head -n1 "$(psql -XAtc 'show data_directory')/postmaster.pid")
server_cpu() { # CPU-s of the cluster so far: the postmaster, its live descendants, and those reaped
    python3 - "$POSTMASTER" <<'PY'
import os, sys
root, hz = sys.argv[1], os.sysconf("SC_CLK_TCK")
stats, kids = {}, {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[p] = fields
        kids.setdefault(fields[1], []).append(p)
total = int(stats[root][13]) + int(stats[root][14])  # cutime + cstime: reaped backends
todo = [root]
while todo:
    p = todo.pop()
    todo += kids.get(p, [])
    total += int(stats[p][11]) + int(stats[p][12])  # utime + stime
print(f"{total / hz:.2f}")
PY
}
config() { # level repository-kind
    cat <<TOML
[repository]
$( if [[ $2 == s3 ]]; then cat <<S3
type = "s3"
stanza = "bench"
[repository.s3]
endpoint = "$PGBACKD_TEST_S3_ENDPOINT"
bucket = "$PGBACKD_TEST_S3_BUCKET"
region = "$PGBACKD_TEST_S3_REGION"
prefix = "bench-$RANDOM"
access_key_id = "$PGBACKD_TEST_S3_ACCESS_KEY_ID"
secret_access_key_file = "$WORK/secret"
S3
else printf 'type = "file"\npath = "%s/repo"\nstanza = "bench"\n' "$WORK"; fi )
[postgres]
conninfo = "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres"
databases = ["$DB"]
bin_dir = "$BIN"
[compression]
level = $1
TOML
}
[[ -n ${PGBACKD_TEST_S3_SECRET_ACCESS_KEY:-} ]] && printf '%s' "$PGBACKD_TEST_S3_SECRET_ACCESS_KEY" >"$WORK/secret"

size=$(psql -XAtc "select pg_size_pretty(pg_database_size('$DB'))")
echo "database $DB: $size on $CORES cores; $("$BIN/pg_dump" --version); pgbackd $("$PGBACKD" --version 2>/dev/null || echo '?')"
bench_note "logical backup: database $DB ($size), $CORES cores, $("$BIN/pg_dump" --version)"

# pgbackd's memory bound at its defaults (libdeflate, 4 MiB blocks, a worker per core).
BOUND_MIB=$(bench_memory_bound engine=libdeflate workers="$CORES")

# The floor's parts, once per level, from a warm page cache: a first, untimed dump warms it (on
# 2026-12-08 a cold first dump cost the server 28 CPU-s against 17-22 in the runs after it, a
# floor above what pgbackd then took).
"$BIN/pg_dump" -Fc -Z0 "$DB" >/dev/null
declare -A FLOOR BACKEND
before=$(server_cpu)
read -r raw_wall _ raw_cpu _ < <(bench_measure "$WORK" "$BIN/pg_dump" -Fc -Z0 -f "$WORK/raw.dump" "$DB")
raw_server=$(calc "$(server_cpu) - $before")
raw_bytes=$(stat -c %s "$WORK/raw.dump")
echo "raw dump (pg_dump -Fc -Z0 -f file): $(calc "$raw_bytes/1000000") MB in $raw_wall s; server $raw_server CPU-s, pg_dump $raw_cpu CPU-s"
for level in "${LEVELS[@]}"; do
    read -r deflate_cpu _ deflate_out < <("$WORK/deflate-floor" "$level" $((4 << 20)) "$WORK/raw.dump")
    FLOOR[$level]=$(calc "($raw_server + $raw_cpu + $deflate_cpu) / $CORES")
    BACKEND[$level]=$raw_server
    echo "level $level floor: (server $raw_server + pg_dump -Z0 $raw_cpu + libdeflate $deflate_cpu CPU-s) / $CORES cores = ${FLOOR[$level]} s; single backend: $raw_server s; libdeflate stores $(calc "$deflate_out/1000000") MB"
    bench_note "logical backup, level $level: CPU floor ${FLOOR[$level]} s = (server $raw_server + pg_dump -Z0 $raw_cpu + libdeflate-$level in 4 MiB blocks $deflate_cpu CPU-s) / $CORES cores; the one backend alone needs $raw_server CPU-s; raw dump $(calc "$raw_bytes/1000000") MB"
done
rm -f "$WORK/raw.dump"
echo
echo "| run | level | tool | wall s | ratio | wall / floor | CPU s | server CPU s | stored MB | peak RSS MiB (largest / all) | moto CPU s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"

for ((run = 1; run <= RUNS; run++)); do
    for level in "${LEVELS[@]}"; do
        comparison="logical backup → file, level $level"
        pg_dump_run() {
            local before; before=$(server_cpu)
            read -r pg_wall pg_rss pg_cpu _ < <(bench_measure "$WORK" "$BIN/pg_dump" -Fc -Z "$level" -f "$WORK/pg_dump.out" "$DB")
            pg_server=$(calc "$(server_cpu) - $before")
            pg_size=$(stat -c %s "$WORK/pg_dump.out"); rm -f "$WORK/pg_dump.out"
        }
        pgbackd_run() {
            config "$level" file >"$WORK/file.toml"
            local before; before=$(server_cpu)
            read -r wall rss cpu tree < <(bench_measure "$WORK" "$PGBACKD" backup --config "$WORK/file.toml")
            server=$(calc "$(server_cpu) - $before")
            stored=$(du -sb "$WORK/repo" | cut -f1); rm -rf "$WORK/repo"
        }
        if ((run % 2)); then pg_dump_run; pgbackd_run; else pgbackd_run; pg_dump_run; fi
        ratio=$(calc "$wall / $pg_wall")
        over_floor=$(calc "$wall / ${FLOOR[$level]}")
        printf '| %s | %s | pg_dump -Fc -Z%s > file | %s | 1.00 | %s | %s | %s | %.0f | %.0f | |\n' "$run" "$level" "$level" "$pg_wall" \
            "$(calc "$pg_wall / ${FLOOR[$level]}")" "$pg_cpu" "$pg_server" "$(calc "$pg_size/1000000")" "$(calc "$pg_rss/1024")"
        printf '| %s | %s | pgbackd → file | %s | %s | %s | %s | %s | %.0f | %.0f / %.0f | |\n' "$run" "$level" "$wall" "$ratio" "$over_floor" \
            "$cpu" "$server" "$(calc "$stored/1000000")" "$(calc "$rss/1024")" "$(calc "$tree/1024")"
        target_ratio="" target_floor=""
        [[ $level == 1 ]] && target_ratio="<=0.6" target_floor="<=1.15"
        bench_record "$comparison" "wall ratio pgbackd / pg_dump -Fc -Z$level" "$ratio" "$target_ratio"
        bench_record "$comparison" "wall / CPU floor" "$over_floor" "$target_floor"
        bench_record "$comparison" "pgbackd wall" "$wall" "" s
        bench_record "$comparison" "pg_dump -Fc -Z$level wall" "$pg_wall" "" s
        bench_record "$comparison" "CPU floor" "${FLOOR[$level]}" "" s
        bench_record "$comparison" "pgbackd CPU-s (with pg_dump -Z0)" "$cpu" "" s
        bench_record "$comparison" "server CPU-s during pgbackd" "$server" "" s
        bench_record "$comparison" "peak RSS, largest process" "$(calc "$rss/1024")" "<=150" MiB
        bench_record "$comparison" "peak RSS, all processes" "$(calc "$tree/1024")" "<=200" MiB
        bench_record "$comparison" "memory bound implied by the settings" "$BOUND_MIB" "" MiB
        bench_record "$comparison" "stored size pgbackd / pg_dump" "$(calc "$stored / $pg_size")" ""

        if [[ ${PGBACKD_BENCH_S3:-0} == 1 ]]; then
            config "$level" s3 >"$WORK/s3.toml"
            moto_before=$(moto_cpu)
            read -r wall rss cpu tree < <(bench_measure "$WORK" "$PGBACKD" backup --json --config "$WORK/s3.toml")
            moto=$(calc "$(moto_cpu) - $moto_before")
            stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stored_bytes"])' "$WORK/out")
            printf '| %s | %s | pgbackd → S3 (moto) | %s | %s | %s | %s | | %.0f | %.0f / %.0f | %s |\n' "$run" "$level" "$wall" "$(calc "$wall/$pg_wall")" \
                "$(calc "$wall / ${FLOOR[$level]}")" "$cpu" "$(calc "$stored/1000000")" "$(calc "$rss/1024")" "$(calc "$tree/1024")" "$moto"
            comparison="logical backup → S3, level $level"
            bench_record "$comparison" "wall ratio pgbackd / pg_dump -Fc -Z$level" "$(calc "$wall/$pg_wall")" ""
            bench_record "$comparison" "moto CPU-s" "$moto" "" s
            bench_record "$comparison" "peak RSS, largest process" "$(calc "$rss/1024")" "<=150" MiB
            bench_record "$comparison" "peak RSS, all processes" "$(calc "$tree/1024")" "<=200" MiB
        fi
    done
done
