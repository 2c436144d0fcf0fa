#!/usr/bin/env bash
# CL-9 on the disk: one factumd --insecure (commit-mode auto) on a fresh
# database on the machine's disk, W1 --quick from the C client with
# pollForAnswerUs=0 (never polls), the default 50 (CL-8's window, closed by
# answers slower than it, then CL-9's sleep-then-poll) and 300 (polls through
# the whole fdatasync), R rounds alternating; then the embedded W1 on the
# same disk. CPU: the client program's, and factumd's in clock ticks.
# Usage: BUILD=build/bench [R=4] [DIR=/var/tmp] lead.sh > out.txt
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${BUILD:-build/bench}
R=${R:-4}
d=$(mktemp -d "${DIR:-/var/tmp}"/factum-lead.XXXXXX)
trap 'kill $sp 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$d"' EXIT
"$BUILD"/factumd --insecure --db "$d/db" --node-ip 127.0.0.1 --node-port 2195 >"$d/log" 2>&1 &
sp=$!
sleep 1
grep -h "fdatasync of" "$d/log" | sed 's/^[^ ]* [A-Z]* *//'
N=$BUILD/bench/factum-bench-network
for r in $(seq 1 "$R"); do
  for p in 0 50 300; do
    # the client's CPU (user + system) over the whole program, which also
    # measures the loopback round trip before W1
    t0=$(awk '{print $14 + $15}' /proc/$sp/stat)
    out=$( { TIMEFORMAT='client cpu %3U + %3S s'; time "$N" "kurrentdb://127.0.0.1:2195?tls=false&pollForAnswerUs=$p" \
      --only W1 --quick; } 2>&1 | grep -E '^\| W1|client cpu' | cut -d'|' -f5,6 | tr '\n' ' ')
    t1=$(awk '{print $14 + $15}' /proc/$sp/stat)
    echo "round $r pollForAnswerUs=$p $out factumd cpu $((t1 - t0)) ticks"
  done
done
mkdir "$d/emb"
echo "embedded $("$BUILD"/bench/factum-bench-embedded --dir "$d/emb" --only W1 --quick | grep '^| W1' | cut -d'|' -f4,5)"
