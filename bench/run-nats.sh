#!/usr/bin/env bash
# Starts a private NATS server with JetStream on 127.0.0.1 (its own temporary
# store directory and port; installed from Debian if missing), runs
# factum-bench-systems nats against it, and stops it. Settings, written down:
# JetStream file storage, one stream EVENTS over subjects ev.>, default
# sync_interval — JetStream fsyncs its files periodically (every 2 minutes by
# default), NOT before each acknowledgement: its figures are not durable per
# append, unlike the others'.
# Usage: bench/run-nats.sh [--quick] [--big] [--only W1,W2,...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh nats
. bench/lib.sh
bench_build factum-bench-systems # FACTUM_BENCH_BUILD=DIR: use an existing build directory
dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-nats.XXXXXX)
port=${NATS_PORT_BENCH:-24222} # below the ephemeral range (32768-60999): no client socket holds it
nats-server -js -sd "$dir" -a 127.0.0.1 -p "$port" >"$dir/log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
wait_ready nats-server "$pid" "$dir/log" grep -q "Server is ready" "$dir/log"
export FACTUM_BENCH_SERVER_PID=$pid # W12: the server's CPU time and memory
echo "NATS $(nats-server --version | sed 's/.*v//') JetStream, file storage, periodic fsync (NOT durable per append), 127.0.0.1:$port"
"$b"/bench/factum-bench-systems nats "127.0.0.1:$port" "$@"
