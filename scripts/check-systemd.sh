#!/usr/bin/env bash
# Checks the files in systemd/ the way systemd will read them, without needing systemd as PID 1
# (CI containers): `systemd-analyze verify` of the unit (any warning fails, not only errors),
# `systemd-analyze security --offline=true` with an exposure of at most 2.0, and the tmpfiles.d
# entry applied to a scratch root. scripts/test.sh calls this; exits non-zero on any failure.
#
# verify insists that ExecStart=/usr/bin/pgbackd exists, so it runs with --root= on a scratch tree
# holding the distribution's units (sysinit.target and friends), kill for ExecReload=, our unit,
# and at usr/bin/pgbackd the binary in $PGBACKD_BINARY, else an executable stub: the unit is what
# is checked here, not the build.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=${PGBACKD_MAX_EXPOSURE:-2.0}
UNIT=pgbackd.service

fail() {
    echo "check-systemd: $*" >&2
    exit 1
}

for tool in systemd-analyze systemd-tmpfiles; do
    command -v "$tool" >/dev/null || fail "$tool not found (apt-get install systemd)"
done
[[ -d /usr/lib/systemd/system ]] || fail "no /usr/lib/systemd/system to verify against"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

# --- verify ---------------------------------------------------------------------------------
mkdir -p "$root/usr/lib/systemd" "$root/usr/bin" "$root/etc/systemd/system"
# Mirror the merged /usr of the host, so /bin/kill resolves inside the root as it does outside.
for dir in bin sbin lib lib64; do
    if [[ -L /$dir ]]; then ln -s "$(readlink "/$dir")" "$root/$dir"; fi
done
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$(readlink -f /bin/kill)" "$root/usr/bin/kill"
if [[ -n ${PGBACKD_BINARY:-} ]]; then
    [[ -x $PGBACKD_BINARY ]] || fail "PGBACKD_BINARY=$PGBACKD_BINARY is not an executable file"
    cp "$PGBACKD_BINARY" "$root/usr/bin/pgbackd"
else
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/pgbackd"
    chmod 0755 "$root/usr/bin/pgbackd"
fi
cp "systemd/$UNIT" "$root/etc/systemd/system/$UNIT"

if ! output=$(systemd-analyze verify --root="$root" "$UNIT" 2>&1); then
    printf '%s\n' "$output" >&2
    fail "systemd-analyze verify $UNIT failed"
fi
if [[ -n $output ]]; then
    printf '%s\n' "$output" >&2
    fail "systemd-analyze verify $UNIT printed warnings (treated as failures)"
fi
echo "check-systemd: systemd-analyze verify $UNIT: ok"

# --- security -------------------------------------------------------------------------------
if ! table=$(systemd-analyze security --offline=true "systemd/$UNIT" 2>&1); then
    printf '%s\n' "$table" >&2
    fail "systemd-analyze security --offline=true systemd/$UNIT failed"
fi
exposure=$(sed -n "s/.*Overall exposure level for $UNIT: \([0-9][0-9]*\.[0-9]\).*/\1/p" <<<"$table")
[[ -n $exposure ]] || { printf '%s\n' "$table" >&2; fail "no exposure level in the output of systemd-analyze security"; }
if ! awk -v e="$exposure" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(e <= max) }'; then
    printf '%s\n' "$table" >&2
    fail "exposure of $UNIT is $exposure, above $MAX_EXPOSURE"
fi
echo "check-systemd: systemd-analyze security $UNIT: exposure $exposure (at most $MAX_EXPOSURE)"

# --- tmpfiles.d -----------------------------------------------------------------------------
# Applied as installed (/usr/lib/tmpfiles.d/pgbackd.conf) to an empty root with the host's users,
# which must include postgres: the directory has to come out owned by it, mode 0750.
tmp_root="$root/tmpfiles"
mkdir -p "$tmp_root/etc" "$tmp_root/var/lib" "$tmp_root/usr/lib/tmpfiles.d"
cp /etc/passwd /etc/group "$tmp_root/etc/"
cp systemd/pgbackd.tmpfiles "$tmp_root/usr/lib/tmpfiles.d/pgbackd.conf"
if ! output=$(systemd-tmpfiles --root="$tmp_root" --create pgbackd.conf 2>&1) || [[ -n $output ]]; then
    printf '%s\n' "$output" >&2
    fail "systemd-tmpfiles --create pgbackd.conf failed or warned"
fi
got=$(stat -c '%U:%G %a' "$tmp_root/var/lib/pgbackd" 2>/dev/null || true)
[[ $got == "postgres:postgres 750" ]] || fail "tmpfiles made /var/lib/pgbackd '$got', expected 'postgres:postgres 750'"
echo "check-systemd: tmpfiles.d pgbackd.conf: ok"

# --- the daemon's environment -----------------------------------------------------------------
# Two malloc arenas: glibc's default (8 per core) tripled the daemon's RSS in the soak benchmark.
env_line=$(sed -n 's/^Environment=//p' "systemd/$UNIT" | tr '\n' ' ')
[[ " $env_line " == *" MALLOC_ARENA_MAX=2 "* ]] || fail "$UNIT does not set Environment=MALLOC_ARENA_MAX=2 (docs/benchmarks.md, Soak)"
echo "check-systemd: $UNIT environment: MALLOC_ARENA_MAX=2"
