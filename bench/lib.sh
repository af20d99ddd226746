# Shared by the bench/*/run.sh scripts (source it; it changes no shell option of the caller).
#
#   bench_pg_env                  PGHOST/PGPORT/PGUSER from .services/env's PGBACKD_TEST_* when unset
#   bench_build                   the release pgbackd as docs/operations.md installs it (Swift
#                                 runtime linked in), or $PGBACKD_BENCH_BIN → $PGBACKD
#   bench_measure DIR CMD...      runs CMD; prints "wall_s maxrss_kib cpu_s tree_kib" where
#                                 maxrss is the largest single process (GNU time) and tree the
#                                 peak of all its processes' RSS summed (sampled 10×/s); CMD's
#                                 stdout is in DIR/out, stderr in DIR/err
#   bench_record COMPARISON METRIC VALUE [TARGET] [UNIT]
#                                 one result for bench/run's table (a JSON line appended to
#                                 $PGBACKD_BENCH_RESULTS; nothing when it is unset). TARGET is
#                                 "<=0.6" or ">=3" and is checked against the median of the runs.
#   bench_note TEXT               a line printed under bench/run's table (same file)

bench_pg_env() {
    : "${PGBACKD_TEST_PGHOST:?source .services/env first (scripts/services.sh start)}"
    export PGHOST=${PGHOST:-$PGBACKD_TEST_PGHOST} PGPORT=${PGPORT:-$PGBACKD_TEST_PGPORT} PGUSER=${PGUSER:-$PGBACKD_TEST_PGUSER}
}

bench_build() {
    if [[ -n ${PGBACKD_BENCH_BIN:-} ]]; then
        PGBACKD=$PGBACKD_BENCH_BIN
    else
        swift build -c release --static-swift-stdlib --product pgbackd --scratch-path .build-bench >/dev/null
        PGBACKD=$PWD/.build-bench/release/pgbackd
    fi
}

bench_measure() {
    local dir=$1 status=0
    shift
    command -v /usr/bin/time >/dev/null || apt-get install -y -qq time >/dev/null
    /usr/bin/time -f '%e %M %U %S' -o "$dir/time" "$@" >"$dir/out" 2>"$dir/err" &
    local pid=$!
    python3 - "$pid" >"$dir/tree" <<'PY' &
import os, sys, time
root, peak, page = sys.argv[1], 0, os.sysconf("SC_PAGE_SIZE")
def children():
    kids = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = f.read().rsplit(")", 1)[1].split()[1]
                kids.setdefault(ppid, []).append(p)
            except OSError:
                pass
    return kids
while os.path.exists(f"/proc/{root}"):
    kids = children()
    todo, total = list(kids.get(root, [])), 0
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * page
        except OSError:
            pass
    peak = max(peak, total)
    time.sleep(0.1)
print(peak // 1024)
PY
    local sampler=$!
    wait "$pid" || status=$?
    wait "$sampler" || true
    if ((status)); then cat "$dir/err" >&2; return "$status"; fi
    awk '{ printf "%s %s %.1f ", $1, $2, $3 + $4 }' "$dir/time"
    cat "$dir/tree"
}

bench_record() {
    [[ -n ${PGBACKD_BENCH_RESULTS:-} ]] || return 0
    python3 -c 'import json, sys
c, m, v, t, u = (sys.argv[1:] + ["", ""])[:5]
print(json.dumps({"comparison": c, "metric": m, "value": float(v), "target": t, "unit": u}))' "$@" >>"$PGBACKD_BENCH_RESULTS"
}

bench_note() {
    [[ -n ${PGBACKD_BENCH_RESULTS:-} ]] || return 0
    python3 -c 'import json, sys; print(json.dumps({"note": sys.argv[1]}))' "$1" >>"$PGBACKD_BENCH_RESULTS"
}
