#!/usr/bin/env bash
# Benchmark: `pgbackd backup` against `pg_dump -Fc > file` on the same database at the same zlib
# level: wall time, stored size, peak RSS. Optionally the same backup to S3 (moto), reported with
# moto's own CPU-seconds, since moto runs on the same two cores.
#
#   scripts/services.sh start && source .services/env
#   bench/daylog/generate.sh 1000000 daylog_bench
#   bench/backup/run.sh daylog_bench 6 1          # levels to compare; PGBACKD_BENCH_S3=1 adds S3 runs
#
# Builds pgbackd in release mode into .build-bench. Prints one markdown table row per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
DB=${1:?usage: bench/backup/run.sh DATABASE [LEVEL...]}
shift
LEVELS=("${@:-6}")
: "${PGBACKD_TEST_PGHOST:?source .services/env first}"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

swift build -c release --product pgbackd --scratch-path .build-bench >/dev/null
PGBACKD=$PWD/.build-bench/release/pgbackd
WORK=$(mktemp -d /tmp/pgbackd-bench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export PGHOST=$PGBACKD_TEST_PGHOST PGPORT=$PGBACKD_TEST_PGPORT PGUSER=$PGBACKD_TEST_PGUSER
BIN=$PGBACKD_TEST_PGBIN

# Seconds (wall) and peak RSS (KiB) of a command, via GNU time.
measure() { /usr/bin/time -f '%e %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err" >&2; return 1; }; cat "$WORK/time"; }
moto_cpu() { # utime+stime of moto in seconds
    local pid; pid=$(head -n1 "$PGBACKD_SERVICES_DIR/moto.pid")
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat"
}
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
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

echo "database $DB: $(psql -XAtc "select pg_size_pretty(pg_database_size('$DB'))") on $(nproc) cores"
echo
echo "| level | tool | wall s | ratio | stored MB | peak RSS MiB | moto CPU s |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for level in "${LEVELS[@]}"; do
    read -r pg_wall pg_rss < <(measure "$BIN/pg_dump" -Fc -Z "$level" -f "$WORK/pg_dump.out" "$DB")
    pg_size=$(stat -c %s "$WORK/pg_dump.out"); rm -f "$WORK/pg_dump.out"
    printf '| %s | pg_dump -Fc -Z%s > file | %s | 1.00 | %.0f | %.0f | |\n' "$level" "$level" "$pg_wall" "$(calc "$pg_size/1000000")" "$(calc "$pg_rss/1024")"

    config "$level" file >"$WORK/file.toml"
    read -r wall rss < <(measure "$PGBACKD" backup --config "$WORK/file.toml")
    size=$(du -sb "$WORK/repo" | cut -f1); rm -rf "$WORK/repo"
    printf '| %s | pgbackd → file | %s | %.2f | %.0f | %.0f | |\n' "$level" "$wall" "$(calc "$wall/$pg_wall")" "$(calc "$size/1000000")" "$(calc "$rss/1024")"

    if [[ ${PGBACKD_BENCH_S3:-0} == 1 ]]; then
        config "$level" s3 >"$WORK/s3.toml"
        before=$(moto_cpu)
        read -r wall rss < <(measure "$PGBACKD" backup --json --config "$WORK/s3.toml")
        stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stored_bytes"])' "$WORK/out")
        printf '| %s | pgbackd → S3 (moto) | %s | %.2f | %.0f | %.0f | %.1f |\n' "$level" "$wall" "$(calc "$wall/$pg_wall")" "$(calc "$stored/1000000")" "$(calc "$rss/1024")" "$(calc "$(moto_cpu) - $before")"
    fi
done
