#!/usr/bin/env bash
# bench/run-cold-reads.sh: a cold $all read beside a small-read client (ADR 0023;
# docs/PERFORMANCE.md, "Cold reads off the loop"). EVENTS events of 1,000
# bytes are written; then, for each run and each --cold-reads mode (never:
# every read on the loop, as before the reader pool; detect: cold pages on
# the reader threads), the log's files are dropped from the page cache (only
# the store's own files: dd iflag=nocache), factumd starts, W11 loads its
# streams, and W11 (--quick) runs back to back while factum-bench-client
# reads all of $all once. Prints W11's p50/p99 for each run that overlapped
# the cold read, the cold read's rate and the hand-offs to the pool.
# FACTUM_BENCH_BUILD=DIR names a Release build (default build/rel).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${FACTUM_BENCH_BUILD:-build/rel}
dir=$(mktemp -d /tmp/factum-cold.XXXXXX)
trap 'rm -rf "$dir"' EXIT
start() {
  "$B"/factumd --insecure --db "$dir/db" --node-ip 127.0.0.1 --node-port 0 --cold-reads "$1" >"$dir/srv.log" 2>&1 &
  SP=$!
  P=
  for _ in $(seq 100); do
    P=$(grep -o "127.0.0.1:[0-9]*" "$dir/srv.log" | head -1 | cut -d: -f2 || true)
    [ -n "$P" ] && break
    sleep 0.2
  done
}
start never
"$B"/bench/factum-bench-client "kurrentdb://127.0.0.1:$P?tls=false" --events "${EVENTS:-300000}" --size 1000 \
  --page 1000 --rounds 1 | tail -1
kill -TERM "$SP"; wait "$SP" || true
for run in 1 2; do
  for mode in never detect; do
    for f in "$dir"/db/log/*; do dd if="$f" iflag=nocache count=0 status=none; done
    start "$mode"
    U="kurrentdb://127.0.0.1:$P?tls=false"
    "$B"/bench/factum-bench-network "$U" --quick --only W11 >/dev/null 2>&1
    "$B"/bench/factum-bench-client "$U" --no-load --page 1000 --rounds 1 >"$dir/big.out" 2>&1 &
    CP=$!
    k=0
    while kill -0 "$CP" 2>/dev/null; do
      k=$((k + 1))
      echo "run $run $mode W11 #$k: $("$B"/bench/factum-bench-network "$U" --quick --only W11 2>&1 |
        grep '@ factumd W11 p' | tr '\n' ' ')"
    done
    wait "$CP" || true
    echo "run $run $mode cold read: $(tail -1 "$dir/big.out")"
    echo "run $run $mode $(curl -s "http://127.0.0.1:$P/metrics" | grep '^factum_reads_off_loop_total')"
    kill -TERM "$SP"; wait "$SP" || true
  done
done
