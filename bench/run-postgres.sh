#!/usr/bin/env bash
# Starts a private PostgreSQL 15 on 127.0.0.1 (its own temporary data
# directory and port; installed from Debian if missing), runs
# factum-bench-systems postgres (W1-W8) against it, and stops it. Settings, written down:
#   fsync=on, synchronous_commit=on, wal_sync_method=fdatasync,
#   shared_buffers=1GB, max_connections=1100 (W3 with 256 clients; W12's
#   1,000 LISTENing subscribers, a connection each; PG_MAX_CONNECTIONS=N
#   to change it).
# Usage: bench/run-postgres.sh [--quick] [--big] [--only W1,W2,...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh postgres
bin=/usr/lib/postgresql/15/bin
. bench/lib.sh
bench_build factum-bench-systems # FACTUM_BENCH_BUILD=DIR: use an existing build directory
dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-pg.XXXXXX)
port=${PGPORT_BENCH:-25432} # below the ephemeral range (32768-60999): no client socket holds it
chown -R postgres "$dir" 2>/dev/null || true
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
as_pg "$bin/initdb -D $dir/data -U bench -A trust >/dev/null"
as_pg "$bin/pg_ctl -D $dir/data -l $dir/log -w -o \"-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c wal_sync_method=fdatasync -c shared_buffers=1GB -c max_connections=${PG_MAX_CONNECTIONS:-1100}\" start >/dev/null"
trap 'as_pg "$bin/pg_ctl -D $dir/data -m fast stop >/dev/null" || true; rm -rf "$dir"' EXIT
as_pg "$bin/createdb -h 127.0.0.1 -p $port -U bench bench" 2>/dev/null || true
export FACTUM_BENCH_SERVER_PID=$(head -1 "$dir/data/postmaster.pid") # W12: the postmaster and its backends
echo "PostgreSQL 15, fsync=on, synchronous_commit=on (durable), 127.0.0.1:$port"
"$b"/bench/factum-bench-systems postgres "host=127.0.0.1 port=$port user=bench dbname=bench" "$@"
