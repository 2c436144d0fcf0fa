#!/usr/bin/env bash
# Runs the integration suite: starts a real factumd (temporary database, a
# free port on 127.0.0.1), runs every Node test file against it, each in its
# own process (the two official clients cannot share one), then stops the
# server with SIGTERM and checks that it shut down cleanly.
#
# Secure mode (--secure first, or FACTUM_SECURE=1): certificates for
# 127.0.0.1/localhost from a fresh CA (mkcerts.sh), factumd started with them
# instead of --insecure, and the same files run against
# kurrentdb://admin:changeit@127.0.0.1:PORT?tls=true&tlsCAFile=CA (both
# official clients). Files that start a factumd of their own (with
# --insecure) do so as before.
# With --disk-uring, the shared factumd keeps its database on disk (a
# temporary directory) and the event loop leads the group commit through
# io_uring (--commit-mode io-uring, ADR 0020); the run fails if it fell back.
# With --commit-loop, the shared factumd's event loop makes every append's
# fdatasync itself (--commit-mode loop, ADR 0024); the run fails if it does
# not say so.
# Usage: tests/integration/run.sh [--secure] [--disk-uring|--commit-loop] /path/to/factumd [test files...]
set -euo pipefail
secure=${FACTUM_SECURE:-0}
if [ "${1:-}" = --secure ]; then secure=1; shift; fi
uring=0 loop=0
if [ "${1:-}" = --disk-uring ]; then uring=1; shift; fi
if [ "${1:-}" = --commit-loop ]; then loop=1; shift; fi
factumd=$(realpath "$1"); shift
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/node"
if [ ! -d node_modules/@kurrent/kurrentdb-client ] || [ ! -d node_modules/@eventstore/db-client ]; then
  npm ci --no-audit --no-fund >/dev/null
fi
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
  for f in *.test.js; do
    # In secure mode, only the files that use the shared server (FACTUMD_URL,
    # in the file or a module it requires): the others start a factumd of
    # their own with --insecure, and the insecure run has run them.
    if [ "$secure" = 1 ]; then
      mods=$(sed -n "s/.*require('\.\/\([^']*\)').*/\1.js/p" "$f")
      # shellcheck disable=SC2086
      grep -q FACTUMD_URL "$f" $mods 2>/dev/null || continue
    fi
    files+=("$f")
  done
fi
log=$(mktemp)
certs=$(mktemp -d)
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$secure" = 1 ]; then
  bash "$here/mkcerts.sh" "$certs"
  mode=(--certificate-file "$certs/node.crt" --certificate-private-key-file "$certs/node.key"
        --trusted-root-certificates-path "$certs/ca")
else
  mode=(--insecure)
fi
db=(--mem-db)
[ "$uring" = 1 ] && db=(--db "$certs/db" --commit-mode io-uring)
[ "$loop" = 1 ] && db=(--mem-db --commit-mode loop)
"$factumd" "${mode[@]}" "${db[@]}" --node-ip 127.0.0.1 --node-port 0 >"$log" 2>&1 &
pid=$!
cleanup() { kill -9 "$pid" 2>/dev/null || true; rm -rf "$log" "$certs"; }
trap cleanup EXIT
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -1)
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "factumd exited early"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "factumd did not start"; exit 1; }
if [ "$uring" = 1 ] || [ "$loop" = 1 ]; then
  for _ in $(seq 1 50); do grep -q "appends:" "$log" && break; sleep 0.1; done
  if [ "$uring" = 1 ]; then want="the event loop leads the group commit (io_uring)"
  else want="the event loop makes the fdatasyncs itself"; fi
  grep -q "appends: $want" "$log" || { cat "$log"; echo "factumd did not say: $want"; exit 1; }
  # and /metrics tells who makes the fdatasyncs: 3 the loop through io_uring, 2 the loop itself
  level=$([ "$uring" = 1 ] && echo 3 || echo 2)
  metrics=$(curl -s "http://127.0.0.1:$port/metrics") || { echo "no /metrics"; exit 1; }
  grep -q "^factum_commit_level $level\$" <<<"$metrics" ||
    { grep "^factum_commit" <<<"$metrics"; echo "factum_commit_level is not $level"; exit 1; }
fi
# FACTUMD_BIN: for the files that start a factumd of their own with other
# settings (projections-*.test.js: --run-projections).
# FACTUMD_HTTP: the base URL of the HTTP endpoints (and raw HTTP/2) for the
# files that speak to the port without a client library; FACTUMD_TLS=1 and
# NODE_EXTRA_CA_CERTS (Node's fetch, https, http2 and tls trust the test CA)
# in secure mode.
if [ "$secure" = 1 ]; then
  export FACTUMD_URL="kurrentdb://admin:changeit@127.0.0.1:$port?tls=true&tlsCAFile=$certs/ca/ca.crt"
  export FACTUMD_HTTP="https://127.0.0.1:$port" FACTUMD_TLS=1 NODE_EXTRA_CA_CERTS=$certs/ca/ca.crt
else
  export FACTUMD_URL="kurrentdb://127.0.0.1:$port?tls=false" FACTUMD_HTTP="http://127.0.0.1:$port"
fi
export FACTUMD_PORT=$port FACTUMD_PID=$pid FACTUMD_BIN=$factumd
status=0
for f in "${files[@]}"; do
  echo "== $f against factumd on port $port$([ "$secure" = 1 ] && echo ' (TLS)')"
  if ! node --test --test-reporter=spec "$f"; then status=1; fi
done
kill -TERM "$pid"
if ! wait "$pid"; then echo "factumd did not shut down cleanly"; cat "$log"; status=1; fi
trap - EXIT
grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$log" && status=1
rm -rf "$log" "$certs"
exit $status
