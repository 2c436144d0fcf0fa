#!/usr/bin/env bash
# Install what factum needs to build and test, from Debian's archive, if it
# is missing. Safe to run repeatedly; does nothing when all is present.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in build-essential cmake pkg-config clang libclang-rt-14-dev git jq libnghttp2-dev libpcre2-dev libprotobuf-c-dev protobuf-c-compiler; do
  have "$pkg" || need+=("$pkg")
done
# The systems the benchmark compares with (bench/run-all.sh, whose quick mode
# is a test): PostgreSQL 15, SQLite, Redis 7, NATS JetStream, their C client
# libraries, and gnuplot for the plots.
for pkg in postgresql-15 libpq-dev libsqlite3-dev redis-server libhiredis-dev nats-server libnats-dev gnuplot-nox; do
  have "$pkg" || need+=("$pkg")
done
# Node.js >= 20 and npm for the integration tests (the official clients need 20).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  need+=(nodejs npm)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${need[@]}"
fi
