#!/usr/bin/env bash
# A/B of two builds (A: before, B: after), each running
# bench/run-network.sh --secure (factumd insecure and with TLS + admin:changeit,
# side by side) on tmpfs, R rounds, the builds' order alternating per round.
# Usage: A=/path/to/build/bench B=/path/to/build/bench [R=3] [ONLY=W1,W3,W11] ab.sh > out.txt
set -euo pipefail
cd "$(dirname "$0")/../../.."
R=${R:-3}
ONLY=${ONLY:-W1,W3,W11}
for r in $(seq 1 "$R"); do
  order=(A B)
  [ $((r % 2)) = 0 ] && order=(B A)
  for v in "${order[@]}"; do
    build=${!v}
    echo "== round $r build $v"
    FACTUM_BENCH_TMP=${FACTUM_BENCH_TMP:-/dev/shm} FACTUM_BENCH_BUILD=$build \
      bench/run-network.sh --secure --quick --only "$ONLY" ${EXTRA:-} | grep -E '^\| (W|CALLS|SETUP)'
  done
done
