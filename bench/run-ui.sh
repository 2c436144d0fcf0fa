#!/usr/bin/env bash
# The admin UI's figures (issue 17; docs/PERFORMANCE.md "The admin web UI"):
#  1. page load times, cold and local: the dashboard, and the page of a
#     10,000-event stream (bench/ui-load.js, 20 loads each);
#  2. the UI's cost to W1 and W3 (factum-bench-network, the C client): each run
#     against a fresh durable factumd, in turn without the UI (plain), with a
#     dashboard open in a headless chromium on the same machine refreshing
#     every second (watched: bench/ui-watch.js), and with only the dashboard's
#     requests (GET /info and /metrics every second, by curl: polled, factumd's
#     share of the cost without the browser's CPU); ROUNDS rounds.
# Needs chromium and tests/browser's npm packages (scripts/deps.sh test).
# Usage: bench/run-ui.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
. bench/lib.sh
. scripts/lib.sh
bench_build factumd factum-bench-network factum
[ -d tests/browser/node_modules/playwright-core ] || (cd tests/browser && npm ci --no-audit --no-fund >/dev/null)
dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-uibench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT

echo "== page load times (cold, local) =="
factumd_start "$dir/f.log" "$b/factumd" --insecure --db "$dir/load" --node-ip 127.0.0.1 --node-port 0
url="kurrentdb://127.0.0.1:$factumd_port?tls=false"
for i in $(seq 0 99); do
  for k in $(seq 0 99); do printf '{"type":"Sold","data":{"i":%d,"amount":%d}}\n' $((i * 100 + k)) $k; done
done > "$dir/big.ndjson"
"$b/factum" --server "$url" append big-1 --file "$dir/big.ndjson" >/dev/null
node bench/ui-load.js "http://127.0.0.1:$factumd_port" 20
kill -TERM "$factumd_pid"; while kill -0 "$factumd_pid" 2>/dev/null; do sleep 0.1; done

echo "== W1 and W3 with and without a dashboard refreshing every second =="
for r in $(seq 1 "$rounds"); do
  order="plain watched polled"; [ $((r % 2)) = 0 ] && order="polled watched plain"
  for which in $order; do
    rm -rf "$dir/db"
    factumd_start "$dir/f.log" "$b/factumd" --insecure --db "$dir/db" --node-ip 127.0.0.1 --node-port 0
    w=""
    if [ "$which" = watched ]; then
      node bench/ui-watch.js "http://127.0.0.1:$factumd_port" > "$dir/watch.log" 2>&1 &
      w=$!
      for _ in $(seq 1 100); do grep -q watching "$dir/watch.log" && break; sleep 0.1; done
    elif [ "$which" = polled ]; then
      (while :; do curl -s -o /dev/null "http://127.0.0.1:$factumd_port/info";
                   curl -s -o /dev/null "http://127.0.0.1:$factumd_port/metrics"; sleep 1; done) &
      w=$!
    fi
    "$b/bench/factum-bench-network" "kurrentdb://127.0.0.1:$factumd_port?tls=false" --only W1,W3 --quick --system x 2>&1 |
      grep '^@' | grep ev_per_s | sed "s/^@ [^ ]*/@ $which/"
    [ -z "$w" ] || { kill -TERM "$w"; wait "$w" 2>/dev/null || true; }
    kill -TERM "$factumd_pid"; while kill -0 "$factumd_pid" 2>/dev/null; do sleep 0.1; done
  done
done
