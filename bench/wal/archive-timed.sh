#!/bin/bash
# archive_command for bench/wal/run.sh: runs `PGBACKD wal-push --config CONFIG %p` exactly as a
# plain archive_command would and, with a pgBackRest configuration, `pgbackrest archive-push %p`
# (--archive-async in its configuration) as the reference tool, in the order given; then, with
# REFDIR, `dd conv=fsync` of the same segment into REFDIR (the copy and fsync alone, no tool; the
# copy is deleted again), and `PGBACKD --version`: the start-up of the same executable alone
# (the dynamic loader and the runtime), under the same load. Appends one line to LOG:
#
#   name status pgbackd_start pgbackd_end [pgbackrest_start pgbackrest_end|- -] [dd_start dd_end|- -] [startup_start startup_end|- -]
#
# (epoch seconds with µs, from bash's $EPOCHREALTIME: no extra process inside a timed span).
#
#   archive_command = '/path/archive-timed.sh LOG ORDER PGBACKD CONFIG PGBR_CONF|- REFDIR|- %p'
#
# ORDER is `pgbackd-first` or `reference-first`. Each timed span is fork + exec + the whole
# command (for wal-push: configuration, copy, fsync, link, directory fsync); the shell that
# PostgreSQL starts around it is not in it. The push succeeds only if every tool's did.
export LC_ALL=C
log=$1 order=$2 pgbackd=$3 config=$4 pgbr_conf=$5 refdir=$6 path=$7
status=0 ours="- -" theirs="- -" reference="- -" startup="- -"
run_pgbackd() {
    local start=$EPOCHREALTIME
    "$pgbackd" wal-push --config "$config" "$path" || status=$?
    ours="$start $EPOCHREALTIME"
}
run_pgbackrest() {
    [[ $pgbr_conf != - ]] || return 0
    local start=$EPOCHREALTIME
    pgbackrest --config="$pgbr_conf" --stanza=bench archive-push "$path" || status=$?
    theirs="$start $EPOCHREALTIME"
}
if [[ $order == reference-first ]]; then run_pgbackrest; run_pgbackd; else run_pgbackd; run_pgbackrest; fi
if [[ $status -eq 0 && $refdir != - ]]; then
    start=$EPOCHREALTIME
    dd if="$path" of="$refdir/segment" bs=1M conv=fsync status=none
    reference="$start $EPOCHREALTIME"
    rm -f "$refdir/segment"
    start=$EPOCHREALTIME
    "$pgbackd" --version >/dev/null
    startup="$start $EPOCHREALTIME"
fi
printf '%s %s %s %s %s %s\n' "${path##*/}" "$status" "$ours" "$theirs" "$reference" "$startup" >>"$log"
exit "$status"
