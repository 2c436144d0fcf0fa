#!/usr/bin/env bash
# bench/profile-flame.sh W1|W6 OUT.svg [TITLE]: a flame graph of factumd
# (every thread: the event loop, the writer, the kernel's work on their
# behalf) while factum-bench-network runs one workload (--quick) against it,
# sampled by perf with DWARF call stacks and drawn by bench/flame.py.
# FACTUM_BENCH_BUILD=DIR profiles an existing build (RelWithDebInfo names the
# functions); otherwise build/profile is configured and built. The data
# directory is under $FACTUM_BENCH_TMP (default /tmp); FACTUM_FACTUMD_ARGS
# adds arguments to factumd's (e.g. "--io-uring=true"). Installs linux-perf
# if missing. docs/PERFORMANCE.md shows the graphs of W1 and W6 before and
# after issue 15's changes.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
[ $# -ge 2 ] || { echo "usage: $0 W1|W6 OUT.svg [TITLE]" >&2; exit 2; }
w=$1 out=$2 title=${3:-"factumd, $1"}
if [ -n "${FACTUM_BENCH_BUILD:-}" ]; then
  b=$FACTUM_BENCH_BUILD
else
  scripts/deps.sh build
  cmake -S . -B build/profile -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
  cmake --build build/profile -j"$(nproc)" --target factumd factum-bench-network >/dev/null
  b=build/profile
fi
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends linux-perf >/dev/null; }
dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-flame.XXXXXX)
trap 'rm -rf "$dir"' EXIT
port=$((24000 + RANDOM % 2000))
"$b"/factumd --db "$dir/db" --insecure --node-ip 127.0.0.1 --node-port "$port" --log-level error \
  ${FACTUM_FACTUMD_ARGS:-} >"$dir/log" 2>&1 &
pid=$!
wait_ready factumd "$pid" "$dir/log" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
perf record -q -F 999 --call-graph dwarf,16384 -p "$pid" -o "$dir/perf.data" >/dev/null 2>&1 &
ppid=$!
sleep 0.5
"$b"/bench/factum-bench-network "kurrentdb://127.0.0.1:$port?tls=false" --quick --only "$w" | grep "^| $w" || true
kill -INT "$ppid"
wait "$ppid" || true
kill -TERM "$pid"
wait "$pid" || true
perf script -i "$dir/perf.data" 2>/dev/null | python3 bench/flame.py "$title" >"$out"
echo "$out"
