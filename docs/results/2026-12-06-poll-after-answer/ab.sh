#!/usr/bin/env bash
# Medians: awk -f ../2026-12-06-tls-path/med.awk OUTPUT.
# BEFORE/AFTER factumd --insecure, one at a time, fresh db on $TMPD, workloads $ONLY (--quick), R rounds alternating.
set -u
TMPD=${TMPD:-/dev/shm}; R=${R:-3}; ONLY=${ONLY:-W1,W4,W6,W11}
for r in $(seq 1 $R); do
  order="before after"; [ $((r % 2)) = 0 ] && order="after before"
  for v in $order; do
    [ $v = before ] && F=$BEFORE || F=$AFTER
    d=$(mktemp -d $TMPD/ab2.XXXX)
    $F --insecure --db $d/db --node-ip 127.0.0.1 --node-port 2180 > $d/log 2>&1 & pid=$!
    for i in $(seq 50); do grep -q listening $d/log && break; sleep 0.1; done
    FACTUM_BENCH_SERVER_PID=$pid $BENCH "kurrentdb://127.0.0.1:2180?tls=false" --quick --only $ONLY --system "$v" | grep '^@' | sed "s/^@/@ r$r/"
    kill $pid; wait $pid 2>/dev/null; rm -rf $d
  done
done
