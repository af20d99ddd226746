#!/usr/bin/env bash
# Benchmark: WAL archiving under a pgbench write load, on a throw-away cluster of its own.
#
#   scripts/services.sh start && source .services/env   # PostgreSQL binaries and moto (S3)
#   bench/wal/run.sh [SEGMENTS]                          # per run; default 40 (p99 = the slowest of them)
#
# One cluster (initdb with data checksums, archive_mode = on) runs pgbench (tpcb-like) for the
# whole script. PGBACKD_BENCH_RUNS runs (default 3), each:
#
# 1. wal-push latency (spool mode) against pgBackRest. A second pgbench client bulk-writes rows,
#    so PostgreSQL fills real 16 MiB segments quickly. archive_command is
#    bench/wal/archive-timed.sh, which times, as the archiver runs them (as the cluster owner, on
#    the segment in pg_wal), `pgbackd wal-push --config … %p` and `pgbackrest archive-push %p`
#    with archive-async=y (its own spool, a local directory repository, gz level 1 like pgbackd's
#    default), one after the other, the order alternating between runs (run 1: pgBackRest
#    first); then `dd conv=fsync` of the same segment on the same disk, the floor of making it
#    durable. Until SEGMENTS segments are pushed; the pgbackd watcher is not running meanwhile,
#    so its spool fills. pgBackRest's async archiving compresses and stores its repository in a
#    background process it starts itself: part of its work is outside its timed span, as part
#    of pgbackd's is in the watcher.
# 2. Watcher. The bulk writer stops, pgbench tpcb-like goes on, and `pgbackd wal-watch --once`
#    ships the spool (SEGMENTS segments and whatever the archiver adds meanwhile) to S3 (the moto
#    of scripts/services.sh): segments/s, CPU-s per segment, peak RSS against the memory bound
#    the settings imply (wal-watch logs it), moto's own CPU-seconds (same cores).
#
# Results for bench/run (bench_record), per run: the medians and p99s of wal-push and of
# pgbackrest archive-push, each divided by dd's (p99 by dd's p99: both tails under the same
# load), absolute medians in ms, the watcher's peak RSS, bound and segments/s.
#
# Settings (environment): PGBACKD_BENCH_RUNS (default 3), PGBACKD_BENCH_WAL_CLIENTS (pgbench
# clients, default 4), PGBACKD_BENCH_WAL_SCALE (pgbench scale, default 20),
# PGBACKD_BENCH_WAL_FILL_ROWS (rows per bulk-write transaction, default 20000, ≈3 MB of WAL; 0 =
# no bulk writer), PGBACKD_BENCH_WAL_UPLOADS (wal.parallel_uploads, default 4, pgbackd's
# default), PGBACKD_BENCH_WAL_PGBACKREST (1, the default: time pgBackRest too; 0 = off),
# PGBACKD_BENCH_BIN (use this pgbackd binary instead of building one).
#
# Prints markdown tables. moto keeps every object in memory: this script deletes the objects it
# shipped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
SEGMENTS=${1:-40}
[[ $SEGMENTS =~ ^[0-9]+$ ]] && ((SEGMENTS >= 10)) || { echo "usage: bench/wal/run.sh [SEGMENTS ≥ 10]" >&2; exit 64; }
RUNS=${PGBACKD_BENCH_RUNS:-3}
CLIENTS=${PGBACKD_BENCH_WAL_CLIENTS:-4}
SCALE=${PGBACKD_BENCH_WAL_SCALE:-20}
FILL_ROWS=${PGBACKD_BENCH_WAL_FILL_ROWS:-20000}
UPLOADS=${PGBACKD_BENCH_WAL_UPLOADS:-4}
WITH_PGBR=${PGBACKD_BENCH_WAL_PGBACKREST:-1}
bench_pg_env
: "${PGBACKD_TEST_PGBIN:?source .services/env first}"
: "${PGBACKD_TEST_S3_ENDPOINT:?no S3 in the env file: scripts/services.sh start s3}"
missing=()
command -v /usr/bin/time >/dev/null || missing+=(time)
[[ $WITH_PGBR != 1 ]] || command -v pgbackrest >/dev/null || missing+=(pgbackrest)
if ((${#missing[@]})); then
    echo "bench/wal: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
BIN=$PGBACKD_TEST_PGBIN
bench_build

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

as_pg() { # the cluster owner runs initdb, pg_ctl, pgbackrest and hence the archiver
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

# ---------------------------------------------------------------- cluster, pgbackd, pgBackRest

mkdir -m 0755 "$WORK/socket" "$WORK/bin" "$WORK/pgbackrest" "$WORK/ref"
mkdir -m 0700 "$WORK/data" "$WORK/spool" "$WORK/log"
# A copy the cluster owner can execute: the build directory may sit below a 0700 directory.
install -m 0755 "$PGBACKD" "$WORK/bin/pgbackd"
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
max_spool_mib = $(((SEGMENTS + 300) * 16))
parallel_uploads = $UPLOADS
TOML
chmod 0644 "$WORK/pgbackd.toml"
PGBR_CONF=-
if [[ $WITH_PGBR == 1 ]]; then
    PGBR_CONF=$WORK/pgbackrest/pgbackrest.conf
    cat >"$PGBR_CONF" <<CONF
# written by bench/wal/run.sh: a local directory repository, asynchronous archiving
[global]
repo1-type=posix
repo1-path=$WORK/pgbackrest/repo
repo1-retention-full=1
archive-async=y
spool-path=$WORK/pgbackrest/spool
compress-type=gz
compress-level=1
log-path=$WORK/pgbackrest/log
lock-path=$WORK/pgbackrest/lock
log-level-console=warn
log-level-file=warn

[bench]
pg1-path=$WORK/data
pg1-socket-path=$WORK/socket
pg1-port=5432
CONF
fi
owner "$WORK"

as_pg "$BIN/initdb" -D "$WORK/data" -U postgres -E UTF8 --locale=C --auth=trust -k -N >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; exit 1; }
# The settings of scripts/services.sh's cluster, plus archiving. Until the load is set up the
# archiver throws segments away; then it times both tools.
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
if [[ $WITH_PGBR == 1 ]]; then
    as_pg pgbackrest --config="$PGBR_CONF" --stanza=bench stanza-create >"$WORK/stanza.log" 2>&1 || { cat "$WORK/stanza.log" >&2; exit 1; }
fi

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

commits() { sql -d bench_pgbench -c "select xact_commit from pg_stat_database where datname = current_database()"; }
"$BIN/pgbench" -h "$WORK/socket" -p 5432 -U postgres -n -c "$CLIENTS" -j $((CLIENTS < 2 ? CLIENTS : 2)) -T 86400 bench_pgbench >"$WORK/pgbench.log" 2>&1 &
PIDS+=($!)

pgbr_version=$([[ $WITH_PGBR == 1 ]] && pgbackrest version | awk '{ print $2 }' || echo "-")
bench_note "WAL archiving on $(nproc) cores: pgbench -c $CLIENTS (scale $SCALE, tpcb-like) plus a bulk writer of $FILL_ROWS rows/transaction, $SEGMENTS segments of 16 MiB per run; pgBackRest $pgbr_version archive-push --archive-async (gz 1, directory repository); wal.parallel_uploads = $UPLOADS; p99 ratios divide by dd's p99"
echo "WAL archiving on $(nproc) cores: pgbench -c $CLIENTS (scale $SCALE, tpcb-like) plus a bulk writer of $FILL_ROWS rows/transaction; pgBackRest $pgbr_version (archive-async, gz 1); wal.parallel_uploads = $UPLOADS; $RUNS runs of $SEGMENTS segments"
echo
PUSH_ROWS=$WORK/push.md WATCH_ROWS=$WORK/watch.md
: >"$PUSH_ROWS"
: >"$WATCH_ROWS"

for ((run = 1; run <= RUNS; run++)); do
    # ------------------------------------------------------------ 1. push latency under load
    order=$( ((run % 2)) && echo reference-first || echo pgbackd-first)
    PUSHLOG=$WORK/log/push-$run.log
    sql -d postgres -c "alter system set archive_command = '$WORK/bin/archive-timed.sh $PUSHLOG $order $WORK/bin/pgbackd $WORK/pgbackd.toml $PGBR_CONF $WORK/ref %p'" \
        -c "select pg_reload_conf()" >/dev/null
    sql -d postgres -c "select pg_stat_reset_shared('archiver')" >/dev/null
    c0=$(commits) t0=$EPOCHREALTIME
    FILL_PID=
    if ((FILL_ROWS > 0)); then
        "$BIN/pgbench" -h "$WORK/socket" -p 5432 -U postgres -n -c 1 -T 86400 -f "$WORK/fill.sql" bench_walfill >"$WORK/fill.log" 2>&1 &
        FILL_PID=$!
        PIDS+=("$FILL_PID")
    fi
    pushed() { [[ -f $PUSHLOG ]] && wc -l <"$PUSHLOG" || echo 0; }
    deadline=$((SECONDS + 1800))
    while (($(pushed) < SEGMENTS)); do
        ((SECONDS < deadline)) || { echo "bench/wal: only $(pushed) of $SEGMENTS segments archived in 30 minutes" >&2; exit 1; }
        if awk '$2 != 0 { bad = 1 } END { exit !bad }' "$PUSHLOG" 2>/dev/null; then
            echo "bench/wal: an archive_command failed:" >&2; awk '$2 != 0' "$PUSHLOG" | head -n 3 >&2; exit 1
        fi
        sleep 0.5
    done
    t1=$EPOCHREALTIME c1=$(commits)
    if [[ -n $FILL_PID ]]; then kill "$FILL_PID" 2>/dev/null || true; wait "$FILL_PID" 2>/dev/null || true; fi
    load_tps=$(calc "($c1 - $c0) / ($t1 - $t0)")
    failed=$(sql -d postgres -c "select failed_count from pg_stat_archiver")

    # One line per tool: "tool median p90 p99 max" (ms, nearest rank) of the first SEGMENTS pushes.
    python3 - "$PUSHLOG" "$SEGMENTS" >"$WORK/stats-$run" <<'PY'
import math, sys
rows = [l.split() for l in open(sys.argv[1])][:int(sys.argv[2])]
def stats(a, b):
    ms = sorted((float(r[b]) - float(r[a])) * 1000 for r in rows if r[a] != "-")
    if not ms:
        return None
    rank = lambda p: ms[max(0, math.ceil(p / 100 * len(ms)) - 1)]
    return len(ms), rank(50), rank(90), rank(99), ms[-1]
for tool, a, b in (("pgbackd", 2, 3), ("pgbackrest", 4, 5), ("dd", 6, 7), ("startup", 8, 9)):
    s = stats(a, b)
    if s:
        print(tool, *(f"{x:.1f}" if isinstance(x, float) else x for x in s))
PY
    read -r _ n_ours ours_med ours_p90 ours_p99 ours_max < <(grep '^pgbackd ' "$WORK/stats-$run")
    read -r _ n_dd dd_med dd_p90 dd_p99 dd_max < <(grep '^dd ' "$WORK/stats-$run")
    bench_record "WAL: wal-push (spool) as archive_command" "median / dd conv=fsync median" "$(calc "$ours_med / $dd_med")" "<=2"
    bench_record "WAL: wal-push (spool) as archive_command" "p99 / dd conv=fsync p99" "$(calc "$ours_p99 / $dd_p99")" "<=4"
    bench_record "WAL: wal-push (spool) as archive_command" "median" "$ours_med" "" ms
    bench_record "WAL: wal-push (spool) as archive_command" "p99" "$ours_p99" "" ms
    bench_record "WAL: dd conv=fsync of the segment (floor)" "median" "$dd_med" "" ms
    bench_record "WAL: dd conv=fsync of the segment (floor)" "p99" "$dd_p99" "" ms
    if grep -q '^startup ' "$WORK/stats-$run"; then
        # The executable's start-up alone, timed the same way: what is left is the push itself.
        read -r _ _ up_med _ up_p99 _ < <(grep '^startup ' "$WORK/stats-$run")
        bench_record "WAL: pgbackd --version under the same load (process start-up)" "median" "$up_med" "" ms
        bench_record "WAL: wal-push (spool) as archive_command" "(median - start-up median) / dd conv=fsync median" "$(calc "($ours_med - $up_med) / $dd_med")"
    fi
    printf '| %s | pgbackd wal-push (spool) | %s | %s | %s | %s | %s | %.2f | %.2f | %s | %s |\n' "$run" "$n_ours" "$ours_med" "$ours_p90" "$ours_p99" "$ours_max" \
        "$(calc "$ours_med / $dd_med")" "$(calc "$ours_p99 / $dd_p99")" "$load_tps" "$failed" >>"$PUSH_ROWS"
    if grep -q '^pgbackrest ' "$WORK/stats-$run"; then
        read -r _ n_br br_med br_p90 br_p99 br_max < <(grep '^pgbackrest ' "$WORK/stats-$run")
        bench_record "WAL: pgbackrest archive-push --archive-async as archive_command" "median / dd conv=fsync median" "$(calc "$br_med / $dd_med")"
        bench_record "WAL: pgbackrest archive-push --archive-async as archive_command" "p99 / dd conv=fsync p99" "$(calc "$br_p99 / $dd_p99")"
        bench_record "WAL: pgbackrest archive-push --archive-async as archive_command" "median" "$br_med" "" ms
        printf '| %s | pgbackrest archive-push --archive-async | %s | %s | %s | %s | %s | %.2f | %.2f | | |\n' "$run" "$n_br" "$br_med" "$br_p90" "$br_p99" "$br_max" \
            "$(calc "$br_med / $dd_med")" "$(calc "$br_p99 / $dd_p99")" >>"$PUSH_ROWS"
    fi
    printf '| %s | dd conv=fsync of the same segment (after both) | %s | %s | %s | %s | %s | 1.00 | 1.00 | | |\n' "$run" "$n_dd" "$dd_med" "$dd_p90" "$dd_p99" "$dd_max" >>"$PUSH_ROWS"

    # ------------------------------------------------------------ 2. the watcher under load
    spooled=$(find "$WORK/spool" -maxdepth 1 -type f ! -name '.*' | wc -l)
    mkdir -p "$WORK/watch-$run"
    m0=$(moto_cpu)
    measured=$(bench_measure "$WORK/watch-$run" "$WORK/bin/pgbackd" wal-watch --once --log-level info --config "$WORK/pgbackd.toml")
    read -r watch_wall watch_rss watch_cpu watch_tree <<<"$measured"
    m1=$(moto_cpu)
    err=$WORK/watch-$run/err
    # Keys in the log are relative to the repository prefix.
    grep -o 'wal.key=[^ ]*' "$err" | cut -d= -f2- | sed "s|^|$PREFIX/|" >>"$WORK/shipped.keys" || true
    shipped=$(grep -o 'wal-watch: [0-9]* shipped' "$err" | awk '{ print $2 }')
    stored=$(grep -o 'wal.stored_bytes=[0-9]*' "$err" | cut -d= -f2 | awk '{ s += $1 } END { print s + 0 }')
    bound=$(grep -o 'wal.memory_bound_bytes=[0-9]*' "$err" | head -n1 | cut -d= -f2)
    bound_mib=$(calc "${bound:-0} / 1048576")
    rss_mib=$(calc "$watch_rss / 1024")
    bench_record "WAL: watcher (wal-watch --once → S3, $UPLOADS uploads)" "peak RSS" "$rss_mib" "<=150" MiB
    bench_record "WAL: watcher (wal-watch --once → S3, $UPLOADS uploads)" "memory bound implied by the settings" "$bound_mib" "" MiB
    bench_record "WAL: watcher (wal-watch --once → S3, $UPLOADS uploads)" "segments/s" "$(calc "$shipped / $watch_wall")" "" "segments/s"
    bench_record "WAL: watcher (wal-watch --once → S3, $UPLOADS uploads)" "CPU-s per segment" "$(calc "$watch_cpu / ($shipped + ($shipped == 0))")" "" s
    printf '| %s | %s | %s | %s | %.1f | %.1f | %.0f | %.2f | %s | %s | %.3f | %.1f |\n' "$run" "$spooled" "$shipped" "$watch_wall" \
        "$(calc "$shipped / $watch_wall")" "$(calc "$shipped * 16.777216 / $watch_wall")" "$(calc "$stored / 1000000")" \
        "$(calc "$shipped * 16777216 / ($stored + ($stored == 0))")" "$rss_mib" "$bound_mib" \
        "$(calc "$watch_cpu / ($shipped + ($shipped == 0))")" "$(calc "$m1 - $m0")" >>"$WATCH_ROWS"
    echo "bench/wal: run $run of $RUNS done ($order)" >&2
done

# Stop the load and the cluster (the archiver does not touch S3 in spool mode).
for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
PIDS=()
as_pg "$BIN/pg_ctl" -D "$WORK/data" -m fast -w -t 60 stop >/dev/null

echo "| run | per 16 MiB segment, as archive_command under load | pushes | median ms | p90 ms | p99 ms | max ms | median / dd median | p99 / dd p99 | load tps | archiver failures |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
cat "$PUSH_ROWS"
echo
echo "| run | watcher (wal-watch --once → S3) spool of | segments | wall s | segments/s | raw MB/s | stored MB | raw/stored | peak RSS MiB | bound MiB | CPU-s / segment | moto CPU s |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
cat "$WATCH_ROWS"
