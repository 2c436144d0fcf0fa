#!/usr/bin/env bash
# Runs the integration suite: starts a real factumd (temporary database, a
# free port on 127.0.0.1), runs every Node test file against it, each in its
# own process (the two official clients cannot share one), then stops the
# server with SIGTERM and checks that it shut down cleanly.
# Usage: tests/integration/run.sh /path/to/factumd [test files...]
set -euo pipefail
factumd=$(realpath "$1"); shift
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/node"
if [ ! -d node_modules/@kurrent/kurrentdb-client ] || [ ! -d node_modules/@eventstore/db-client ]; then
  npm ci --no-audit --no-fund >/dev/null
fi
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(*.test.js)
log=$(mktemp)
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$factumd" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0 >"$log" 2>&1 &
pid=$!
cleanup() { kill -9 "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "factumd exited early"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "factumd did not start"; exit 1; }
# FACTUMD_BIN: for the files that start a factumd of their own with other
# settings (projections-*.test.js: --run-projections).
export FACTUMD_URL="kurrentdb://127.0.0.1:$port?tls=false" FACTUMD_PORT=$port FACTUMD_PID=$pid FACTUMD_BIN=$factumd
status=0
for f in "${files[@]}"; do
  echo "== $f against factumd on port $port"
  if ! node --test --test-reporter=spec "$f"; then status=1; fi
done
kill -TERM "$pid"
if ! wait "$pid"; then echo "factumd did not shut down cleanly"; cat "$log"; status=1; fi
trap - EXIT
grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$log" && status=1
rm -f "$log"
exit $status
