#!/usr/bin/env bash
# bench.sh - `factum bench` on a local store: every workload runs, prints its
# figures, W7's check passes, the data really is in the store afterwards, and
# bad arguments are usage errors. (Against a server: tests/integration/client.sh.)
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store

f 0 bench --count 1000 --clients 4 --workload W1,W2,W3,W4,W5,W7
contains "$OUT" "embedded"
for w in W1 W2 W3 W4 W5; do contains "$OUT" "$w " "workload $w"; done
contains "$OUT" "ev/s"
contains "$OUT" "PASS"
lacks "$OUT" "FAIL"
# 1,000 W1 events + 10,000 W2 + 1,000 W3 + 1,000 W4 + W7's successes are in the log.
f 0 read '$all' --json --count 20000
n=$(wc -l <<<"$OUT")
[ "$n" -ge 13000 ] || fail "only $n events in the store after bench"
f 0 verify
f 2 bench --workload W6
contains "$ERR" "unknown workload"
f 2 bench --count 0
f 2 bench --clients 5000
f 0 bench --help
contains "$OUT" "usage: factum"
