#!/usr/bin/env bash
# Build factum and show what it does on its embedded storage: the brief's
# bank-account events appended with optimistic concurrency, read back, the
# stream and the global order.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DFACTUM_BENCH=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
dir=$(mktemp -d /tmp/factum-demo.XXXXXX)
trap 'rm -rf "$dir"' EXIT
echo "== the bank account example on a fresh store in $dir =="
build/release/example_bank "$dir/data"
build/release/example_bank "$dir/data"
