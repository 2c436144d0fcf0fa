#!/usr/bin/env bash
# The network benchmarks: builds factumd and the benchmark (Release), starts
# factumd (durable unless --relaxed is given, on a fresh temporary database
# on this machine's disk, 127.0.0.1), measures the disk's own fdatasync rate,
# then runs W1-W8 and the catch-up (CU) over the network with the C client.
#
# --secure: the cost of security (issue 12), in one run. Two factumd side by
# side, each on its own fresh database: one --insecure, one with TLS (the
# certificates of `factum certs dev`, ECDSA P-256) whose clients connect
# with TLS, the CA file and admin:changeit (every call authenticated, every
# stream access checked against the ACLs). Each workload runs against both, alternating
# which goes first, then a table gives TLS+auth / insecure for every figure.
# Default workloads: W1,W2,W3,W5,W6 (BENCH.md), SETUP (a new connection until
# its first answer: TCP + TLS 1.3 handshake + HTTP/2 + one call) and CALLS
# (one-event reads per second, credentials on each: a cached user's cost).
#
# W11 (loading a 10-event aggregate, one Read call; its p50 also in loopback
# round trips) and W12 (1,000 live subscribers, --big 10,000: delivery
# latency, factumd's CPU time and memory per subscriber) run too.
#
# Usage: bench/run-network.sh [--quick] [--big] [--relaxed] [--secure] [--only W1,W2,...]
set -euo pipefail
cd "$(dirname "$0")/.."
relaxed=(); args=(); secure=0; only=""; maxconn=()
while [ $# -gt 0 ]; do
  case "$1" in
    --relaxed) relaxed=(--relaxed-durability) ;;
    --secure) secure=1 ;;
    --only) only=$2; shift ;;
    --big) args+=("$1"); maxconn=(--max-connections 12000) ;; # W12 with 10,000 subscribers
    *) args+=("$1") ;;
  esac
  shift
done
. bench/lib.sh
. scripts/lib.sh
bench_build factumd factum-bench-network factum-bench-embedded factum # FACTUM_BENCH_BUILD=DIR: use an existing build directory
dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-netbench.XXXXXX)
"$b"/bench/factum-bench-embedded --dir "$dir" --only PACED | grep machine | head -2
pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap 'stop_all; rm -rf "$dir"' EXIT

if [ $secure = 0 ]; then
  # FACTUM_FACTUMD_ARGS: more options for factumd (say --commit-mode loop)
  # shellcheck disable=SC2086
  factumd_start "$dir/log" "$b"/factumd --insecure --db "$dir/db" --node-ip 127.0.0.1 --node-port 0 "${relaxed[@]}" ${FACTUM_FACTUMD_ARGS:-} \
    "${maxconn[@]}"
  pids+=("$factumd_pid")
  export FACTUM_BENCH_SERVER_PID=$factumd_pid # W12: the server's CPU time and memory
  port=$factumd_port
  echo "factumd ${relaxed[*]:-durable} on 127.0.0.1:$port, $(nproc) CPUs"
  "$b"/bench/factum-bench-network "kurrentdb://127.0.0.1:$port?tls=false" ${only:+--only "$only"} "${args[@]}"
  exit 0
fi

"$b"/factum certs dev --out "$dir/certs" >/dev/null
factumd_start "$dir/log-insecure" "$b"/factumd --insecure --db "$dir/db-insecure" --node-ip 127.0.0.1 \
  --node-port 0 "${relaxed[@]}"
pids+=("$factumd_pid")
iport=$factumd_port
factumd_start "$dir/log-secure" "$b"/factumd --db "$dir/db-secure" --node-ip 127.0.0.1 --node-port 0 \
  --certificate-file "$dir/certs/node/node.crt" --certificate-private-key-file "$dir/certs/node/node.key" \
  --trusted-root-certificates-path "$dir/certs/ca" "${relaxed[@]}"
pids+=("$factumd_pid")
sport=$factumd_port
insecure_url="kurrentdb://127.0.0.1:$iport?tls=false"
secure_url="kurrentdb://admin:changeit@localhost:$sport?tlsCAFile=$dir/certs/ca/ca.crt"
echo "factumd ${relaxed[*]:-durable}, $(nproc) CPUs: insecure on 127.0.0.1:$iport, TLS + admin:changeit on localhost:$sport"
grep -h "listening on" "$dir/log-secure" | sed 's/^[^ ]* [A-Z]* *//'
out=$dir/results
: >"$out"
i=0
for w in $(tr ',' ' ' <<<"${only:-W1,W2,W3,W5,W6,SETUP,CALLS}"); do
  order=("factumd $insecure_url" "factumd-tls $secure_url")
  [ $((i % 2)) = 1 ] && order=("factumd-tls $secure_url" "factumd $insecure_url")
  i=$((i + 1))
  for o in "${order[@]}"; do
    read -r name url <<<"$o"
    echo "-- $w against $name"
    "$b"/bench/factum-bench-network "$url" --only "$w" --system "$name" "${args[@]}" | grep -v '^| wire' | tee -a "$out" |
      grep -v '^@'
  done
done
echo
echo "The cost of security: TLS + authentication against insecure, the same run (after/before;"
echo "for rates below 1 is slower, for latencies above 1 is slower)."
echo
echo "| workload | figure | insecure | TLS + auth | after/before |"
echo "|---|---|---|---|---|"
awk '$1 == "@" { v[$2 SUBSEP $3 SUBSEP $4] = $5; if (!seen[$3 SUBSEP $4]++) order[n++] = $3 SUBSEP $4 }
     END {
       for (i = 0; i < n; i++) {
         split(order[i], k, SUBSEP)
         a = v["factumd" SUBSEP order[i]]; b = v["factumd-tls" SUBSEP order[i]]
         if (a == "" || b == "") continue
         printf "| %s | %s | %.6g | %.6g | %.3f |\n", k[1], k[2], a, b, (a > 0 ? b / a : 0)
       }
     }' "$out"
