#!/usr/bin/env bash
# Benchmark: WAL archiving under a pgbench write load, on a throw-away cluster of its own.
#
#   scripts/services.sh start && source .services/env   # PostgreSQL binaries and moto (S3)
#   bench/wal/run.sh [SEGMENTS]                          # default 300
#
# 1. wal-push latency (spool mode). A fresh cluster (initdb, archive_mode = on) runs pgbench
#    (tpcb-like) and a second pgbench client that bulk-writes rows, so PostgreSQL fills real
#    16 MiB segments quickly. Its archive_command is bench/wal/archive-timed.sh, which times the
#    `pgbackd wal-push --config … %p` it runs, exactly as the archiver starts it (as the cluster
#    owner, on the segment in pg_wal), and logs each push. The watcher is not running, so the
#    spool fills up: SEGMENTS pushes, then median, p90, p99, max in ms.
# 2. Watcher throughput. The bulk writer stops, pgbench tpcb-like goes on, and
#    `pgbackd wal-watch --once` ships the spool (SEGMENTS segments and whatever the archiver adds
#    meanwhile) to S3 (the moto of scripts/services.sh): segments/s, raw MB/s, stored MB, peak
#    RSS, and moto's own CPU-seconds (it runs on the same cores).
#
# Settings (environment): PGBACKD_BENCH_WAL_CLIENTS (pgbench clients, default 4),
# PGBACKD_BENCH_WAL_SCALE (pgbench scale, default 20), PGBACKD_BENCH_WAL_FILL_ROWS (rows per
# bulk-write transaction, default 20000, ≈3 MB of WAL; 0 = no bulk writer: then the pgbench
# load alone has to produce SEGMENTS segments), PGBACKD_BENCH_WAL_UPLOADS (wal.parallel_uploads,
# default 4), PGBACKD_BENCH_WAL_REFERENCE (1, the default: after each push, time `dd conv=fsync`
# of the same segment as a reference for the copy and fsync alone; 0 = off), PGBACKD_BENCH_BIN
# (use this pgbackd binary instead of building one).
#
# Builds pgbackd in release mode into .build-bench. Prints markdown tables. moto keeps every
# object in memory: this script deletes the objects it shipped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
SEGMENTS=${1:-300}
[[ $SEGMENTS =~ ^[0-9]+$ ]] && ((SEGMENTS >= 10)) || { echo "usage: bench/wal/run.sh [SEGMENTS ≥ 10]" >&2; exit 64; }
CLIENTS=${PGBACKD_BENCH_WAL_CLIENTS:-4}
SCALE=${PGBACKD_BENCH_WAL_SCALE:-20}
FILL_ROWS=${PGBACKD_BENCH_WAL_FILL_ROWS:-20000}
UPLOADS=${PGBACKD_BENCH_WAL_UPLOADS:-4}
: "${PGBACKD_TEST_PGBIN:?source .services/env first}"
: "${PGBACKD_TEST_S3_ENDPOINT:?no S3 in the env file: scripts/services.sh start s3}"
command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
BIN=$PGBACKD_TEST_PGBIN

if [[ -n ${PGBACKD_BENCH_BIN:-} ]]; then
    BUILT=$PGBACKD_BENCH_BIN
else
    swift build -c release --product pgbackd --scratch-path .build-bench >/dev/null
    BUILT=$PWD/.build-bench/release/pgbackd
fi

# Everything below /tmp, traversable by the cluster owner (the archiver runs wal-push as it).
WORK=$(mktemp -d /tmp/pgbackd-wal-bench.XXXXXX)
chmod 0755 "$WORK"
PIDS=()
cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -f $WORK/data/postmaster.pid ]]; then
        as_pg "$BIN/pg_ctl" -D "$WORK/data" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
    fi
    [[ -f $WORK/shipped.keys ]] && delete_objects "$WORK/shipped.keys" || true
    if ((rc)); then
        echo "bench/wal: failed (exit $rc); postgres log tail:" >&2
        tail -n 15 "$WORK/postgres.log" >&2 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_pg() { # the cluster owner runs initdb, pg_ctl and hence the archiver
    if [[ $(id -u) -eq 0 ]]; then (cd "$WORK" && runuser -u postgres -- "$@"); else "$@"; fi
}
owner() { [[ $(id -u) -ne 0 ]] || chown -R postgres:postgres "$@"; }
sql() { "$BIN/psql" -h "$WORK/socket" -p 5432 -U postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
moto_cpu() { # utime+stime of moto in seconds, if it is ours to see
    local pid
    pid=$(head -n1 "${PGBACKD_SERVICES_DIR:-.services}/moto.pid" 2>/dev/null) && [[ -r /proc/$pid/stat ]] || { echo 0; return; }
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.1f", ($14 + $15) / hz }' "/proc/$pid/stat"
}
delete_objects() { # keys file: drops what we shipped, so moto does not keep it in memory
    AWS_ACCESS_KEY_ID=$PGBACKD_TEST_S3_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$PGBACKD_TEST_S3_SECRET_ACCESS_KEY \
        python3 - "$1" <<'PY' || echo "bench/wal: could not delete the shipped objects from moto (restart it)" >&2
import os, sys, boto3
keys = [l.strip() for l in open(sys.argv[1]) if l.strip()]
if not keys:
    sys.exit(0)
s3 = boto3.client("s3", endpoint_url=os.environ["PGBACKD_TEST_S3_ENDPOINT"], region_name=os.environ["PGBACKD_TEST_S3_REGION"])
for i in range(0, len(keys), 1000):
    s3.delete_objects(Bucket=os.environ["PGBACKD_TEST_S3_BUCKET"], Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]], "Quiet": True})
PY
}

# ---------------------------------------------------------------- cluster and pgbackd

mkdir -m 0755 "$WORK/socket" "$WORK/bin"
mkdir -m 0700 "$WORK/data" "$WORK/spool" "$WORK/log"
# A copy the cluster owner can execute: the build directory may sit below a 0700 directory.
install -m 0755 "$BUILT" "$WORK/bin/pgbackd"
install -m 0755 bench/wal/archive-timed.sh "$WORK/bin/archive-timed.sh"
PREFIX=bench-wal-$(date +%s)-$$
printf '%s' "$PGBACKD_TEST_S3_SECRET_ACCESS_KEY" >"$WORK/secret"
chmod 0600 "$WORK/secret"
cat >"$WORK/pgbackd.toml" <<TOML
# written by bench/wal/run.sh
[repository]
type = "s3"
stanza = "bench"
[repository.s3]
endpoint = "$PGBACKD_TEST_S3_ENDPOINT"
bucket = "$PGBACKD_TEST_S3_BUCKET"
region = "$PGBACKD_TEST_S3_REGION"
prefix = "$PREFIX"
access_key_id = "$PGBACKD_TEST_S3_ACCESS_KEY_ID"
secret_access_key_file = "$WORK/secret"
[wal]
mode = "spool"
spool_dir = "$WORK/spool"
max_spool_mib = $(((SEGMENTS + 200) * 16))
parallel_uploads = $UPLOADS
TOML
chmod 0644 "$WORK/pgbackd.toml"
owner "$WORK"

as_pg "$BIN/initdb" -D "$WORK/data" -U postgres -E UTF8 --locale=C --auth=trust -k -N >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; exit 1; }
# The settings of scripts/services.sh's cluster, plus archiving. Until the load is set up the
# archiver throws segments away; then it times wal-push.
cat >>"$WORK/data/postgresql.conf" <<EOF
listen_addresses = ''
port = 5432
unix_socket_directories = '$WORK/socket'
wal_level = replica
synchronous_commit = off
max_wal_size = 4GB
shared_buffers = 256MB
maintenance_work_mem = 512MB
archive_mode = on
archive_command = '/bin/true'
EOF
as_pg "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 start >/dev/null

sql -d postgres -c "create database bench_pgbench" -c "create database bench_walfill"
"$BIN/pgbench" -h "$WORK/socket" -p 5432 -U postgres -i -q -s "$SCALE" bench_pgbench >"$WORK/pgbench-init.log" 2>&1 ||
    { cat "$WORK/pgbench-init.log" >&2; exit 1; }
sql -d bench_walfill -c "create table wal_fill (id int, payload text)"
cat >"$WORK/fill.sql" <<SQL
begin;
truncate wal_fill;
insert into wal_fill select g, md5(random()::text) || md5(random()::text) from generate_series(1, $FILL_ROWS) g;
commit;
SQL
sql -d postgres -c "checkpoint" -c "select pg_switch_wal()" >/dev/null

# ---------------------------------------------------------------- 1. wal-push latency under load

PUSHLOG=$WORK/log/push.log
REF=
if [[ ${PGBACKD_BENCH_WAL_REFERENCE:-1} == 1 ]]; then REF=$WORK/ref; mkdir -m 0700 "$REF"; owner "$REF"; fi
sql -d postgres -c "alter system set archive_command = '$WORK/bin/archive-timed.sh $WORK/bin/pgbackd $WORK/pgbackd.toml $PUSHLOG %p $REF'" \
    -c "select pg_reload_conf()" >/dev/null
sql -d postgres -c "select pg_stat_reset_shared('archiver')" >/dev/null

commits() { sql -d bench_pgbench -c "select xact_commit from pg_stat_database where datname = current_database()"; }
c0=$(commits) t0=$EPOCHREALTIME
"$BIN/pgbench" -h "$WORK/socket" -p 5432 -U postgres -n -c "$CLIENTS" -j $((CLIENTS < 2 ? CLIENTS : 2)) -T 86400 bench_pgbench >"$WORK/pgbench.log" 2>&1 &
PIDS+=($!)
if ((FILL_ROWS > 0)); then
    "$BIN/pgbench" -h "$WORK/socket" -p 5432 -U postgres -n -c 1 -T 86400 -f "$WORK/fill.sql" bench_walfill >"$WORK/fill.log" 2>&1 &
    FILL_PID=$!
    PIDS+=("$FILL_PID")
fi

pushed() { [[ -f $PUSHLOG ]] && wc -l <"$PUSHLOG" || echo 0; }
deadline=$((SECONDS + 3600))
while (($(pushed) < SEGMENTS)); do
    ((SECONDS < deadline)) || { echo "bench/wal: only $(pushed) of $SEGMENTS segments archived in an hour" >&2; exit 1; }
    if awk '$4 != 0 { bad = 1 } END { exit !bad }' "$PUSHLOG" 2>/dev/null; then
        echo "bench/wal: wal-push failed:" >&2; awk '$4 != 0' "$PUSHLOG" | head -n 3 >&2; exit 1
    fi
    sleep 1
done
t1=$EPOCHREALTIME c1=$(commits)
if [[ -n ${FILL_PID:-} ]]; then kill "$FILL_PID" 2>/dev/null || true; wait "$FILL_PID" 2>/dev/null || true; fi
load_tps=$(calc "($c1 - $c0) / ($t1 - $t0)")
phase1_s=$(calc "$t1 - $t0")

# ---------------------------------------------------------------- 2. watcher throughput under load

spooled=$(find "$WORK/spool" -maxdepth 1 -type f ! -name '.*' | wc -l)
c2=$(commits) m0=$(moto_cpu)
/usr/bin/time -f '%e %M' -o "$WORK/watch.time" "$WORK/bin/pgbackd" wal-watch --once --log-level info --config "$WORK/pgbackd.toml" \
    >"$WORK/watch.out" 2>"$WORK/watch.err" || { tail -n 20 "$WORK/watch.err" >&2; exit 1; }
m1=$(moto_cpu)
read -r watch_wall watch_rss <"$WORK/watch.time"
c3=$(commits)
watch_tps=$(calc "($c3 - $c2) / $watch_wall")
# Keys in the log are relative to the repository prefix.
grep -o 'wal.key=[^ ]*' "$WORK/watch.err" | cut -d= -f2- | sed "s|^|$PREFIX/|" >"$WORK/shipped.keys" || true
shipped=$(grep -o 'wal-watch: [0-9]* shipped' "$WORK/watch.err" | awk '{ print $2 }')
stored=$(grep -o 'wal.stored_bytes=[0-9]*' "$WORK/watch.err" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }')

# Stop the load and the cluster (the archiver does not touch S3 in spool mode).
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
PIDS=()
failed=$(sql -d postgres -c "select failed_count from pg_stat_archiver")
as_pg "$BIN/pg_ctl" -D "$WORK/data" -m fast -w -t 60 stop >/dev/null

# ---------------------------------------------------------------- report

echo "WAL archiving on $(nproc) cores: pgbench -c $CLIENTS (scale $SCALE, tpcb-like) plus a bulk writer of $FILL_ROWS rows/transaction; wal.parallel_uploads = $UPLOADS"
echo
python3 - "$PUSHLOG" "$SEGMENTS" "$phase1_s" "$load_tps" "$failed" <<'PY'
import math, sys
path, n, seconds, tps, failed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
rows = [l.split() for l in open(path)][:n]
def stats(pairs):
    ms = sorted((float(b) - float(a)) * 1000 for a, b in pairs)
    rank = lambda p: ms[max(0, math.ceil(p / 100 * len(ms)) - 1)]  # nearest-rank percentile
    return f"{len(ms)} | {rank(50):.1f} | {rank(90):.1f} | {rank(99):.1f} | {ms[-1]:.1f}"
print("| per 16 MiB segment, under load | pushes | median ms | p90 ms | p99 ms | max ms | load tps | WAL MB/s | archiver failures |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
print(f"| pgbackd wal-push (spool), as archive_command | {stats((r[1], r[2]) for r in rows)} | {tps:.0f} | {len(rows) * 16.777216 / seconds:.1f} | {failed} |")
ref = [r for r in rows if len(r) >= 6]
if ref:
    print(f"| reference: dd conv=fsync of the same segment, right after | {stats((r[4], r[5]) for r in ref)} | | | |")
PY
echo
echo "| watcher (wal-watch --once → S3) | segments | wall s | segments/s | raw MB/s | stored MB | raw/stored | peak RSS MiB | moto CPU s | load tps |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
printf '| spool of %s segments | %s | %s | %.1f | %.1f | %.0f | %.2f | %.0f | %.1f | %s |\n' "$spooled" "$shipped" "$watch_wall" \
    "$(calc "$shipped / $watch_wall")" "$(calc "$shipped * 16.777216 / $watch_wall")" "$(calc "$stored / 1000000")" \
    "$(calc "$shipped * 16777216 / ($stored + ($stored == 0))")" "$(calc "$watch_rss / 1024")" "$(calc "$m1 - $m0")" "$(printf %.0f "$watch_tps")"
