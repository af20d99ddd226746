#!/usr/bin/env bash
# The main job end to end on a fresh machine: installs what is missing, builds pgbackd, starts a
# throw-away PostgreSQL with a sample Daylog database, backs it up into a local file repository,
# shows the backup, and runs a restore drill on it: restore into a scratch database, then the
# referential, content-size, row-count, object and SQL checks. Exits non-zero if any fails.
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
# The cluster above is new each run, and a stanza belongs to one cluster: start the repository anew.
rm -rf "$REPO"
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

[drill]
staging_dir = "$PGBACKD_SERVICES_DIR"

[[checks.content_size]]
table = "public.journal_journalentry"
column = "content"
max_bytes = 1048576

[[checks.sql]]
name = "editorjs-shape"
database = "daylog"
query = "select id from journal_journalentry where jsonb_typeof(content) <> 'object' or not content ? 'blocks'"
TOML

echo "== pgbackd check"
"$PGBACKD" check --config "$CONFIG"
echo "== pgbackd backup"
ID=$("$PGBACKD" backup --config "$CONFIG")
echo "== pgbackd list"
"$PGBACKD" list --config "$CONFIG"
echo "== pgbackd show $ID"
"$PGBACKD" show "$ID" --config "$CONFIG"

echo "== pgbackd drill $ID: restore into a scratch database and check it against the manifest"
"$PGBACKD" drill "$ID" --config "$CONFIG"
echo "backup $ID of the sample Daylog database restores and passes every check (repository: $REPO)"
