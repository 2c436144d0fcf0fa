#!/usr/bin/env bash
# Starts a private Redis 7 on 127.0.0.1 (its own temporary directory and
# port; installed from Debian if missing), runs factum-bench-systems redis
# against it, and stops it. Settings, written down: appendonly yes,
# appendfsync always (an fsync before every reply: durable per append),
# no RDB snapshots, one Lua script per append for the version check,
# maxclients 12000 (W12 --big: 10,000 subscribers, a connection each).
# Usage: bench/run-redis.sh [--quick] [--big] [--only W1,W2,...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh redis
. bench/lib.sh
bench_build factum-bench-systems # FACTUM_BENCH_BUILD=DIR: use an existing build directory
dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-redis.XXXXXX)
port=${REDIS_PORT_BENCH:-26379} # below the ephemeral range (32768-60999): no client socket holds it
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --appendonly yes --appendfsync always --save '' --maxclients 12000 \
  --daemonize no --protected-mode no >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
wait_ready redis-server "$pid" "$dir/log" redis-cli -p "$port" ping
export FACTUM_BENCH_SERVER_PID=$pid # W12: the server's CPU time and memory
echo "Redis $(redis-server --version | sed -n 's/.*v=\([0-9.]*\).*/\1/p'), appendonly yes, appendfsync always (durable), 127.0.0.1:$port"
"$b"/bench/factum-bench-systems redis "127.0.0.1:$port" "$@"
