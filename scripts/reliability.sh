#!/usr/bin/env bash
# Runs the fault-injection and security suite (issue #16) alone and prints its table:
#   scripts/reliability.sh          the CI size (what .ci/run runs in its reliability row)
#   scripts/reliability.sh --long   the long size, whose table docs/reliability.md keeps
# Arguments after the flag go to `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scale=ci
if [[ ${1:-} == --long ]]; then scale=long; shift; fi
PGBACKD_TEST_MATRIX="15:reliability" PGBACKD_RELIABILITY_SCALE=$scale exec scripts/test.sh "$@"
