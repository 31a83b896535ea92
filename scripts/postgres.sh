#!/usr/bin/env bash
# A throwaway PostgreSQL for the index tests: install (Debian), init, start, create a database.
#
#   scripts/postgres.sh            -> prints the SQLAlchemy URL on stdout, e.g.
#   postgresql+psycopg://registry:registry@127.0.0.1:54329/registry_test
#   scripts/postgres.sh stop       -> stops the server (the data directory stays)
#
# Idempotent: when the server already answers it only makes sure the role and
# the database exist (a second or so). Everything but the URL goes to stderr.
#
# Settings (environment): REGISTRY_PG_PORT (54329), REGISTRY_PG_DIR
# (/tmp/registry-postgres: data/ and the socket directory run/), REGISTRY_PG_DB
# (registry_test), REGISTRY_PG_USER / REGISTRY_PG_PASSWORD (registry/registry).
# PostgreSQL refuses to run as root: as root the cluster belongs to the
# `postgres` user (created by the Debian package), otherwise to the caller.
set -euo pipefail

PORT="${REGISTRY_PG_PORT:-54329}"
BASE="${REGISTRY_PG_DIR:-/tmp/registry-postgres}"
DB="${REGISTRY_PG_DB:-registry_test}"
ROLE="${REGISTRY_PG_USER:-registry}"
PASSWORD="${REGISTRY_PG_PASSWORD:-registry}"
DATA="$BASE/data"
SOCKETS="$BASE/run"
URL="postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
        echo "$dir"
    elif command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
    fi
}

BIN="$(find_bin)"
if [ -z "$BIN" ]; then
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "PostgreSQL is not installed and I cannot install it (needs root and apt-get);"
        log "install the Debian package 'postgresql' and run me again"
        exit 1
    fi
    log "installing PostgreSQL from Debian (apt-get) ..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # policy-rc.d 101: the package must not start its own cluster (we start ours).
    had_policy=0
    [ -e /usr/sbin/policy-rc.d ] && had_policy=1
    [ "$had_policy" = 1 ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    [ "$had_policy" = 1 ] || chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends postgresql >&2 || {
        [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
        log "apt-get install postgresql failed"; exit 1; }
    [ "$had_policy" = 1 ] || rm -f /usr/sbin/policy-rc.d
    BIN="$(find_bin)"
    [ -n "$BIN" ] || { log "installed, but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"; exit 1; }
fi

# Who owns and runs the cluster.
if [ "$(id -u)" -eq 0 ]; then
    OWNER=postgres
    id "$OWNER" >/dev/null 2>&1 || useradd --system --home-dir "$BASE" --shell /bin/sh "$OWNER"
    as_owner() { runuser -u "$OWNER" -- "$@"; }
else
    OWNER="$(id -un)"
    as_owner() { "$@"; }
fi

psql_admin() {  # superuser over the unix socket (trust), quiet, stop on error
    as_owner "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCKETS" -p "$PORT" -U postgres \
        -d postgres "$@"
}

if [ "${1:-}" = "stop" ]; then
    if [ -f "$DATA/PG_VERSION" ]; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast stop >&2 || true
    fi
    exit 0
fi

mkdir -p "$BASE"
# One run at a time (CI steps, parallel shells).
exec 9>"$BASE.lock"
flock -w 120 9 || { log "another postgres.sh holds $BASE.lock"; exit 1; }

if [ "$(id -u)" -eq 0 ]; then chown "$OWNER" "$BASE"; fi
as_owner mkdir -p "$SOCKETS"
as_owner chmod 700 "$BASE" 2>/dev/null || true

if ! as_owner "$BIN/pg_isready" -q -h "$SOCKETS" -p "$PORT" 2>/dev/null; then
    if [ ! -f "$DATA/PG_VERSION" ]; then
        log "initialising a cluster in $DATA ($("$BIN/postgres" --version))"
        pwfile="$(as_owner mktemp "$BASE/pw.XXXXXX")"
        echo "$PASSWORD" | as_owner tee "$pwfile" >/dev/null
        as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust \
            --auth-host=scram-sha-256 --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1 \
            || as_owner "$BIN/initdb" -D "$DATA" -U postgres --auth-local=trust \
                --auth-host=scram-sha-256 --pwfile="$pwfile" -E UTF8 --no-locale >&2
        rm -f "$pwfile"
    fi
    # A server that is there but not ready yet (starting, recovering): give it a moment.
    # A stale pid file (a reboot, a killed server, even a zombie) would stop pg_ctl: drop it.
    if [ -f "$DATA/postmaster.pid" ]; then
        pid="$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)"
        state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null || true)"
        if [ -n "$pid" ] && [ -n "$state" ] && [ "$state" != Z ]; then
            for _ in $(seq 60); do
                as_owner "$BIN/pg_isready" -q -h "$SOCKETS" -p "$PORT" 2>/dev/null && break
                sleep 0.5
            done
            if ! as_owner "$BIN/pg_isready" -q -h "$SOCKETS" -p "$PORT" 2>/dev/null; then
                log "a server (pid $pid) holds $DATA but does not answer on port $PORT;"
                log "stop it (scripts/postgres.sh stop) or set REGISTRY_PG_PORT/REGISTRY_PG_DIR"
                exit 1
            fi
        else
            log "removing the stale pid file of a server that is gone (pid ${pid:-?})"
            rm -f "$DATA/postmaster.pid"
        fi
    fi
fi

if ! as_owner "$BIN/pg_isready" -q -h "$SOCKETS" -p "$PORT" 2>/dev/null; then
    log "starting PostgreSQL on 127.0.0.1:$PORT (socket dir $SOCKETS, log $BASE/server.log)"
    # 9>&-: the server must not inherit (and hold) our lock.
    as_owner "$BIN/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 60 start 9>&- \
        -o "-p $PORT -k $SOCKETS -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >&2 \
        || { log "pg_ctl start failed; the end of $BASE/server.log:"; tail -n 5 "$BASE/server.log" >&2; exit 1; }
fi

# The role and the database, idempotently.
psql_admin <<SQL >&2
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', '$ROLE', '$PASSWORD')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$ROLE') \gexec
ALTER ROLE "$ROLE" LOGIN PASSWORD '$PASSWORD';
SELECT format('CREATE DATABASE %I OWNER %I', '$DB', '$ROLE')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB') \gexec
SQL

echo "$URL"
