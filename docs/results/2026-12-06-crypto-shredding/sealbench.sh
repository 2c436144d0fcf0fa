#!/bin/bash
# Crypto-shredding's cost (issue 16, ADR 0027): the same benchmark binary with
# and without --seal (every workload stream a data subject's), embedded,
# durable, on the disk; rounds alternate which runs first.
# usage: sealbench.sh DIR [ROUNDS] [WORKLOADS]
dirbase=$1; rounds=${2:-3}; only=${3:-W1,W2,W3,W4,W5}; extra=${EXTRA:-}
b=${BENCH:-/work/main/build/bench/bench/factum-bench-embedded}
mkdir -p "$dirbase"
for r in $(seq 1 $rounds); do
  order="plain sealed"; [ $((r % 2)) = 0 ] && order="sealed plain"
  for which in $order; do
    d=$dirbase/sb-$which-$r; rm -rf $d
    flag=; [ $which = sealed ] && flag=--seal
    $b --dir $d --quick $flag $extra --only $only 2>&1 | grep '^@' | sed "s/^@ [^ ]*/@ $which/"
    rm -rf $d
  done
done
