#!/usr/bin/env bash
# Creates a Daylog-shaped database with N journal entries for tests, demos and benchmarks.
#
#   bench/daylog/generate.sh [--replace] [--seed S] N DBNAME
#
#   --replace   drop DBNAME first if it exists (otherwise an existing DBNAME is an error)
#   --seed S    another data set, as deterministic (default 20261125)
#
# Connects with the standard libpq variables (PGHOST, PGPORT, PGUSER, ...); where they are unset,
# with the test server of .services/env (PGBACKD_TEST_PGHOST, _PGPORT, _PGUSER). Everything is made
# server-side with set-based SQL in one session: tables (schema.sql), data (gen.sql), then keys,
# foreign keys and indexes (constraints.sql), then VACUUM ANALYZE so the first benchmark run
# does not pay for hint bits and the visibility map. The same N and seed give the same data.
# Sizes: ~100 entries per user, ~2.2 KB of EditorJS JSON per entry, ~2.6 GB per million entries
# (N=2000 takes about a second, N=1,000,000 four to five minutes on 2 cores).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
replace=0
seed=20261125
args=()
while (($#)); do
    case $1 in
    --replace) replace=1 ;;
    --seed) seed=${2:?--seed needs a value}; shift ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    -*) echo "generate.sh: unknown option $1" >&2; exit 2 ;;
    *) args+=("$1") ;;
    esac
    shift
done
if ((${#args[@]} != 2)) || ! [[ ${args[0]} =~ ^[1-9][0-9]*$ ]] || ! [[ $seed =~ ^-?[0-9]+$ ]]; then
    echo "usage: generate.sh [--replace] [--seed S] N DBNAME   (N >= 1, S an integer)" >&2
    exit 2
fi
n=${args[0]}
db=${args[1]}
[[ -n ${PGBACKD_TEST_PGHOST:-} ]] && export PGHOST=${PGHOST:-$PGBACKD_TEST_PGHOST} PGPORT=${PGPORT:-$PGBACKD_TEST_PGPORT} PGUSER=${PGUSER:-$PGBACKD_TEST_PGUSER}

psql=(psql -X -q -v ON_ERROR_STOP=1)
start=${EPOCHREALTIME/./}
elapsed() { # seconds since start, one decimal
    local us=$((${EPOCHREALTIME/./} - start + 50000)) # rounded, like gen.sql's progress lines
    printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10))
}

# Refuse to drop an existing database unless asked: PGHOST may point at a real server.
exists=$("${psql[@]}" -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '${db//\'/\'\'}'")
if [[ -n $exists ]]; then
    ((replace)) || { echo "generate.sh: database \"$db\" exists (use --replace to drop it)" >&2; exit 1; }
    "${psql[@]}" -d postgres -c "DROP DATABASE \"${db//\"/\"\"}\" WITH (FORCE)"
fi
"${psql[@]}" -d postgres -c "CREATE DATABASE \"${db//\"/\"\"}\" TEMPLATE template0 ENCODING 'UTF8'"

echo "generate.sh: $n entries into \"$db\" (seed $seed)"
"${psql[@]}" -d "$db" -f "$here/schema.sql"
# One session for the whole load: gen.sql keeps its helpers in temp tables and functions.
# temp_buffers: the text pools are temp tables read at random for every block; in the 8 MB
# default they are re-read from the OS all the time (1M entries took twice as long).
{
    echo "CREATE TEMP TABLE vocab_in (rank int GENERATED ALWAYS AS IDENTITY, word text NOT NULL);"
    echo "COPY vocab_in (word) FROM STDIN;"
    grep -v '^#' "$here/words.txt"
    echo '\.'
    cat "$here/gen.sql"
} | PGOPTIONS="${PGOPTIONS:-} -c temp_buffers=1GB" "${psql[@]}" -d "$db" -v n="$n" -v seed="$seed" -v started="${start:0:-6}.${start: -6}" -f -
echo "  $(printf '%-22s %7s s' 'data loaded' "$(elapsed)")"
"${psql[@]}" -d "$db" -f "$here/constraints.sql"
echo "  $(printf '%-22s %7s s' 'keys and indexes' "$(elapsed)")"
"${psql[@]}" -d "$db" -c 'VACUUM ANALYZE'
echo "  $(printf '%-22s %7s s' 'vacuum analyze' "$(elapsed)")"

"${psql[@]}" -d "$db" -P footer=off <<'SQL'
SELECT (SELECT count(*) FROM auth_user) AS users,
       (SELECT count(*) FROM journal_tag) AS tags,
       (SELECT count(*) FROM journal_journalentry) AS entries,
       (SELECT count(*) FROM journal_journalentry_tags) AS entry_tags,
       (SELECT round(avg(octet_length(content::text)))     -- a sample: reading all of it takes long
          FROM (SELECT content FROM journal_journalentry LIMIT 20000) s) AS avg_json_bytes,
       pg_size_pretty(pg_database_size(current_database())) AS db_size;
SQL
echo "generate.sh: done in $(elapsed) s"
