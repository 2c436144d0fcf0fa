#!/usr/bin/env bash
# Graceful shutdown under load: appenders run against factumd, SIGTERM comes
# in the middle; the server must exit 0, and after a restart on the same
# database every acknowledged append must be there.
# Usage: tests/integration/shutdown.sh /path/to/factumd
set -euo pipefail
factumd=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../../scripts/lib.sh"
cd "$here/node"
[ -d node_modules/@kurrent/kurrentdb-client ] || npm ci --no-audit --no-fund >/dev/null
work=$(mktemp -d /tmp/factum-shutdown.XXXXXX)
pid=""
trap '[ -z "$pid" ] || kill -9 $pid 2>/dev/null || true; rm -rf "$work"' EXIT
# Each start empties the log first: the restart must not read the first
# run's port (scripts/lib.sh).
start() {
  factumd_start "$work/log" "$factumd" --insecure --db "$work/db" --node-ip 127.0.0.1 --node-port 0
  pid=$factumd_pid port=$factumd_port
  export FACTUMD_URL="kurrentdb://127.0.0.1:$port?tls=false"
}
start
node appender.js >"$work/acked" 2>/dev/null &
apid=$!
sleep 2
kill -TERM "$pid"
if ! wait "$pid"; then echo "factumd did not exit cleanly on SIGTERM"; cat "$work/log"; exit 1; fi
wait "$apid" || true
echo "$(wc -l <"$work/acked") appends acknowledged before SIGTERM"
grep -q "stopped" "$work/log" || { echo "no clean stop in the log"; cat "$work/log"; exit 1; }
start
node verify-acked.js "$work/acked"
kill -TERM "$pid"; wait "$pid"
