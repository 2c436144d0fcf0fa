#!/usr/bin/env bash
# The application toolkit (issue 14): loading an aggregate of 10,000 events
# (examples/bank's account) with and without a snapshot, p50/p99:
#   embedded  factum-bench-app embedded (bench/app.c): factum_decider_load
#             on libfactum
#   network   factum-bench-app network: the same through factumd
#             (--insecure, on the same store) with the C client: the remote
#             decider reads $snapshots-S, then the stream
# The store is written once (fill, relaxed durability: setup). Warm loads
# (the log in the page cache), LOADS of each kind after 5 warm-up loads.
# Usage: bench/run-app.sh [--quick] [--events N] [--loads N]
# FACTUM_BENCH_BUILD=DIR uses an existing build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
events=10000 loads=200
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) loads=50 ;;
    --events) events=$2; shift ;;
    --loads) loads=$2; shift ;;
    *) echo "usage: $0 [--quick] [--events N] [--loads N]" >&2; exit 2 ;;
  esac
  shift
done
. bench/lib.sh
. scripts/lib.sh
bench_build factumd factum-bench-app
T=$(mktemp -d "${TMPDIR:-/tmp}/factum-bench-app.XXXXXX")
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
"$b/bench/factum-bench-app" fill "$T/db" "$events"
"$b/bench/factum-bench-app" embedded "$T/db" "$loads"
factumd_start "$T/factumd.log" "$b/factumd" --insecure --db "$T/db" --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
"$b/bench/factum-bench-app" network "kurrentdb://127.0.0.1:$factumd_port?tls=false" "$loads"
kill -TERM "$pid"; wait "$pid" || true; pid=""
