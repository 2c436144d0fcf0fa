#!/bin/bash
# chain cost: pre-chain (c641928) against chain (d9cae0d), embedded W1,W2,W3, alternating
dirbase=$1; rounds=${2:-3}; only=${3:-W1,W2,W3}
pre=/tmp/prechain/build/bench/factum-bench-embedded
post=/work/main/build/bench/bench/factum-bench-embedded
for r in $(seq 1 $rounds); do
  for which in pre post; do
    [ $((r % 2)) = 0 ] && { [ $which = pre ] && which=post || which=pre; }
    b=$pre; [ $which = post ] && b=$post
    d=$dirbase/cb-$which-$r; rm -rf $d
    $b --dir $d --quick --only $only 2>&1 | grep '^@' | sed "s/^@ [^ ]*/@ $which/"
    rm -rf $d
  done
done
