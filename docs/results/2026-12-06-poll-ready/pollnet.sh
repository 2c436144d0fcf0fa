#!/bin/bash
# POLL_READY: factumd at b1fa00b (pre) against HEAD with FACTUM_DRIVER_POLL_READY (post), one at a time, alternating
dirbase=$1; rounds=${2:-3}; only=${3:-W1,W3}
. /work/main/scripts/lib.sh
pre=/tmp/prechain/build; post=/work/main/build/bench
for r in $(seq 1 $rounds); do
  for which in pre post; do
    [ $((r % 2)) = 0 ] && { [ $which = pre ] && which=post || which=pre; }
    b=$pre; [ $which = post ] && b=$post
    d=$dirbase/cn-$which-$r; rm -rf $d; mkdir -p $d
    factumd_start $d.log $b/factumd --insecure --db $d/db --node-ip 127.0.0.1 --node-port 0 || exit 1
    $post/bench/factum-bench-network "kurrentdb://127.0.0.1:$factumd_port?tls=false" --only $only --quick --system x 2>&1 | grep '^@' | grep -E 'ev_per_s|p50' | sed "s/^@ [^ ]*/@ $which/"
    kill -TERM $factumd_pid; while kill -0 $factumd_pid 2>/dev/null; do sleep 0.1; done
    rm -rf $d $d.log
  done
done
