#!/usr/bin/env bash
# Run a command beside a private PostgreSQL 15: its own temporary data
# directory, on 127.0.0.1 at a free port, stopped and deleted afterwards.
# The command finds the connection string in FACTUM_TEST_PG. Installs
# PostgreSQL from Debian if missing (scripts/deps.sh postgres).
# Usage: tests/lib/with-postgres.sh COMMAND [ARGS...]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=/usr/lib/postgresql/15/bin
[ -x "$bin/initdb" ] || "$root/scripts/deps.sh" postgres >/dev/null
dir=$(mktemp -d /tmp/factum-test-pg.XXXXXX)
chmod 755 "$dir"
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 10000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "no free port for PostgreSQL" >&2; exit 1; }
as_pg "$bin/initdb -D $dir/data -U factum -A trust >/dev/null"
as_pg "$bin/pg_ctl -D $dir/data -l $dir/log -w -o \"-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100\" start >/dev/null"
trap 'as_pg "$bin/pg_ctl -D $dir/data -m immediate stop >/dev/null" 2>/dev/null || true; rm -rf "$dir"' EXIT
as_pg "$bin/createdb -h 127.0.0.1 -p $port -U factum factum"
export FACTUM_TEST_PG="host=127.0.0.1 port=$port user=factum dbname=factum"
echo "PostgreSQL 15 on 127.0.0.1:$port (fsync=off: a test instance)"
"$@"
