#!/usr/bin/env bash
# factumd's commit modes side by side, one server at a time (docs/adr/0024):
# for each round, for each mode, a fresh factumd on a fresh database under
# $FACTUM_BENCH_TMP (default /tmp) with --commit-mode MODE, the network
# benchmark's workloads against it (--quick), then the server is stopped
# before the next mode starts, so no two servers share the machine. The
# modes rotate within rounds; compare them within a round. With auto, the
# level factumd chose (its log) is printed under the figures.
# Usage: bench/run-commit-modes.sh [--rounds N] [--only W1,W6,...] [MODE...]
#   MODE: auto, writer, loop, io-uring (default: writer auto)
# FACTUM_BENCH_BUILD=DIR uses an existing build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 only=W1,W3,W6
modes=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift ;;
    --only) only=$2; shift ;;
    auto | writer | loop | io-uring) modes+=("$1") ;;
    *) echo "usage: $0 [--rounds N] [--only W1,W6,...] [auto|writer|loop|io-uring...]" >&2; exit 2 ;;
  esac
  shift
done
[ ${#modes[@]} -gt 0 ] || modes=(writer auto)
. scripts/lib.sh
. bench/lib.sh
bench_build factumd factum-bench-network factum-bench-embedded
dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-commit-modes.XXXXXX)
pid=""
trap '[ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
"$b"/bench/factum-bench-embedded --dir "$dir" --only PACED | grep machine | head -2
for ((r = 1; r <= rounds; r++)); do
  n=${#modes[@]}
  for ((i = 0; i < n; i++)); do
    m=${modes[$(((i + r - 1) % n))]} # rotate: each mode goes first once in n rounds
    rm -rf "$dir/db"
    factumd_start "$dir/log" "$b"/factumd --insecure --db "$dir/db" --node-ip 127.0.0.1 --node-port 0 \
      --commit-mode "$m"
    pid=$factumd_pid
    echo "== round $r: --commit-mode $m"
    "$b"/bench/factum-bench-network "kurrentdb://127.0.0.1:$factumd_port?tls=false" --quick --only "$only" |
      grep -E '^\| (W|wire)'
    grep -o 'commit-mode auto: .*' "$dir/log" | sed 's/^/   /' || true
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
  done
done
