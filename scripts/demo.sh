#!/usr/bin/env bash
# Build factum and show what it does on its embedded storage (the factum
# command line on a local data directory): the brief's bank-account events
# appended with optimistic concurrency, read back, the stream and the global
# order, a concurrency conflict, an idempotent retry, and verification.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DFACTUM_BENCH=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
factum=build/release/factum
export FACTUM_DATA
FACTUM_DATA=$(mktemp -d /tmp/factum-demo.XXXXXX)/data
trap 'rm -rf "$(dirname "$FACTUM_DATA")"' EXIT
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

echo "factum demo: an event-sourced bank account in $FACTUM_DATA"
say $factum append account-42 --expected no-stream --type AccountOpened --data '{"owner":"Alice","balance":0}'
say $factum append account-42 --expected 0 --type MoneyDeposited --data '{"amount":1000}' \
    --metadata '{"correlationId":"c-1","user":"alice"}'
say $factum append account-42 --expected 1 --type MoneyWithdrawn --data '{"amount":200}'
say $factum append account-42 --expected 2 --type MoneyWithdrawn --data '{"amount":50}'
say $factum append account-7 --type AccountOpened --data '{"owner":"Bob","balance":0}'
echo
echo "# optimistic concurrency: a writer that read version 1 loses"
say $factum append account-42 --expected 1 --type MoneyWithdrawn --data '{"amount":9999}' || true
echo
echo "# an idempotent retry: the same event id twice is stored once"
id=6f1c2a9e-3b1d-4c55-9a7e-0d2f8e1b4c3a
say $factum append account-7 --expected 0 --id $id --type MoneyDeposited --data '{"amount":10}'
say $factum append account-7 --expected 0 --id $id --type MoneyDeposited --data '{"amount":10}'
echo
echo "# the stream, replayed: balance = 1000 - 200 - 50 = 750"
say $factum read account-42
echo
echo "# the global order (\$all), gapless positions across streams"
say $factum read '$all'
say $factum streams
say $factum info account-42
say $factum verify
