#!/usr/bin/env bash
# The main job end to end on a fresh machine: installs what is missing, builds pgbackd, starts a
# throw-away PostgreSQL with a sample Daylog database, backs it up into a local file repository,
# shows the backup, and proves it restores: the dump goes back through plain gunzip | pg_restore
# and every table's row count must equal the one the manifest recorded in the dump's snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
swift build --product pgbackd
PGBACKD=$PWD/.build/debug/pgbackd

export PGBACKD_SERVICES_DIR=${PGBACKD_SERVICES_DIR:-$PWD/.services/demo}
trap 'scripts/services.sh stop >/dev/null 2>&1 || true' EXIT
scripts/services.sh stop >/dev/null 2>&1 || true
scripts/services.sh start pg
# shellcheck disable=SC1091
source "$PGBACKD_SERVICES_DIR/env"
scripts/demo-db.sh

REPO=$PWD/.demo-repo
CONFIG=$PGBACKD_SERVICES_DIR/pgbackd.toml
cat >"$CONFIG" <<TOML
[repository]
type = "file"
path = "$REPO"
stanza = "daylog"

[postgres]
conninfo = "host=$PGBACKD_TEST_PGHOST port=$PGBACKD_TEST_PGPORT user=$PGBACKD_TEST_PGUSER dbname=postgres"
databases = ["daylog"]
bin_dir = "$PGBACKD_TEST_PGBIN"
TOML

echo "== pgbackd check"
"$PGBACKD" check --config "$CONFIG"
echo "== pgbackd backup"
ID=$("$PGBACKD" backup --config "$CONFIG")
echo "== pgbackd list"
"$PGBACKD" list --config "$CONFIG"
echo "== pgbackd show $ID"
"$PGBACKD" show "$ID" --config "$CONFIG"

echo "== restore drill: gunzip | pg_restore into a scratch database, row counts against the manifest"
export PGHOST=$PGBACKD_TEST_PGHOST PGPORT=$PGBACKD_TEST_PGPORT PGUSER=$PGBACKD_TEST_PGUSER
psql -qX -d postgres -c "drop database if exists daylog_drill" -c "create database daylog_drill"
gunzip -c "$REPO/daylog/backups/$ID/daylog.dump.gz" | "$PGBACKD_TEST_PGBIN/pg_restore" --no-owner -d daylog_drill
expected=$("$PGBACKD" show "$ID" --json --config "$CONFIG" | python3 -c '
import json, sys
for table, rows in sorted(json.load(sys.stdin)["databases"][0]["row_counts"].items()):
    print(f"{table} {rows}")')
failed=0
while read -r table rows; do
    got=$(psql -qXAt -d daylog_drill -c "select count(*) from only $table")
    if [[ $got == "$rows" ]]; then echo "ok   $table: $rows rows"; else echo "FAIL $table: manifest $rows, restored $got"; failed=1; fi
done <<<"$expected"
psql -qX -d postgres -c "drop database daylog_drill"
[[ $failed == 0 ]] && echo "backup $ID restores with exactly the snapshot's row counts (repository: $REPO)"
exit $failed
