#!/usr/bin/env bash
# W1 (--quick) on the disk (/tmp), --insecure against TLS + admin:changeit, with --commit-mode auto and writer; 3 rounds.
# Usage: FACTUMD=... BENCH=.../factum-bench-network CERTS=dir commit-modes.sh
set -u
F=${FACTUMD:?}; BENCH=${BENCH:?}; certs=${CERTS:?} # factum certs dev --out DIR
for r in 1 2 3; do
 for cm in auto writer; do
  for mode in ins sec; do
      d=$(mktemp -d /tmp/cm.XXXX)
      if [ $mode = ins ]; then
        $F --insecure --commit-mode $cm --db $d/db --node-ip 127.0.0.1 --node-port 2150 > $d/log 2>&1 & pid=$!
        url="kurrentdb://127.0.0.1:2150?tls=false"
      else
        $F --commit-mode $cm --db $d/db --node-ip 127.0.0.1 --node-port 2150 --certificate-file $certs/node/node.crt --certificate-private-key-file $certs/node/node.key --trusted-root-certificates-path $certs/ca > $d/log 2>&1 & pid=$!
        url="kurrentdb://admin:changeit@localhost:2150?tlsCAFile=$certs/ca/ca.crt"
      fi
      for i in $(seq 50); do grep -q listening $d/log && break; sleep 0.1; done
      $BENCH "$url" --quick --only W1 --system "$cm-$mode" | grep '^@' | sed "s/^@/@ r$r/"
      kill $pid; wait $pid 2>/dev/null; rm -rf $d
  done
 done
done
