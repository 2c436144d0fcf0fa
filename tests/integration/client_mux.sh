#!/usr/bin/env bash
# client_mux.sh - the C client's multiplexing and pipelining
# (tests/integration/client_mux.c) against a real factumd on a free port of
# 127.0.0.1 with an in-memory database. With factum and tls_proxy
# (tests/integration/tls_proxy.c) given, the program runs first over TLS
# (OpenSSL's server in front of factumd, certificates from `factum certs
# dev`) without its last check; then in cleartext, where it kills the
# server (FACTUMD_PID) as its last check.
# Usage: tests/integration/client_mux.sh /path/to/factumd /path/to/client_mux [/path/to/factum /path/to/tls_proxy]
set -euo pipefail
factumd=$(realpath "$1")
prog=$(realpath "$2")
FACTUM=${3:+$(realpath "$3")}
tls_proxy=${4:+$(realpath "$4")}
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/integration-client-mux.XXXXXX")
pid="" ppid=""
cleanup() {
  [ -z "$ppid" ] || kill "$ppid" 2>/dev/null || true
  [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/../../scripts/lib.sh"
factumd_start "$T/factumd.log" "$factumd" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
if [ -n "$tls_proxy" ]; then
  "$FACTUM" certs dev --out "$T/certs" >/dev/null
  "$tls_proxy" "$T/certs/node/node.crt" "$T/certs/node/node.key" "$factumd_port" >"$T/proxy" 2>"$T/proxy.err" &
  ppid=$!
  pport=""
  for _ in $(seq 100); do
    pport=$(sed -n 's/^port //p' "$T/proxy")
    [ -n "$pport" ] && break
    sleep 0.05
  done
  [ -n "$pport" ] || { echo "tls_proxy did not start: $(cat "$T/proxy.err")" >&2; exit 1; }
  echo "== over TLS (tls_proxy on port $pport)"
  FACTUMD_URL="kurrentdb://localhost:$pport?tlsCAFile=$T/certs/ca/ca.crt" FACTUM_MUX_NO_KILL=1 "$prog"
  kill "$ppid" 2>/dev/null || true
  ppid=""
fi
echo "== cleartext"
export FACTUMD_URL="kurrentdb://127.0.0.1:$factumd_port?tls=false" FACTUMD_PID=$pid
"$prog"
