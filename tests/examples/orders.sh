#!/usr/bin/env bash
# orders.sh - the orders example (examples/orders) end to end from its
# command line: 60 orders with failures injected at every step (and payments
# that time out through a scheduled event), every order completed or fully
# compensated, the three read models in agreement; the same run again places
# nothing twice; bad arguments are refused.
# Usage: tests/examples/orders.sh /path/to/example_orders
set -euo pipefail
orders=$(realpath "$1")
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/example-orders.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
args=(--orders 60 --seed 11 --fail-payment 0.15 --fail-inventory 0.15 --fail-shipment 0.15 --fail-completion 0.15
  --silent-payment 0.1 --payment-timeout-ms 300 --relaxed)
out=$("$orders" "${args[@]}" "$T/db" 2>&1) || fail "first run: $out"
echo "$out"
first=$(echo "$out" | grep -o '^60 orders: [0-9]* completed, [0-9]* compensated, 0 wrong') || fail "summary: $out"
echo "$out" | grep -q '^read models agree: yes' || fail "read models: $out"
echo "$out" | grep -q '"cancelled"' || fail "no order was compensated: $out"
echo "$out" | grep -q '"completed"' || fail "no order completed: $out"
out=$("$orders" "${args[@]}" "$T/db" 2>&1) || fail "second run: $out"
again=$(echo "$out" | grep -o '^60 orders: [0-9]* completed, [0-9]* compensated, 0 wrong') || fail "summary: $out"
[ "$first" = "$again" ] || fail "the second run differs: '$first' / '$again'"
echo "$out" | grep -q '^read models agree: yes' || fail "read models, second run: $out"
rc=0
"$orders" --orders 2>/dev/null || rc=$?
[ "$rc" = 1 ] || fail "no directory: exit $rc"
echo "ok"
