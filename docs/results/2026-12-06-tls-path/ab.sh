#!/usr/bin/env bash
# Before/after of the TLS and auth changes (issue 15, 2026-12-06): two factumd
# builds, each --insecure and with TLS + admin:changeit, one server up at a
# time on a fresh database, W1 and W3 (--quick) with the C client; the order
# of the builds alternates per round. Prints the benchmark's "@" lines,
# prefixed by the round.
# Usage: BEFORE=dir/factumd AFTER=dir/factumd BENCH=dir/factum-bench-network
#        CERTS=dir (factum certs dev --out dir) [TMPD=/dev/shm] [R=3] ab.sh
set -u
TMPD=${TMPD:-/dev/shm}; R=${R:-3}
for r in $(seq 1 "$R"); do
  order="before after"; [ $((r % 2)) = 0 ] && order="after before"
  for v in $order; do
    [ "$v" = before ] && F=$BEFORE || F=$AFTER
    for mode in ins sec; do
      d=$(mktemp -d "$TMPD"/ab.XXXX)
      if [ $mode = ins ]; then
        "$F" --insecure --db "$d/db" --node-ip 127.0.0.1 --node-port 2140 >"$d/log" 2>&1 & pid=$!
        url="kurrentdb://127.0.0.1:2140?tls=false"
      else
        "$F" --db "$d/db" --node-ip 127.0.0.1 --node-port 2140 --certificate-file "$CERTS/node/node.crt" \
          --certificate-private-key-file "$CERTS/node/node.key" --trusted-root-certificates-path "$CERTS/ca" >"$d/log" 2>&1 & pid=$!
        url="kurrentdb://admin:changeit@localhost:2140?tlsCAFile=$CERTS/ca/ca.crt"
      fi
      for _ in $(seq 50); do grep -q listening "$d/log" && break; sleep 0.1; done
      "$BENCH" "$url" --quick --only W1,W3 --system "$v-$mode" | grep '^@' | sed "s/^@/@ r$r/"
      kill $pid; wait $pid 2>/dev/null; rm -rf "$d"
    done
  done
done
