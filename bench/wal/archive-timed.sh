#!/bin/bash
# archive_command for bench/wal/run.sh: runs `PGBACKD wal-push --config CONFIG %p` exactly as a
# plain archive_command would, and appends "name start end status" (epoch seconds with µs, from
# bash's $EPOCHREALTIME: no extra process inside the timed span) to LOG.
#
#   archive_command = '/path/archive-timed.sh /path/pgbackd /path/pgbackd.toml /path/push.log %p [REFDIR]'
#
# The timed span is fork + exec + the whole wal-push (configuration, copy, fsync, link, directory
# fsync); the shell that PostgreSQL starts around it is not in it. With REFDIR, a reference is
# timed right after it, under the same load: `dd conv=fsync` of the same segment into REFDIR (the
# copy and fsync alone, no pgbackd), appended as two more columns; the copy is deleted again.
export LC_ALL=C
pgbackd=$1 config=$2 log=$3 path=$4 refdir=${5:-}
start=$EPOCHREALTIME
"$pgbackd" wal-push --config "$config" "$path"
status=$?
end=$EPOCHREALTIME
reference=
if [[ $status -eq 0 && -n $refdir ]]; then
    ref_start=$EPOCHREALTIME
    dd if="$path" of="$refdir/segment" bs=1M conv=fsync status=none
    ref_end=$EPOCHREALTIME
    rm -f "$refdir/segment"
    reference=" $ref_start $ref_end"
fi
printf '%s %s %s %s%s\n' "${path##*/}" "$start" "$end" "$status" "$reference" >>"$log"
exit "$status"
