#!/usr/bin/env bash
# Sets up and runs every test, unit and integration: installs what is missing, starts a
# throw-away PostgreSQL cluster and a SigV4-checking moto S3 server, runs `swift test`, and stops
# the services again whatever happens. .ci/run calls this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# The systemd unit (verify, exposure at most 2.0) and tmpfiles entry: seconds, so first.
scripts/check-systemd.sh

export PGBACKD_SERVICES_DIR=${PGBACKD_SERVICES_DIR:-$PWD/.services/test}
trap 'scripts/services.sh stop || true' EXIT
scripts/services.sh stop >/dev/null 2>&1 || true
scripts/services.sh start
# shellcheck disable=SC1091
source "$PGBACKD_SERVICES_DIR/env"

swift build --build-tests
swift test --skip-build "$@"
