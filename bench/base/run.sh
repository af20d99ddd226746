#!/usr/bin/env bash
# Benchmark: `pgbackd backup --type base` against `pgbackrest backup --type=full
# --compress-type=gz --compress-level=6 --process-max=2`, both to the same S3 server (moto behind
# an nginx TLS proxy) and both to local storage, on the same throw-away cluster.
#
#   scripts/services.sh start && source .services/env       # PostgreSQL binaries, the source DB
#   bench/daylog/generate.sh 1000000 daylog_bench
#   bench/base/run.sh daylog_bench                           # PGBACKD_BENCH_RUNS runs (default 3)
#
# Sets up everything itself in a mktemp directory below /tmp, and tears it down at the end:
# - installs pgbackrest and nginx (Debian packages) if they are missing;
# - its own moto (scripts/services.sh with its own state directory: it runs moto through
#   scripts/moto-server.py, because pgBackRest lists by prefix, which plain moto rejects with 403),
#   so the objects of the run are gone with it;
# - nginx on a free port with a self-signed certificate for `localhost` in front of moto, because
#   pgBackRest 2.45 talks to S3 over HTTPS only (nginx.conf.template);
# - its own cluster (initdb -k, the settings of services.sh's cluster) with DATABASE copied in
#   from the services' server (pg_dump | pg_restore, then VACUUM ANALYZE) while it runs with
#   wal_level = minimal and no archiving (so the copy's WAL is neither archived nor waited for),
#   then restarted with archive_mode = on: the cluster holds that one database;
# - archive_command = bench/base/archive.sh: pgBackRest's archive-push and pgbackd's wal-push
#   (spool mode, two spools: S3 and file configuration), with a `pgbackd wal-watch` per spool;
# - pgBackRest stanza `bench` with repo1 = S3, repo2 = a directory (pgbackrest.conf.template),
#   run as the cluster owner (`postgres`).
# pgbackd reaches S3 through the same nginx endpoint (https://localhost:PORT, ca_file).
#
# Each run backs up to the directory, then to S3, each with both tools, alternating their order
# (run 1: pgBackRest first, run 2: pgbackd first, ...); every backup is preceded by CHECKPOINT.
# Columns: wall seconds (GNU time), ratio = pgbackd's wall / pgBackRest's on the same kind of
# repository in the same run, stored MB (pgBackRest's `info --output=json`, pgbackd's `--json`
# summary), raw/stored, CPU seconds of the tool's own processes (not the server's; pg_basebackup's
# reading is done by a walsender), peak RSS of the largest process (GNU time) and of all the
# tool's processes together (sampled 10×/s), the memory bound pgbackd's settings imply
# (bench_memory_bound in bench/lib.sh: S3 parts in flight + compression blocks in flight), and
# the CPU seconds of moto and nginx during S3 runs (they share the cores).
# For bench/run (PGBACKD_BENCH_RESULTS) each run records, per repository ("base backup → file",
# "base backup → S3"): the wall ratio (target <= 1.0), the stored size ratio (<= 1.0), pgbackd's
# peak RSS of the largest process (<= 150 MiB) and of all its processes (<= 200 MiB), the same
# two for pgBackRest (reference, no target), and the implied bound.
#
# PGBACKD_BENCH_RUNS: runs (default 3; PGBACKD_BENCH_BASE_RUNS is still read when it is unset).
# PGBACKD_BENCH_BASE_LEVEL: pgbackd's compression.level (default 8: with the default engine,
# libdeflate, the level that stores no more than zlib's 6, docs/decisions.md);
# PGBACKD_BENCH_BASE_ENGINE: its compression.engine (default: unset, pgbackd's default).
# PGBACKD_BENCH_BASE_S3: extra lines for pgbackd's [repository.s3] table (e.g.
# "part_size_mib = 8"; the bound printed follows part_size_mib and parallel_parts given here).
# PGBACKD_BENCH_BIN: use this pgbackd binary instead of building one (release, .build-bench).
# PGBACKD_BENCH_KEEP=1: keep the work directory (logs, repositories) after tearing down.
# A pgbackd backup that fails gets a FAILED row and exit 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO_ROOT=$PWD
DB=${1:?usage: bench/base/run.sh DATABASE}
RUNS=${PGBACKD_BENCH_RUNS:-${PGBACKD_BENCH_BASE_RUNS:-3}}
LEVEL=${PGBACKD_BENCH_BASE_LEVEL:-8}
ENGINE=${PGBACKD_BENCH_BASE_ENGINE:-}
S3_EXTRA=${PGBACKD_BENCH_BASE_S3:-}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench/base: PGBACKD_BENCH_RUNS must be a positive integer" >&2; exit 2; }
[[ $LEVEL =~ ^[0-9]$ ]] || { echo "bench/base: PGBACKD_BENCH_BASE_LEVEL must be 0-9" >&2; exit 2; }
[[ -z $ENGINE || $ENGINE == zlib || $ENGINE == libdeflate ]] ||
    { echo "bench/base: PGBACKD_BENCH_BASE_ENGINE must be zlib or libdeflate" >&2; exit 2; }
SETTING="level $LEVEL${ENGINE:+, engine $ENGINE}"
: "${PGBACKD_TEST_PGHOST:?source .services/env first (the source database and PostgreSQL binaries)}"
BIN=$PGBACKD_TEST_PGBIN
SRC=(-h "$PGBACKD_TEST_PGHOST" -p "$PGBACKD_TEST_PGPORT" -U "$PGBACKD_TEST_PGUSER")
"$BIN/psql" "${SRC[@]}" -d "$DB" -XAtqc 'select 1' >/dev/null || { echo "bench/base: no database $DB on the services' server" >&2; exit 66; }

missing=()
command -v /usr/bin/time >/dev/null || missing+=(time)
command -v pgbackrest >/dev/null || missing+=(pgbackrest)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
    echo "bench/base: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

source bench/lib.sh
bench_build
BUILT=$PGBACKD

WORK=$(mktemp -d /tmp/pgbackd-base-bench.XXXXXX)
chmod 0755 "$WORK" # the cluster owner runs the archiver, pgbackrest and wal-push in here
WATCHERS=() finished=0
cleanup() {
    local rc=$? pid
    set +e
    # PostgreSQL first: its archiver pushes to S3 and would hang the shutdown without it.
    if [[ -f $WORK/data/postmaster.pid ]]; then
        as_pg "$BIN/pg_ctl" -D "$WORK/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_pg "$BIN/pg_ctl" -D "$WORK/data" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    for pid in "${WATCHERS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${WATCHERS[@]}"; do wait "$pid" 2>/dev/null; done
    if [[ -f $WORK/nginx/nginx.pid ]]; then
        pid=$(cat "$WORK/nginx/nginx.pid")
        kill -QUIT "$pid" 2>/dev/null
        for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
    fi
    [[ -d $WORK/s3svc ]] && PGBACKD_SERVICES_DIR=$WORK/s3svc scripts/services.sh stop >/dev/null
    if ((rc != 0 && !finished)); then
        echo "bench/base: failed (exit $rc); postgres log tail:" >&2
        tail -n 15 "$WORK/postgres.log" >&2 2>/dev/null
    fi
    if [[ ${PGBACKD_BENCH_KEEP:-0} == 1 ]]; then echo "bench/base: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_pg() { # initdb, pg_ctl and pgbackrest run as the cluster owner
    if [[ $(id -u) -eq 0 ]]; then (cd "$WORK" && runuser -u postgres -- "$@"); else "$@"; fi
}
AS_PG=()
[[ $(id -u) -ne 0 ]] || AS_PG=(runuser -u postgres --)
owner() { [[ $(id -u) -ne 0 ]] || chown -R postgres:postgres "$@"; }
sql() { "$BIN/psql" -h "$WORK/socket" -p 5432 -U postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fill() { # template NAME... : prints the template with each @NAME@ replaced by $NAME
    (
        export "${@:2}" # values reach python through its environment, never its arguments
        python3 -c 'import os, sys
text = open(sys.argv[1]).read()
for name in sys.argv[2:]:
    text = text.replace(f"@{name}@", os.environ[name])
sys.stdout.write(text)' "$@"
    )
}
cpu_of() { # utime+stime in seconds, summed over the given PIDs
    local pid
    for pid in "$@"; do cat "/proc/$pid/stat"; done | awk -v hz="$(getconf CLK_TCK)" '
        { sub(/.*\) /, ""); s += $12 + $13 } END { printf "%.1f", s / hz }'
}
server_cpu() { # the cluster: postmaster and every backend, walsenders included, live or reaped
    local master
    master=$(head -n1 "$WORK/data/postmaster.pid")
    for pid in "$master" $(pgrep -P "$master"); do cat "/proc/$pid/stat" 2>/dev/null; done | awk -v hz="$(getconf CLK_TCK)" '
        { sub(/.*\) /, ""); s += $12 + $13 + $14 + $15 } END { printf "%.1f", s / hz }'
}
idle_cpu() { # idle and iowait core-seconds of the whole machine since boot
    awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.1f", ($5 + $6) / hz }' /proc/stat
}
server_and_idle_cpu() { echo "$(server_cpu) $(idle_cpu)"; }
s3_cpu() { # moto and nginx (master and workers)
    local master
    master=$(cat "$WORK/nginx/nginx.pid")
    echo "$(cpu_of "$(head -n1 "$WORK/s3svc/moto.pid")") $(cpu_of "$master" $(pgrep -P "$master"))"
}

# ---------------------------------------------------------------- S3: moto + nginx (TLS)

PGBACKD_SERVICES_DIR=$WORK/s3svc scripts/services.sh start s3 >"$WORK/s3svc.log" 2>&1 ||
    { cat "$WORK/s3svc.log" >&2; exit 1; }
S3_ENDPOINT=$(. "$WORK/s3svc/env"; echo "$PGBACKD_TEST_S3_ENDPOINT")
BUCKET=$(. "$WORK/s3svc/env"; echo "$PGBACKD_TEST_S3_BUCKET")
REGION=$(. "$WORK/s3svc/env"; echo "$PGBACKD_TEST_S3_REGION")
KEY_ID=$(. "$WORK/s3svc/env"; echo "$PGBACKD_TEST_S3_ACCESS_KEY_ID")
(umask 077; . "$WORK/s3svc/env"; printf '%s' "$PGBACKD_TEST_S3_SECRET_ACCESS_KEY" >"$WORK/secret")
MOTO=${S3_ENDPOINT#http://}

DIR=$WORK/nginx NGINX_USER='' PORT=$(free_port)
mkdir -p "$DIR/tmp"
[[ $(id -u) -ne 0 ]] || NGINX_USER='user www-data;'
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost \
    -keyout "$DIR/key.pem" -out "$DIR/cert.pem" >/dev/null 2>&1
chmod 0644 "$DIR/cert.pem"
fill bench/base/nginx.conf.template DIR NGINX_USER MOTO PORT >"$DIR/nginx.conf"
"$NGINX" -p "$DIR" -c "$DIR/nginx.conf" -e "$DIR/error.log" || { cat "$DIR/error.log" >&2; exit 1; }
NGINX_PORT=$PORT

# ---------------------------------------------------------------- the cluster

mkdir -m 0755 "$WORK/socket" "$WORK/bin" "$WORK/pgbackrest" "$WORK/pgbackrest/log"
mkdir -m 0700 "$WORK/data" "$WORK/spool-s3" "$WORK/spool-file" "$WORK/pgbackd-repo"
install -m 0755 "$BUILT" "$WORK/bin/pgbackd" # the build directory may sit below a 0700 directory
install -m 0755 bench/base/archive.sh "$WORK/bin/archive.sh"
PREFIX=bench-base-$(date +%s)-$$
SECRET=$(cat "$WORK/secret") DIR=$WORK
fill bench/base/pgbackrest.conf.template NGINX_PORT BUCKET REGION KEY_ID SECRET DIR PREFIX >"$WORK/pgbackrest/pgbackrest.conf"
unset SECRET
chmod 0600 "$WORK/pgbackrest/pgbackrest.conf" "$WORK/secret"
pgbackd_config() { # kind (s3|file)
    cat <<TOML
# written by bench/base/run.sh
[repository]
$(if [[ $1 == s3 ]]; then cat <<S3
type = "s3"
stanza = "bench"
[repository.s3]
endpoint = "https://localhost:$NGINX_PORT"
ca_file = "$WORK/nginx/cert.pem"
bucket = "$BUCKET"
region = "$REGION"
prefix = "$PREFIX/pgbackd"
access_key_id = "$KEY_ID"
secret_access_key_file = "$WORK/secret"
$S3_EXTRA
S3
else printf 'type = "file"\npath = "%s"\nstanza = "bench"\n' "$WORK/pgbackd-repo"; fi)
[postgres]
conninfo = "host=$WORK/socket port=5432 user=postgres dbname=postgres"
bin_dir = "$BIN"
[compression]
level = $LEVEL
${ENGINE:+engine = \"$ENGINE\"}
[wal]
mode = "spool"
spool_dir = "$WORK/spool-$1"
TOML
}
pgbackd_config s3 >"$WORK/pgbackd-s3.toml"
pgbackd_config file >"$WORK/pgbackd-file.toml"
owner "$WORK"

as_pg "$BIN/initdb" -D "$WORK/data" -U postgres -E UTF8 --locale=C --auth=trust -k -N >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; exit 1; }
cat >>"$WORK/data/postgresql.conf" <<EOF
listen_addresses = ''
port = 5432
unix_socket_directories = '$WORK/socket'
wal_level = replica
max_wal_senders = 10
synchronous_commit = off
max_wal_size = 4GB
shared_buffers = 256MB
maintenance_work_mem = 512MB
EOF
# The copy first, with wal_level = minimal and no archiving: its WAL (hundreds of segments at
# 1M entries) then never goes through both tools' archiving, which the run would have to wait for.
cp "$WORK/data/postgresql.conf" "$WORK/postgresql.conf.archiving"
cat >>"$WORK/data/postgresql.conf" <<EOF
wal_level = minimal
max_wal_senders = 0
archive_mode = off
EOF
cat >>"$WORK/postgresql.conf.archiving" <<EOF
archive_mode = on
archive_command = '$WORK/bin/archive.sh $WORK/pgbackrest/pgbackrest.conf $WORK/bin/pgbackd $WORK/pgbackd-s3.toml $WORK/pgbackd-file.toml -- %p'
EOF
owner "$WORK/postgresql.conf.archiving"
as_pg "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 start >/dev/null

# The watchers ship pgbackd's spools for the whole run, like the daemon would.
for kind in s3 file; do
    "$WORK/bin/pgbackd" wal-watch --config "$WORK/pgbackd-$kind.toml" >"$WORK/watch-$kind.log" 2>&1 &
    WATCHERS+=($!)
done

echo "bench/base: copying $DB into the benchmark cluster" >&2
sql -d postgres -c "create database \"$DB\" template template0"
"$BIN/pg_dump" "${SRC[@]}" -Fc -Z0 "$DB" | "$BIN/pg_restore" -h "$WORK/socket" -p 5432 -U postgres --no-owner -d "$DB"
"$BIN/vacuumdb" -h "$WORK/socket" -p 5432 -U postgres -q -z "$DB"
as_pg "$BIN/pg_ctl" -D "$WORK/data" -m fast -w -t 120 stop >/dev/null
cp "$WORK/postgresql.conf.archiving" "$WORK/data/postgresql.conf"
as_pg "$BIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 start >/dev/null
PGBR=(pgbackrest --config="$WORK/pgbackrest/pgbackrest.conf" --stanza=bench)
as_pg "${PGBR[@]}" stanza-create >"$WORK/stanza.log" 2>&1 || { cat "$WORK/stanza.log" >&2; exit 1; }
# The copy wrote hundreds of segments and the archiver pushes each through both tools one at a
# time: wait until it has caught up, or pgBackRest's check (and backup) times out waiting for it.
last=$(sql -d postgres -c "select pg_walfile_name(pg_current_wal_lsn())")
sql -d postgres -c "select pg_switch_wal()" >/dev/null
echo "bench/base: waiting for the archiver to reach $last" >&2
until [[ $(sql -d postgres -c "select coalesce(last_archived_wal >= '$last', false) from pg_stat_archiver") == t ]]; do
    sleep 2
done
as_pg "${PGBR[@]}" check >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; exit 1; }
# The watchers then still compress and upload the segments spooled during the copy (hundreds, at
# the configured level): wait until both spools are empty, or that work loads the cores during
# the first timed runs (pgBackRest's, as it happens).
echo "bench/base: waiting for pgbackd's watchers to empty their spools" >&2
while compgen -G "$WORK/spool-s3/0*" >/dev/null || compgen -G "$WORK/spool-file/0*" >/dev/null; do
    sleep 2
done
for kind in file s3; do # pgbackd reaches the database and its repository (S3: through nginx)
    "$WORK/bin/pgbackd" check --config "$WORK/pgbackd-$kind.toml" >"$WORK/check-$kind.log" 2>&1 ||
        { cat "$WORK/check-$kind.log" >&2; exit 1; }
done

# ---------------------------------------------------------------- timed runs

measure() { bench_measure "$WORK" "$@"; } # "wall maxrss_kib cpu_s tree_kib"; stdout in $WORK/out
row() { # run tool repo wall ratio stored raw cpu rss tree bound s3cpu "server | idle"
    printf '| %s | %s | %s | %s | %s | %.2f | %s | %s | %.0f | %.0f | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$5" "$(calc "$6 / 1000000")" \
        "$(calc "$7 / $6")" "$8" "$(calc "$9 / 1024")" "$(calc "${10} / 1024")" "${11}" "${12}" "${13}"
}
delta() { # SEPARATOR "x0 y0" "x1 y1" → "x1-x0 SEPARATOR y1-y0" (two CPU-second snapshots)
    local a b
    read -r -a a <<<"$2"; read -r -a b <<<"$3"
    echo "$(calc "${b[0]} - ${a[0]}") $1 $(calc "${b[1]} - ${a[1]}")"
}
pgbackrest_sizes() { # repo → "raw stored" of the newest backup
    as_pg "${PGBR[@]}" --repo="$1" info --output=json |
        python3 -c 'import json,sys; b=json.load(sys.stdin)[0]["backup"][-1]["info"]; print(b["size"], b["repository"]["size"])'
}

pgbackd_failed=0
s3_setting() { # NAME DEFAULT: a [repository.s3] setting of PGBACKD_BENCH_BASE_S3, or the default
    local v
    v=$(sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\([0-9]*\).*/\1/p" <<<"$S3_EXTRA" | tail -n 1)
    echo "${v:-$2}"
}
# The bound pgbackd's settings imply (bench_memory_bound: compression blocks in flight, plus the
# S3 parts in flight and the one filling); the file repository holds no parts.
BOUND_FILE=$(bench_memory_bound engine="${ENGINE:-libdeflate}" workers="$(nproc)")
BOUND_S3=$(bench_memory_bound engine="${ENGINE:-libdeflate}" workers="$(nproc)" \
    part_mib="$(s3_setting part_size_mib default)" parallel_parts="$(s3_setting parallel_parts default)")
echo "cluster: $(sql -d postgres -c "select pg_size_pretty(sum(pg_database_size(datname))) from pg_database") (database $DB: $(sql -d postgres -c "select pg_size_pretty(pg_database_size('$DB'))")), $(nproc) cores, pgBackRest $(pgbackrest version | awk '{ print $2 }'), $RUNS runs"
echo "memory bound implied by pgbackd's settings: file $(bench_memory_bound --explain engine="${ENGINE:-libdeflate}" workers="$(nproc)"); S3 $(bench_memory_bound --explain engine="${ENGINE:-libdeflate}" workers="$(nproc)" part_mib="$(s3_setting part_size_mib default)" parallel_parts="$(s3_setting parallel_parts default)")"
bench_note "base backup: database $DB ($(sql -d postgres -c "select pg_size_pretty(pg_database_size('$DB'))")), pgbackd $SETTING against pgBackRest $(pgbackrest version | awk '{ print $2 }') full gz 6 process-max 2; S3 = moto behind nginx (TLS) on this machine"
echo
echo "| run | tool | repository | wall s | ratio | stored MB | raw/stored | CPU s (tool) | peak RSS MiB (largest process) | peak RSS MiB (all processes) | bound MiB (settings) | moto / nginx CPU s | PostgreSQL CPU s | idle core-s |"
echo "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
# One backup, measured: TOOL (pgbackrest|pgbackd) KIND (file|s3). Sets the globals wall raw
# stored cpu rss tree s3 rest; returns non-zero when pgbackd failed.
backup_once() {
    local tool=$1 kind=$2 repo status=0
    repo=$([[ $kind == s3 ]] && echo 1 || echo 2)
    sql -d postgres -c checkpoint
    s3_before=$(s3_cpu) server_idle_before=$(server_and_idle_cpu)
    if [[ $tool == pgbackrest ]]; then
        measure "${AS_PG[@]}" "${PGBR[@]}" --repo="$repo" backup --type=full \
            --compress-type=gz --compress-level=6 --process-max=2 >"$WORK/m" ||
            { echo "bench/base: pgBackRest's backup failed" >&2; exit 1; }
    else
        measure "$WORK/bin/pgbackd" backup --type base --json --log-level info --config "$WORK/pgbackd-$kind.toml" >"$WORK/m" || status=$?
        cp "$WORK/err" "$WORK/pgbackd-$kind-$run.log" # its own account of where the time went
        ((status == 0)) || return "$status"
    fi
    s3=$(delta / "$s3_before" "$(s3_cpu)") rest=$(delta '|' "$server_idle_before" "$(server_and_idle_cpu)")
    [[ $kind == s3 ]] || s3=
    read -r wall rss cpu tree <"$WORK/m"
    if [[ $tool == pgbackrest ]]; then
        read -r raw stored < <(pgbackrest_sizes "$repo")
    else
        read -r raw stored < <(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))
g=lambda *k: next(j[x] for x in k if x in j)
print(g("raw_bytes","rawBytes"), g("stored_bytes","storedBytes"))' "$WORK/out")
    fi
}
mib() { calc "$1 / 1024"; }
for ((run = 1; run <= RUNS; run++)); do
    order=(pgbackrest pgbackd)
    ((run % 2)) || order=(pgbackd pgbackrest) # run 1: the reference first, run 2: pgbackd first, ...
    for kind in file s3; do
        repo_label=$([[ $kind == s3 ]] && echo S3 || echo file)
        comparison="base backup → $repo_label"
        declare -A res=()
        ok=1
        for tool in "${order[@]}"; do
            if ! backup_once "$tool" "$kind"; then
                echo "| $run | pgbackd backup --type base, $SETTING | $repo_label | FAILED: $(tail -n 1 "$WORK/err" | tr '|' '/') | | | | | | | | | | |"
                pgbackd_failed=1 ok=0
                continue
            fi
            res[$tool]="$wall $rss $cpu $tree $raw $stored"
            res[$tool-extra]="$s3|$rest"
        done
        ((ok)) || continue
        read -r bw brss bcpu btree braw bstored <<<"${res[pgbackrest]}"
        read -r dw drss dcpu dtree draw dstored <<<"${res[pgbackd]}"
        bound=$([[ $kind == s3 ]] && echo "$BOUND_S3" || echo "$BOUND_FILE")
        for tool in "${order[@]}"; do
            if [[ $tool == pgbackrest ]]; then
                row "$run" "pgBackRest full, gz 6, process-max 2" "$([[ $kind == s3 ]] && echo S3 || echo directory)" \
                    "$bw" 1.00 "$bstored" "$braw" "$bcpu" "$brss" "$btree" "" "${res[pgbackrest-extra]%%|*}" "${res[pgbackrest-extra]#*|}"
            else
                row "$run" "pgbackd backup --type base, $SETTING" "$repo_label" "$dw" "$(calc "$dw / $bw")" \
                    "$dstored" "$draw" "$dcpu" "$drss" "$dtree" "$bound" "${res[pgbackd-extra]%%|*}" "${res[pgbackd-extra]#*|}"
            fi
        done
        bench_record "$comparison" "wall ratio pgbackd / pgbackrest full" "$(calc "$dw / $bw")" "<=1.0"
        bench_record "$comparison" "stored size ratio pgbackd / pgbackrest" "$(awk "BEGIN { printf \"%.4f\", $dstored / $bstored }")" "<=1.0"
        bench_record "$comparison" "peak RSS, largest process" "$(mib "$drss")" "<=150" MiB
        bench_record "$comparison" "peak RSS, all processes" "$(mib "$dtree")" "<=200" MiB
        bench_record "$comparison" "memory bound implied by the settings" "$bound" "" MiB
        bench_record "$comparison" "pgBackRest peak RSS, largest process (reference)" "$(mib "$brss")" "" MiB
        bench_record "$comparison" "pgBackRest peak RSS, all processes (reference)" "$(mib "$btree")" "" MiB
        unset res
    done
done
for pid in "${WATCHERS[@]}"; do
    [[ -d /proc/$pid ]] || { echo "bench/base: a pgbackd wal-watch died:" >&2; tail -n 5 "$WORK"/watch-*.log >&2; exit 1; }
done
finished=1 # the table says what failed
exit "$pgbackd_failed"
