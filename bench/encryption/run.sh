#!/usr/bin/env bash
# Benchmark (issue #15): what client-side encryption ([encryption] key_file) costs a logical
# backup and a logical restore, against the same operation without encryption, on the same
# database, machine and release build. The bound: at most 5 % more wall time.
#
#   scripts/services.sh start && source .services/env
#   bench/daylog/generate.sh 200000 daylog_bench
#   bench/encryption/run.sh daylog_bench [RUNS]    # RUNS pairs, default 4 (even: each order
#                                                   # as often)
#
#   PGBACKD_BENCH_S3=1        also back up to S3 (moto) and restore from it, each way
#   PGBACKD_BENCH_LEVEL=N     compression level (default: the configuration's default)
#   PGBACKD_BENCH_BUILD=DIR   the SwiftPM scratch path (default .build-bench)
#
# Every run pairs an unencrypted and an encrypted operation, each into a fresh repository (a
# stanza records its key: one repository cannot be both), the order alternating from run to
# run (odd runs plain first, even runs encrypted first) so that a drift of the machine does not
# favour one side; an untimed backup first warms the page cache. A run is: backup (timed), restore of that backup into a new database with
# `pgbackd restore ID --database DB --target-db NEW --jobs 2` (timed; the target is dropped
# between runs, untimed). Prints one row per operation, then the ratio encrypted / plain per
# run and its min / median / max. CPU s is pgbackd's own user + system time (GNU time), which
# the other builders on a shared machine disturb less than wall time.
set -euo pipefail
cd "$(dirname "$0")/../.."
DB=${1:?usage: bench/encryption/run.sh DATABASE [RUNS]}
RUNS=${2:-4}
: "${PGBACKD_TEST_PGHOST:?source .services/env first}"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null

BUILD=${PGBACKD_BENCH_BUILD:-.build-bench}
swift build -c release --product pgbackd --scratch-path "$BUILD" >/dev/null
PGBACKD=$PWD/$BUILD/release/pgbackd
WORK=$(mktemp -d /var/tmp/pgbackd-enc-bench.XXXXXX)
TARGET=bench_enc_restore
export PGHOST=$PGBACKD_TEST_PGHOST PGPORT=$PGBACKD_TEST_PGPORT PGUSER=$PGBACKD_TEST_PGUSER
BIN=$PGBACKD_TEST_PGBIN
drop_target() { psql -qXd postgres -c 'set client_min_messages = warning' -c "drop database if exists $TARGET with (force)" >/dev/null; }
trap 'rm -rf "$WORK"; drop_target 2>/dev/null || true' EXIT

# Wall s, CPU s (user + system) and peak RSS KiB of a command, via GNU time.
measure() {
    /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err" "$WORK/out" >&2; return 1; }
    awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$WORK/time"
}
moto_cpu() { # utime+stime of moto in seconds
    local pid; pid=$(head -n1 "$PGBACKD_SERVICES_DIR/moto.pid")
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat"
}
# Every object of a repository (file: under its directory; s3: under its prefix) as "size key".
stored_objects_sized() { # kind name
    if [[ $1 == file ]]; then
        (cd "$WORK/$2" && find . -type f -printf '%s %P\n')
    else
        python3 - "$2" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["PGBACKD_TEST_S3_ENDPOINT"], region_name=os.environ["PGBACKD_TEST_S3_REGION"],
                  aws_access_key_id=os.environ["PGBACKD_TEST_S3_ACCESS_KEY_ID"], aws_secret_access_key=os.environ["PGBACKD_TEST_S3_SECRET_ACCESS_KEY"])
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=os.environ["PGBACKD_TEST_S3_BUCKET"], Prefix=sys.argv[1] + "/"):
    for o in page.get("Contents", []):
        print(o["Size"], o["Key"])
PY
    fi
}
stored_objects() { stored_objects_sized "$@" | cut -d' ' -f2-; }
stored_bytes() { stored_objects_sized "$@" | awk '{ s += $1 } END { print s + 0 }'; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }

[[ -n ${PGBACKD_TEST_S3_SECRET_ACCESS_KEY:-} ]] && printf '%s' "$PGBACKD_TEST_S3_SECRET_ACCESS_KEY" >"$WORK/secret"
"$PGBACKD" keygen --output "$WORK/key" >/dev/null
chmod 600 "$WORK/key"

config() { # kind(file|s3) encrypted(0|1) repository-name
    cat <<TOML
[repository]
$( if [[ $1 == s3 ]]; then cat <<S3
type = "s3"
stanza = "bench"
[repository.s3]
endpoint = "$PGBACKD_TEST_S3_ENDPOINT"
bucket = "$PGBACKD_TEST_S3_BUCKET"
region = "$PGBACKD_TEST_S3_REGION"
prefix = "$3"
access_key_id = "$PGBACKD_TEST_S3_ACCESS_KEY_ID"
secret_access_key_file = "$WORK/secret"
S3
else printf 'type = "file"\npath = "%s/%s"\nstanza = "bench"\n' "$WORK" "$3"; fi )
[postgres]
conninfo = "host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres"
databases = ["$DB"]
bin_dir = "$BIN"
[drill]
jobs = 2
staging_dir = "$WORK"
$( [[ -n ${PGBACKD_BENCH_LEVEL:-} ]] && printf '[compression]\nlevel = %s\n' "$PGBACKD_BENCH_LEVEL" )
$( (($2)) && printf '[encryption]\nkey_file = "%s"\n' "$WORK/key" )
TOML
}

KINDS=(file)
[[ ${PGBACKD_BENCH_S3:-0} == 1 ]] && KINDS+=(s3)
RESULTS=$WORK/results # run kind mode op wall cpu rss stored_bytes moto_cpu
: >"$RESULTS"

# One backup + restore; appends two lines to $RESULTS and prints two table rows.
one() { # run kind encrypted
    local run=$1 kind=$2 enc=$3 mode name conf id stored before moto wall cpu rss
    mode=$( ((enc)) && echo encrypted || echo plain )
    name=repo-$kind-$mode-$run-$RANDOM
    conf=$WORK/$name.toml
    config "$kind" "$enc" "$name" >"$conf"
    before=$([[ $kind == s3 ]] && moto_cpu || echo 0)
    read -r wall cpu rss < <(measure "$PGBACKD" backup --json --config "$conf")
    moto=$([[ $kind == s3 ]] && calc "$(moto_cpu) - $before" || echo "")
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["backup_id"])' "$WORK/out")
    stored=$(stored_bytes "$kind" "$name")
    # Sanity: an encrypted repository holds .enc objects only where a plain one holds none.
    encs=$(stored_objects "$kind" "$name" | grep -c '\.enc$' || true)
    if { ((enc)) && ((encs == 0)); } || { ((!enc)) && ((encs > 0)); }; then
        echo "run.sh: $mode repository $name holds $encs .enc objects" >&2; exit 1
    fi
    echo "$run $kind $mode backup $wall $cpu $rss $stored ${moto:-0}" >>"$RESULTS"
    printf '| %s | %s | %s | backup | %s | %s | %.0f | %.2f | %s |\n' "$run" "$kind" "$mode" "$wall" "$cpu" "$(calc "$rss/1024")" "$(calc "$stored/1000000")" "$moto"

    drop_target
    before=$([[ $kind == s3 ]] && moto_cpu || echo 0)
    read -r wall cpu rss < <(measure "$PGBACKD" restore "$id" --database "$DB" --target-db "$TARGET" --jobs 2 --config "$conf")
    moto=$([[ $kind == s3 ]] && calc "$(moto_cpu) - $before" || echo "")
    drop_target
    echo "$run $kind $mode restore $wall $cpu $rss $stored ${moto:-0}" >>"$RESULTS"
    printf '| %s | %s | %s | restore | %s | %s | %.0f | | %s |\n' "$run" "$kind" "$mode" "$wall" "$cpu" "$(calc "$rss/1024")" "$moto"
    [[ $kind == file ]] && rm -rf "${WORK:?}/$name"
    return 0
}

echo "database $DB: $(psql -XAtc "select pg_size_pretty(pg_database_size('$DB'))"), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), PostgreSQL $(psql -XAtc 'show server_version'), pgbackd $("$PGBACKD" --version 2>/dev/null) ($(git rev-parse --short HEAD))"
# Warm-up, untimed: the database into the page cache, the binary and libraries loaded.
config file 0 warmup >"$WORK/warmup.toml"
"$PGBACKD" backup --config "$WORK/warmup.toml" >"$WORK/out" 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
rm -rf "${WORK:?}/warmup"

echo
echo "| run | repository | mode | operation | wall s | CPU s | peak RSS MiB | stored MB | moto CPU s |"
echo "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"
for ((run = 1; run <= RUNS; run++)); do
    for kind in "${KINDS[@]}"; do
        if ((run % 2)); then one "$run" "$kind" 0; one "$run" "$kind" 1; else one "$run" "$kind" 1; one "$run" "$kind" 0; fi
    done
done

echo
python3 - "$RESULTS" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
val = {(r[0], r[1], r[2], r[3]): r for r in rows}
print("| repository | operation | wall plain s (median) | wall encrypted s (median) | ratio min | ratio median | ratio max | CPU ratio median | stored plain MB | stored encrypted MB |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for kind in dict.fromkeys(r[1] for r in rows):
    for op in ("backup", "restore"):
        runs = sorted({r[0] for r in rows if r[1] == kind and r[3] == op}, key=int)
        p = [val[(n, kind, "plain", op)] for n in runs]
        e = [val[(n, kind, "encrypted", op)] for n in runs]
        ratios = [float(b[4]) / float(a[4]) for a, b in zip(p, e)]
        cpu = [float(b[5]) / float(a[5]) for a, b in zip(p, e)]
        med = lambda xs: statistics.median(float(x) for x in xs)
        print(f"| {kind} | {op} | {med(a[4] for a in p):.2f} | {med(b[4] for b in e):.2f} | {min(ratios):.3f} | {statistics.median(ratios):.3f} | {max(ratios):.3f} | {statistics.median(cpu):.3f} | {med(a[7] for a in p) / 1e6:.2f} | {med(b[7] for b in e) / 1e6:.2f} |")
PY
