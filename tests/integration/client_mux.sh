#!/usr/bin/env bash
# client_mux.sh - the C client's multiplexing and pipelining
# (tests/integration/client_mux.c) against a real factumd on a free port of
# 127.0.0.1 with an in-memory database; the program kills the server
# (FACTUMD_PID) as its last check.
# Usage: tests/integration/client_mux.sh /path/to/factumd /path/to/client_mux
set -euo pipefail
factumd=$(realpath "$1")
prog=$(realpath "$2")
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/integration-client-mux.XXXXXX")
pid=""
cleanup() {
  [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/../../scripts/lib.sh"
factumd_start "$T/factumd.log" "$factumd" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
export FACTUMD_URL="kurrentdb://127.0.0.1:$factumd_port?tls=false" FACTUMD_PID=$pid
"$prog"
