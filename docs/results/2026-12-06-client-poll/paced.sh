#!/usr/bin/env bash
# One factumd --insecure (default --poll-after-answer-us 100) on a fresh db in $TMPD; the paced
# client at each pause, with the client's polling off (pollForAnswerUs=0) and on (the default, 50 µs).
# Build: gcc -O2 -Iinclude -o /tmp/paced docs/results/2026-12-06-client-poll/paced-client.c \
#          -Lbuild/bench -lfactum-client -Wl,-rpath,$PWD/build/bench
set -u
TMPD=${TMPD:-/dev/shm}; FACTUMD=${FACTUMD:-build/bench/factumd}; PACED=${PACED:-/tmp/paced}
d=$(mktemp -d $TMPD/paced.XXXX)
$FACTUMD --insecure --db $d/db --node-ip 127.0.0.1 --node-port 2191 > $d/log 2>&1 & pid=$!
for i in $(seq 50); do grep -q listening $d/log && break; sleep 0.1; done
for p in 1000 100 50 0; do
  for x in "&pollForAnswerUs=0" ""; do
    l=50; [ -n "$x" ] && l=0
    echo "usleep $p, the client polls ${l} µs: $($PACED "kurrentdb://127.0.0.1:2191?tls=false$x" $pid $p)"
  done
done
kill $pid; wait $pid 2>/dev/null; rm -rf $d
