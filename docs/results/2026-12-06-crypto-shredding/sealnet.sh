#!/bin/bash
# Crypto-shredding's cost over the network: the same factumd with and without
# --master-key-file --shred-categories w1,...,w5 (every workload stream a data
# subject's; nearly all of W1-W3's streams are new subjects), the C client's
# benchmark, durable, on the disk; rounds alternate which runs first.
# usage: sealnet.sh DIR [ROUNDS] [WORKLOADS]
dirbase=$1; rounds=${2:-3}; only=${3:-W1,W2,W3,W4,W5}
. /work/main/scripts/lib.sh
b=${BUILD:-/work/main/build/bench}
mkdir -p "$dirbase"
head -c 32 /dev/urandom > "$dirbase/master.key"; chmod 600 "$dirbase/master.key"
for r in $(seq 1 $rounds); do
  order="plain sealed"; [ $((r % 2)) = 0 ] && order="sealed plain"
  for which in $order; do
    d=$dirbase/sn-$which-$r; rm -rf $d; mkdir -p $d
    seal=(); [ $which = sealed ] && seal=(--master-key-file "$dirbase/master.key" --shred-categories w1,w2,w3,w4,w5)
    factumd_start $d.log $b/factumd --insecure --db $d/db --node-ip 127.0.0.1 --node-port 0 "${seal[@]}" || exit 1
    $b/bench/factum-bench-network "kurrentdb://127.0.0.1:$factumd_port?tls=false" --only $only --quick --system x 2>&1 | grep '^@' | sed "s/^@ [^ ]*/@ $which/"
    kill -TERM $factumd_pid; while kill -0 $factumd_pid 2>/dev/null; do sleep 0.1; done
    [ $which = sealed ] && ! grep -q . $d/db/keys/keystore && echo "no keys: nothing was sealed" >&2
    rm -rf $d $d.log
  done
done
