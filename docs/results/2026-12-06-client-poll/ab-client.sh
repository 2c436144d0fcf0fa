#!/usr/bin/env bash
# The C client's polling for an answer off (pollForAnswerUs=0) and on (the default, 50 µs), against one
# factumd --insecure each round (fresh db on $TMPD), workloads $ONLY (--quick), R rounds alternating.
# Medians: awk -f ../2026-12-06-tls-path/med.awk OUTPUT.
set -u
TMPD=${TMPD:-/dev/shm}; R=${R:-3}; ONLY=${ONLY:-W1,W2,W3,W4,W6,W11,W12}
FACTUMD=${FACTUMD:-build/bench/factumd}; BENCH=${BENCH:-build/bench/bench/factum-bench-network}
for r in $(seq 1 $R); do
  order="off on"; [ $((r % 2)) = 0 ] && order="on off"
  for v in $order; do
    x=""; [ $v = off ] && x="&pollForAnswerUs=0"
    d=$(mktemp -d $TMPD/abc.XXXX)
    $FACTUMD --insecure --db $d/db --node-ip 127.0.0.1 --node-port 2193 > $d/log 2>&1 & pid=$!
    for i in $(seq 50); do grep -q listening $d/log && break; sleep 0.1; done
    FACTUM_BENCH_SERVER_PID=$pid $BENCH "kurrentdb://127.0.0.1:2193?tls=false$x" --quick --only $ONLY --system "poll-$v" \
      | grep '^@' | sed "s/^@/@ r$r/"
    kill $pid; wait $pid 2>/dev/null; rm -rf $d
  done
done
