#!/usr/bin/env bash
# Soak benchmark (issue #5, acceptance 5): `pgbackd run` left running with every job scheduled
# every minute; its memory must stay flat (RSS at the end within 10 % of RSS after the first hour).
#
#   bench/soak/run.sh                      # 2 hours (SOAK_SECONDS=7200)
#   SOAK_SECONDS=600 bench/soak/run.sh     # a short validation run
#   bench/soak/run.sh --short              # bench/run's mode: 10 minutes, a sample every 15 s
#
# Sets up everything itself under a mktemp directory in /tmp, and tears it all down on exit
# (also on Ctrl-C or an error):
# - a throw-away PostgreSQL cluster of its own (initdb; socket only, no TCP port) with
#   archive_mode = on and archive_command = `pgbackd wal-push` (spool mode);
# - a sample Daylog database (bench/daylog/generate.sh, PGBACKD_BENCH_ENTRIES entries, default
#   20000, about 50 MB) and a pgbench database with a small write load: `pgbench -t` batches at
#   PGBACKD_BENCH_LOAD_TPS transactions/s (default 20), so the WAL watcher has WAL to ship;
# - a file repository, and a configuration with backup, base_backup, drill and retention all at
#   "* * * * *", retention keep_last = 3 / min_keep = 2 (it really deletes, WAL included),
#   an alert command hook on every event (bench/soak/alert-hook.sh), and
#   [metrics] listen = 127.0.0.1:<free port>.
# Then it starts `pgbackd run` (as the cluster owner: postgres under root, as the service runs;
# NOTIFY_SOCKET unset) and samples it every PGBACKD_BENCH_SAMPLE_SECONDS (default 30) into
# samples.csv: VmRSS and VmHWM (/proc/PID/status), threads, open fds, jobs completed and failed
# per kind (from `pgbackd status --json`: a changed last_run counts as one run), whether the
# metrics endpoint answered 200, spooled WAL files, repository size. After SOAK_SECONDS it sends
# SIGTERM, checks the daemon exits 0, and prints a summary: RSS after the first hour (at half
# time for runs shorter than 2 hours) against RSS at the end, PASS when the end is at most
# 1.10 × that; peak RSS; jobs per kind from the status samples and from the daemon's log;
# fds and threads first / reference / last.
#
# Settings (environment): SOAK_SECONDS (default 7200), PGBACKD_BENCH_SAMPLE_SECONDS (30),
# PGBACKD_BENCH_ENTRIES (20000), PGBACKD_BENCH_LOAD_TPS (20; 0 = no write load),
# PGBACKD_BENCH_BIN (use this pgbackd binary instead of building one into .build-bench),
# PGBACKD_PGBIN or PGBACKD_TEST_PGBIN (PostgreSQL bin directory; default the newest
# /usr/lib/postgresql/*/bin), PGBACKD_BENCH_OUT (directory the results go to: samples.csv,
# summary.txt, daemon.log, alerts.log; default a new /tmp/pgbackd-soak-results.XXXXXX),
# PGBACKD_BENCH_KEEP=1 (keep the work directory: cluster data, repository, logs),
# PGBACKD_SOAK_ARENAS (MALLOC_ARENA_MAX for the daemon; default 2, as systemd/pgbackd.service
# sets it; "default" leaves glibc's own, 8 per core).
#
# For bench/run (PGBACKD_BENCH_RESULTS, bench/lib.sh's bench_record): "daemon soak" with
# "RSS at end / RSS at half-time" (the ratio above; target <= 1.10) and "peak RSS, daemon"
# (VmHWM; target <= 150 MiB).
#
# Exit status: 0 when RSS is flat (PASS), no job failed and the daemon stopped cleanly; 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/../.."
source bench/lib.sh
DEFAULT_INTERVAL=30
if [[ ${1:-} == --short ]]; then
    SOAK_SECONDS=${SOAK_SECONDS:-600}
    DEFAULT_INTERVAL=15
elif (($#)); then
    echo "usage: bench/soak/run.sh [--short]" >&2
    exit 64
fi
SOAK_SECONDS=${SOAK_SECONDS:-7200}
INTERVAL=${PGBACKD_BENCH_SAMPLE_SECONDS:-$DEFAULT_INTERVAL}
ENTRIES=${PGBACKD_BENCH_ENTRIES:-20000}
LOAD_TPS=${PGBACKD_BENCH_LOAD_TPS:-20}
STOP_TIMEOUT=60
for v in SOAK_SECONDS INTERVAL ENTRIES LOAD_TPS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "bench/soak: $v must be a non-negative integer, got '${!v}'" >&2; exit 64; }
done
((INTERVAL >= 5 && SOAK_SECONDS >= 4 * INTERVAL && ENTRIES >= 1)) ||
    { echo "bench/soak: need PGBACKD_BENCH_SAMPLE_SECONDS >= 5, SOAK_SECONDS >= 4 samples, ENTRIES >= 1" >&2; exit 64; }
command -v jq >/dev/null && command -v curl >/dev/null || { echo "bench/soak: needs jq and curl" >&2; exit 69; }

PGBIN=${PGBACKD_PGBIN:-${PGBACKD_TEST_PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}}
[[ -x $PGBIN/initdb && -x $PGBIN/pg_ctl && -x $PGBIN/pgbench ]] ||
    { echo "bench/soak: no PostgreSQL server binaries in '$PGBIN' (scripts/install-deps.sh)" >&2; exit 69; }

[[ -n ${PGBACKD_BENCH_BIN:-} ]] || echo "bench/soak: building pgbackd (release, .build-bench)"
bench_build
BUILT=$PGBACKD
[[ -x $BUILT ]] || { echo "bench/soak: $BUILT is not executable" >&2; exit 69; }

# Everything below /tmp, traversable by the cluster owner (the archiver runs wal-push as it).
WORK=$(mktemp -d /tmp/pgbackd-soak.XXXXXX)
chmod 0755 "$WORK"
OUT=${PGBACKD_BENCH_OUT:-$(mktemp -d /tmp/pgbackd-soak-results.XXXXXX)}
mkdir -p "$OUT"
DAEMON_PID= LOAD_PID= SUMMARY_DONE=0

# The cluster owner runs initdb, pg_ctl (hence the archiver's wal-push) and the daemon.
if [[ $(id -u) -eq 0 ]]; then
    id postgres >/dev/null 2>&1 || { echo "bench/soak: no 'postgres' OS user to run the cluster as" >&2; exit 69; }
    as_owner() { (cd "$WORK" && exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"); }
    owner() { chown -R postgres:postgres "$@"; }
else
    as_owner() { (cd "$WORK" && exec "$@"); }
    owner() { :; }
fi
sql() { "$PGBIN/psql" -h "$WORK/socket" -p 5432 -U postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }
alive() { [[ -n $1 && -r /proc/$1/stat ]] && [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
log() { echo "bench/soak: $*"; }

stop_load() {
    if [[ -n $LOAD_PID ]]; then
        kill "$LOAD_PID" 2>/dev/null || true
        pkill -TERM -P "$LOAD_PID" 2>/dev/null || true # its current pgbench batch
        wait "$LOAD_PID" 2>/dev/null || true
        LOAD_PID=
    fi
}

# SIGTERM, then SIGKILL if the daemon is not gone within its stop timeout plus 40 s (its own
# bound is stop_timeout + 30). Sets DAEMON_RC (the exit status, 128+n for a signal) and STOP_S.
stop_daemon() {
    DAEMON_RC= STOP_S=
    [[ -n $DAEMON_PID ]] || return 0
    local t0=$EPOCHREALTIME killer
    kill -TERM "$DAEMON_PID" 2>/dev/null || true
    (sleep $((STOP_TIMEOUT + 40)); kill -KILL "$DAEMON_PID" 2>/dev/null) &
    killer=$!
    DAEMON_RC=0
    wait "$DAEMON_PID" || DAEMON_RC=$?
    kill "$killer" 2>/dev/null || true
    wait "$killer" 2>/dev/null || true
    STOP_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    DAEMON_PID=
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    stop_load
    if [[ -n $DAEMON_PID ]]; then
        log "stopping the daemon (pid $DAEMON_PID)"
        stop_daemon
    fi
    if [[ -f $WORK/data/postmaster.pid ]]; then
        as_owner "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
            as_owner "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    for f in samples.csv daemon.log alerts.log load.log; do [[ -f $WORK/$f ]] && cp "$WORK/$f" "$OUT/"; done
    if ((rc)) && ((!SUMMARY_DONE)) && [[ -f $WORK/daemon.log ]]; then
        echo "bench/soak: exit $rc; daemon log tail:" >&2
        tail -n 15 "$WORK/daemon.log" >&2
    fi
    if [[ ${PGBACKD_BENCH_KEEP:-0} == 1 ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    log "results in $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- cluster, data, configuration

mkdir -m 0755 "$WORK/socket" "$WORK/bin"
mkdir -m 0700 "$WORK/data" "$WORK/spool" "$WORK/state" "$WORK/staging" "$WORK/repo"
# A copy the cluster owner can execute (the build directory may sit below a 0700 directory),
# and one that a rebuild during the soak does not replace.
install -m 0755 "$BUILT" "$WORK/bin/pgbackd"
install -m 0755 bench/soak/alert-hook.sh "$WORK/bin/alert-hook.sh"
PGBACKD=$WORK/bin/pgbackd
CONFIG=$WORK/pgbackd.toml
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$CONFIG" <<TOML
# written by bench/soak/run.sh
[repository]
type = "file"
path = "$WORK/repo"
stanza = "soak"

[postgres]
conninfo = "host=$WORK/socket port=5432 user=postgres dbname=postgres"
databases = ["daylog"]
bin_dir = "$PGBIN"

[drill]
staging_dir = "$WORK/staging"

[[checks.content_size]]
table = "public.journal_journalentry"
column = "content"
max_bytes = 1048576

[[checks.sql]]
name = "editorjs-shape"
database = "daylog"
query = "select id from journal_journalentry where jsonb_typeof(content) <> 'object' or not content ? 'blocks'"

[[alerts.command]]
events = ["*"]
run = ["$WORK/bin/alert-hook.sh", "$WORK/alerts.log"]
timeout_seconds = 10

[wal]
mode = "spool"
spool_dir = "$WORK/spool"

[retention]
keep_last = 3
keep_daily = 0
keep_weekly = 0
keep_monthly = 0
min_keep = 2

[schedule]
time_zone = "UTC"
backup = "* * * * *"
base_backup = "* * * * *"
drill = "* * * * *"
retention = "* * * * *"

[daemon]
state_dir = "$WORK/state"
stop_timeout_seconds = $STOP_TIMEOUT
wal_watcher = true

[metrics]
listen = "127.0.0.1:$MPORT"
TOML
chmod 0644 "$CONFIG"
: >"$WORK/alerts.log"
owner "$WORK"

log "work directory $WORK; PostgreSQL $("$PGBIN/postgres" -V | awk '{ print $3 }'); pgbackd $BUILT"
as_owner "$PGBIN/initdb" -D "$WORK/data" -U postgres -E UTF8 --locale=C --auth=trust -k -N >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; exit 1; }
cat >>"$WORK/data/postgresql.conf" <<EOF

# ---- bench/soak/run.sh ----
listen_addresses = ''
port = 5432
unix_socket_directories = '$WORK/socket'
wal_level = replica
max_wal_senders = 10
synchronous_commit = off
shared_buffers = 128MB
maintenance_work_mem = 256MB
archive_mode = on
archive_command = '$PGBACKD wal-push --config $CONFIG %p'
log_line_prefix = '%m [%p] %q%u@%d '
EOF
as_owner "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/postgres.log" -w -t 60 start >/dev/null ||
    { tail -n 20 "$WORK/postgres.log" >&2; exit 1; }

log "generating the Daylog database ($ENTRIES entries)"
PGHOST=$WORK/socket PGPORT=5432 PGUSER=postgres PATH=$PGBIN:$PATH \
    bench/daylog/generate.sh "$ENTRIES" daylog >"$WORK/generate.log" 2>&1 || { cat "$WORK/generate.log" >&2; exit 1; }
sql -d postgres -c "create database soakload"
"$PGBIN/pgbench" -h "$WORK/socket" -p 5432 -U postgres -i -q -s 1 soakload >"$WORK/pgbench-init.log" 2>&1 ||
    { cat "$WORK/pgbench-init.log" >&2; exit 1; }
as_owner "$PGBACKD" check --config "$CONFIG" >"$WORK/check.log" 2>&1 || { cat "$WORK/check.log" >&2; exit 1; }

# ---------------------------------------------------------------- the daemon and the load

# Under the daemon, as a systemd service would run it, minus systemd.
(
    unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
    # systemd/pgbackd.service's Environment=; PGBACKD_SOAK_ARENAS=default measures glibc's default.
    if [[ ${PGBACKD_SOAK_ARENAS:-2} != default ]]; then export MALLOC_ARENA_MAX=${PGBACKD_SOAK_ARENAS:-2}; fi
    cd "$WORK"
    if [[ $(id -u) -eq 0 ]]; then
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$PGBACKD" run --config "$CONFIG" --log-level info
    else
        exec "$PGBACKD" run --config "$CONFIG" --log-level info
    fi
) </dev/null >"$WORK/daemon.out" 2>"$WORK/daemon.log" &
DAEMON_PID=$!
for ((i = 0; i < 600; i++)); do
    alive "$DAEMON_PID" || { echo "bench/soak: the daemon exited at start:" >&2; cat "$WORK/daemon.log" >&2; exit 1; }
    grep -q 'daemon starting' "$WORK/daemon.log" && break
    sleep 0.1
done
grep -q 'daemon starting' "$WORK/daemon.log" || { echo "bench/soak: the daemon did not start within 60 s" >&2; exit 1; }
log "daemon pid $DAEMON_PID; metrics http://127.0.0.1:$MPORT/metrics; soak $SOAK_SECONDS s, a sample every $INTERVAL s"

if ((LOAD_TPS > 0)); then
    # pgbench -t batches of about 10 s at LOAD_TPS, rate-limited (-R), so the load is the same
    # on a fast or a slow machine; one "ok"/"failed" line per batch.
    (
        while :; do
            if "$PGBIN/pgbench" -h "$WORK/socket" -p 5432 -U postgres -n -c 1 -R "$LOAD_TPS" -t $((LOAD_TPS * 10)) soakload >/dev/null 2>&1; then
                echo "$EPOCHSECONDS ok"
            else
                echo "$EPOCHSECONDS failed"
            fi
            sleep 1
        done
    ) >"$WORK/load.log" 2>&1 &
    LOAD_PID=$!
fi

# ---------------------------------------------------------------- sampling

KINDS=(backup base_backup drill retention)
declare -A LAST_START OK FAILED
for k in "${KINDS[@]}"; do LAST_START[$k]= OK[$k]=0 FAILED[$k]=0; done
STATUS_FAILS=0 METRICS_OK=0 SAMPLES=0
CSV=$WORK/samples.csv
echo "t_s,time_utc,vmrss_kib,vmhwm_kib,rss_anon_kib,rss_file_kib,threads,fds,backup_ok,backup_failed,base_backup_ok,base_backup_failed,drill_ok,drill_failed,retention_ok,retention_failed,status_ok,metrics_ok,spool_files,repo_kib" >"$CSV"

sample() { # t
    local t=$1 rss hwm anon file threads fds status_ok=0 metrics_ok=0 spool=- repo json k start outcome
    read -r rss hwm anon file threads < <(awk '$1 == "VmRSS:" { r = $2 } $1 == "VmHWM:" { h = $2 } $1 == "RssAnon:" { a = $2 }
        $1 == "RssFile:" { f = $2 } $1 == "Threads:" { t = $2 } END { print r, h, a, f, t }' "/proc/$DAEMON_PID/status")
    fds=$(find "/proc/$DAEMON_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    if json=$(as_owner timeout 30 "$PGBACKD" status --json --config "$CONFIG" 2>>"$WORK/status.err"); then
        status_ok=1
        for k in "${KINDS[@]}"; do
            read -r start outcome < <(jq -r --arg k "$k" '.jobs[] | select(.job == $k) | "\(.last_run.start // "") \(.last_run.outcome // "")"' <<<"$json")
            if [[ -n ${start:-} && $start != "${LAST_START[$k]}" ]]; then
                LAST_START[$k]=$start
                if [[ $outcome == succeeded ]]; then OK[$k]=$((OK[$k] + 1)); else FAILED[$k]=$((FAILED[$k] + 1)); fi
            fi
        done
        spool=$(jq -r '.wal.spooled_files' <<<"$json")
    else
        STATUS_FAILS=$((STATUS_FAILS + 1))
    fi
    if [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$MPORT/metrics" 2>/dev/null) == 200 ]]; then
        metrics_ok=1 METRICS_OK=$((METRICS_OK + 1))
    fi
    repo=$(du -sk "$WORK/repo" 2>/dev/null | awk '{ print $1 }')
    SAMPLES=$((SAMPLES + 1))
    echo "$t,$(date -u +%Y-%m-%dT%H:%M:%SZ),$rss,$hwm,$anon,$file,$threads,$fds,${OK[backup]},${FAILED[backup]},${OK[base_backup]},${FAILED[base_backup]},${OK[drill]},${FAILED[drill]},${OK[retention]},${FAILED[retention]},$status_ok,$metrics_ok,$spool,$repo" >>"$CSV"
}

T0=$EPOCHSECONDS
DIED=0
for ((i = 0; i * INTERVAL <= SOAK_SECONDS; i++)); do
    target=$((T0 + i * INTERVAL))
    while ((EPOCHSECONDS < target)); do
        alive "$DAEMON_PID" || break
        sleep 1
    done
    if ! alive "$DAEMON_PID"; then DIED=1; break; fi
    sample $((EPOCHSECONDS - T0))
    if ((i % 20 == 0)); then tail -n 1 "$CSV" | awk -F, '{ printf "bench/soak: t=%ss rss=%.1f MiB threads=%s fds=%s jobs ok %s/%s/%s/%s failed %s/%s/%s/%s\n", $1, $3 / 1024, $7, $8, $9, $11, $13, $15, $10, $12, $14, $16 }'; fi
done

# ---------------------------------------------------------------- stop and summary

stop_load
if ((DIED)); then
    DAEMON_RC=0
    wait "$DAEMON_PID" || DAEMON_RC=$?
    DAEMON_PID= STOP_S=-
    log "THE DAEMON DIED during the soak (exit $DAEMON_RC)"
else
    log "SIGTERM to the daemon"
    stop_daemon
fi

REF_T=$((SOAK_SECONDS / 2 < 3600 ? SOAK_SECONDS / 2 : 3600))
{
    echo "# pgbackd soak: $SOAK_SECONDS s, every job every minute, a sample every $INTERVAL s"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, pgbackd $BUILT, PostgreSQL $("$PGBIN/postgres" -V | awk '{ print $3 }'), $ENTRIES Daylog entries, load $LOAD_TPS tps"
    # The point ratio is the acceptance criterion. RSS swings by 10-20 % within each minute's
    # cycle of jobs (what malloc has handed back to the kernel at that moment), so the medians of
    # the samples in the window before each point (10 minutes, or half the reference
    # time for short runs) are printed beside it as the less noisy figure.
    awk -F, -v ref="$REF_T" '
        function median(lo, hi,    i, k, v, j, x) {
            k = 0; for (i = 1; i <= n; i++) if (t[i] > lo && t[i] <= hi) v[++k] = rss[i]
            for (i = 2; i <= k; i++) { x = v[i]; for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]; v[j + 1] = x }
            if (k == 0) return 0
            return (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2
        }
        NR == 1 { next }
        { n++; t[n] = $1; rss[n] = $3; hwm[n] = $4; anon[n] = $5; th[n] = $7; fd[n] = $8
          if ($3 > maxrss) maxrss = $3; if ($4 > maxhwm) maxhwm = $4
          d = $1 - ref; if (d < 0) d = -d; if (r == 0 || d < best) { best = d; r = n } }
        END {
            if (n < 2) { print "too few samples"; exit }
            ratio = rss[n] / rss[r]
            label = (ref == 3600) ? "after the first hour" : "at half time"
            w = (t[r] >= 1200) ? 600 : int(t[r] / 2)
            mr = median(t[r] - w, t[r]); me = median(t[n] - w, t[n])
            printf "RSS %s (t=%d s):  %.1f MiB (anonymous %.1f MiB)\n", label, t[r], rss[r] / 1024, anon[r] / 1024
            printf "RSS at the end (t=%d s):  %.1f MiB (anonymous %.1f MiB)\n", t[n], rss[n] / 1024, anon[n] / 1024
            printf "ratio end / reference:  %.3f  -> %s (limit 1.10)\n", ratio, ratio <= 1.10 ? "PASS" : "FAIL"
            if (mr > 0 && me > 0)
                printf "median RSS of the %d s up to each: %.1f / %.1f MiB, ratio %.3f\n", w, mr / 1024, me / 1024, me / mr
            printf "peak RSS (VmHWM): %.1f MiB; highest sampled VmRSS %.1f MiB\n", maxhwm / 1024, maxrss / 1024
            printf "threads first / reference / last: %d / %d / %d\n", th[1], th[r], th[n]
            printf "open fds first / reference / last: %d / %d / %d\n", fd[1], fd[r], fd[n]
            print (ratio <= 1.10 ? "RSS_PASS" : "RSS_FAIL"), ratio, maxhwm / 1024 > "/dev/stderr"
        }' "$CSV" 2>"$WORK/verdict"
    last=$(tail -n 1 "$CSV")
    echo "jobs (from status samples: ok / failed):"
    for k in "${KINDS[@]}"; do printf '  %-12s %4d / %d\n' "$k" "${OK[$k]}" "${FAILED[$k]}"; done
    echo "jobs (from the daemon log: succeeded / failed / cancelled / skipped as still running):"
    for k in "${KINDS[@]}"; do
        c() { grep -F "$1" "$WORK/daemon.log" | grep -c -E "(^| )job=$k( |$)" || true; }
        printf '  %-12s %4d / %d / %d / %d\n' "$k" "$(c 'job succeeded')" "$(c 'job failed')" "$(c 'job cancelled')" "$(c 'skipping this run')"
    done
    echo "alerts delivered to the hook: $(wc -l <"$WORK/alerts.log") ($(awk '{ print $2 }' "$WORK/alerts.log" | sort | uniq -c | awk '{ printf "%s%s=%d", (NR > 1 ? ", " : ""), $2, $1 }'))"
    echo "metrics endpoint answered 200 in $METRICS_OK of $SAMPLES samples; status --json failed in $STATUS_FAILS"
    [[ -f $WORK/load.log ]] && echo "write load: $(grep -c ' ok$' "$WORK/load.log" || true) pgbench batches ok, $(grep -c ' failed$' "$WORK/load.log" || true) failed"
    echo "WAL segments archived in the repository at the end: $(find "$WORK/repo" -path '*/wal/*' -type f | wc -l); spool files at the last sample: $(cut -d, -f19 <<<"$last")"
    echo "repository size at the end: $(du -sh "$WORK/repo" | cut -f1)"
    echo "daemon log: $(wc -l <"$WORK/daemon.log") lines, $(grep -c -E '^[^ ]+ (error|critical) ' "$WORK/daemon.log" || true) at error level or above"
    if ((DIED)); then
        echo "daemon: DIED during the soak, exit $DAEMON_RC"
    else
        echo "daemon: SIGTERM -> exit $DAEMON_RC after $STOP_S s ($([[ $DAEMON_RC == 0 ]] && echo clean || echo NOT CLEAN))"
    fi
} | tee "$OUT/summary.txt"

SUMMARY_DONE=1
read -r _ soak_ratio soak_hwm <"$WORK/verdict" || true
if [[ -n ${soak_ratio:-} ]]; then
    bench_record "daemon soak" "RSS at end / RSS at half-time" "$soak_ratio" "<=1.10"
    bench_record "daemon soak" "peak RSS, daemon" "$soak_hwm" "<=150" MiB
    bench_note "daemon soak: $SOAK_SECONDS s, every job every minute, $ENTRIES Daylog entries, load $LOAD_TPS tps, file repository"
fi
failed_jobs=0
for k in "${KINDS[@]}"; do failed_jobs=$((failed_jobs + FAILED[$k])); done
if grep -q RSS_PASS "$WORK/verdict" && ((failed_jobs == 0 && !DIED)) && [[ $DAEMON_RC == 0 ]]; then
    log "PASS"
    exit 0
fi
log "FAIL (RSS $(awk '{ sub(/RSS_/, "", $1); print $1 }' "$WORK/verdict"), $failed_jobs failed job(s), daemon exit $DAEMON_RC$( ((DIED)) && echo ', died'))"
exit 1
