#!/usr/bin/env bash
# Creates (or recreates) the sample Daylog database `daylog`, 2000 entries, on the throw-away
# test cluster of scripts/services.sh. Start that first: scripts/services.sh start pg
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
env_file=${PGBACKD_SERVICES_DIR:-$repo/.services}/env
[[ -f $env_file ]] || { echo "demo-db: no $env_file; run scripts/services.sh start pg first" >&2; exit 1; }
# shellcheck source=/dev/null
source "$env_file"
[[ -n ${PGBACKD_TEST_PGPORT:-} ]] || { echo "demo-db: PostgreSQL is not started; run scripts/services.sh start pg" >&2; exit 1; }

export PGHOST=$PGBACKD_TEST_PGHOST PGPORT=$PGBACKD_TEST_PGPORT PGUSER=$PGBACKD_TEST_PGUSER
unset PGDATABASE PGSERVICE
# The cluster's own client binaries first, so psql matches the server.
export PATH=$PGBACKD_TEST_PGBIN:$PATH
# --replace: the demo database is disposable, and rerunning the demo should just work.
exec "$repo/bench/daylog/generate.sh" --replace 2000 daylog
