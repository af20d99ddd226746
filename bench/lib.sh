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
#   bench_memory_bound [--explain] [KEY=VALUE...]
#                                 the MiB a backup's buffers may hold by its settings: compression
#                                 blocks in flight (ParallelGzipEncoder: 2 × workers blocks, each
#                                 raw + compressed, and the one filling) plus, for S3, the parts
#                                 in flight and the one filling (S3Upload: part × (parallel + 1)).
#                                 Keys: engine (libdeflate|zlib: 4|1 MiB blocks), block_mib,
#                                 workers (default nproc), blocks_in_flight (default 2 × workers),
#                                 part_mib and parallel_parts (S3; empty or unset = no S3 parts;
#                                 "default" = pgbackd's defaults). The process's own baseline
#                                 (binary, runtime, libraries) is not in it. --explain adds the sum.

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

# The defaults below are pgbackd's (docs/operations.md's configuration table); keep them in step.
BENCH_DEFAULT_PART_MIB=8
BENCH_DEFAULT_PARALLEL_PARTS=2
bench_memory_bound() {
    local explain=0 kv engine=libdeflate block_mib='' workers='' blocks='' part_mib='' parallel=''
    [[ ${1:-} == --explain ]] && { explain=1; shift; }
    for kv in "$@"; do
        case $kv in
            engine=*) engine=${kv#*=} ;;
            block_mib=*) block_mib=${kv#*=} ;;
            workers=*) workers=${kv#*=} ;;
            blocks_in_flight=*) blocks=${kv#*=} ;;
            part_mib=*) part_mib=${kv#*=} ;;
            parallel_parts=*) parallel=${kv#*=} ;;
            *) echo "bench_memory_bound: unknown setting $kv" >&2; return 2 ;;
        esac
    done
    [[ -n $block_mib ]] || block_mib=$([[ $engine == zlib ]] && echo 1 || echo 4)
    [[ -n $workers ]] || workers=$(nproc)
    [[ -n $blocks ]] || blocks=$((2 * workers))
    # Raw blocks: 3 at the pipe reader (2 read ahead, 1 filling), the encoder's in flight and as
    # many waiting for the raw SHA-256; compressed (at most a block each): in flight and as many
    # waiting for the stored SHA-256 (ArtifactWriter, PipeBlockReader).
    local encoder=$((block_mib * (3 + 4 * blocks))) parts=0 text
    text="compression ${block_mib} MiB × (3 read + 4 × $blocks in flight) = $encoder"
    if [[ -n $part_mib || -n $parallel ]]; then
        [[ -n $part_mib && $part_mib != default ]] || part_mib=$BENCH_DEFAULT_PART_MIB
        [[ -n $parallel && $parallel != default ]] || parallel=$BENCH_DEFAULT_PARALLEL_PARTS
        parts=$((part_mib * (parallel + 1)))
        text+=" + S3 parts ${part_mib} MiB × ($parallel in flight + 1) = $parts"
    fi
    if ((explain)); then echo "$text → $((encoder + parts)) MiB"; else echo $((encoder + parts)); fi
}
