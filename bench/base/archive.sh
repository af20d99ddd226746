#!/bin/bash
# archive_command for bench/base/run.sh: one cluster has one archive_command, and both tools
# need every segment, so this runs pgBackRest's archive-push (to both of its repositories), then
# pgbackd's wal-push into the spool of each pgbackd configuration (S3 and file), and succeeds
# only if all did. Each tool's backups therefore pay for the other's archiving of the few
# segments written during the backup (spool mode is a local copy + fsync; pgBackRest's push is
# synchronous).
#
#   archive_command = '/path/archive.sh /path/pgbackrest.conf /path/pgbackd CONFIG... -- %p'
set -u
conf=$1 pgbackd=$2
shift 2
configs=()
while (($#)) && [[ $1 != -- ]]; do configs+=("$1"); shift; done
path=${2:?usage: archive.sh PGBACKREST_CONF PGBACKD CONFIG... -- %p}
pgbackrest --config="$conf" --stanza=bench archive-push "$path" || exit $?
for config in "${configs[@]}"; do
    "$pgbackd" wal-push --config "$config" "$path" || exit $?
done
