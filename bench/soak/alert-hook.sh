#!/bin/sh
# Alert command hook of bench/soak/run.sh: reads the event JSON (stdin) and appends one line
# "<UTC time> <event> <backup id>" to the file named by $1.
cat >/dev/null
printf '%s %s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "${PGBACKD_EVENT:-?}" "${PGBACKD_BACKUP_ID:--}" >>"$1"
