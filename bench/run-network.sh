#!/usr/bin/env bash
# The network benchmarks: builds factumd and the benchmark (Release), starts
# factumd (durable unless --relaxed is given, on a fresh temporary database
# on this machine's disk, 127.0.0.1), measures the disk's own fdatasync rate,
# then runs W1-W8 and the catch-up (CU) over the network with the C client.
# Usage: bench/run-network.sh [--quick] [--relaxed] [--only W1,W2,...]
set -euo pipefail
cd "$(dirname "$0")/.."
relaxed=(); args=()
for a in "$@"; do case "$a" in --relaxed) relaxed=(--relaxed-durability);; *) args+=("$a");; esac; done
. bench/lib.sh
. scripts/lib.sh
bench_build factumd factum-bench-network factum-bench-embedded # FACTUM_BENCH_BUILD=DIR: use an existing build directory
dir=$(mktemp -d /tmp/factum-netbench.XXXXXX)
"$b"/bench/factum-bench-embedded --dir "$dir" --only PACED | grep machine | head -2
pid=""
trap '[ -z "$pid" ] || { kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; }; rm -rf "$dir"' EXIT
factumd_start "$dir/log" "$b"/factumd --insecure --db "$dir/db" --node-ip 127.0.0.1 --node-port 0 "${relaxed[@]}"
pid=$factumd_pid port=$factumd_port
echo "factumd ${relaxed[*]:-durable} on 127.0.0.1:$port, $(nproc) CPUs"
"$b"/bench/factum-bench-network "kurrentdb://127.0.0.1:$port?tls=false" "${args[@]}"
