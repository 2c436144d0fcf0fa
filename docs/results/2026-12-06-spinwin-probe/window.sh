#!/usr/bin/env bash
# The client's pollForAnswerUs (50, 100, 200) against one factumd --insecure
# and one with TLS + admin:changeit, both on tmpfs, W1 and W11 --quick,
# R rounds; prints "US WORKLOAD tls RATE ins RATE" lines, then medians.
# Usage: BUILD=build/bench [R=8] window.sh > out.txt
set -euo pipefail
cd "$(dirname "$0")/../../.."
BUILD=${BUILD:-build/bench}
R=${R:-8}
d=$(mktemp -d /dev/shm/factum-window.XXXXXX)
trap 'kill $sp $ip 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$d"' EXIT
"$BUILD"/factum certs dev --out "$d/certs" >/dev/null
"$BUILD"/factumd --db "$d/s" --node-ip 127.0.0.1 --node-port 2193 --certificate-file "$d/certs/node/node.crt" \
  --certificate-private-key-file "$d/certs/node/node.key" --trusted-root-certificates-path "$d/certs/ca" >"$d/slog" 2>&1 &
sp=$!
"$BUILD"/factumd --insecure --db "$d/i" --node-ip 127.0.0.1 --node-port 2194 >"$d/ilog" 2>&1 &
ip=$!
sleep 1
N=$BUILD/bench/factum-bench-network
rate() { "$N" "$1" --only "$2" --quick | awk '$1 == "@" && ($4 == "ev_per_s" || $4 == "calls_per_s") { print $5 }'; }
out=$d/raw
for r in $(seq 1 "$R"); do
  for p in 50 100 200; do
    S="kurrentdb://admin:changeit@localhost:2193?tlsCAFile=$d/certs/ca/ca.crt&pollForAnswerUs=$p"
    I="kurrentdb://127.0.0.1:2194?tls=false&pollForAnswerUs=$p"
    for w in W1 W11; do echo "$p $w tls $(rate "$S" $w) ins $(rate "$I" $w)" | tee -a "$out"; done
  done
done
python3 - "$out" <<'PY'
import collections, statistics, sys
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
    p, w, _, t, _, i = l.split()
    d[(int(p), w, 'tls')].append(float(t)); d[(int(p), w, 'insecure')].append(float(i))
for k in sorted(d):
    print('pollForAnswerUs=%d %s %s: median %.0f [%.0f-%.0f]' % (k + (statistics.median(d[k]), min(d[k]), max(d[k]))))
PY
