#!/usr/bin/env bash
# A/B of two builds on the machine's disk: for each build in turn (the
# order alternating per round), one factumd --insecure (commit-mode auto) on
# a fresh database, then W1 --quick from that build's C client with the
# default pollForAnswerUs (CL-8, CL-9). R rounds.
# Usage: A=/path/to/build/bench B=/path/to/build/bench [R=4] [DIR=/var/tmp] disk-ab.sh > out.txt
set -euo pipefail
R=${R:-4}
for r in $(seq 1 "$R"); do
  order=(A B)
  [ $((r % 2)) = 0 ] && order=(B A)
  for v in "${order[@]}"; do
    build=${!v}
    d=$(mktemp -d "${DIR:-/var/tmp}"/factum-disk-ab.XXXXXX)
    "$build"/factumd --insecure --db "$d/db" --node-ip 127.0.0.1 --node-port 2196 >"$d/log" 2>&1 &
    sp=$!
    sleep 1
    probe=$(grep -ho "disk: [0-9]* us" "$d/log" || true)
    out=$("$build"/bench/factum-bench-network "kurrentdb://127.0.0.1:2196?tls=false" --only W1 --quick |
      grep '^| W1' | cut -d'|' -f5,6 | tr -s ' ')
    kill "$sp"
    wait "$sp" || true
    rm -rf "$d"
    echo "round $r build $v ($probe)$out"
  done
done
