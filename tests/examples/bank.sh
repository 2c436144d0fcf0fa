#!/usr/bin/env bash
# bank.sh - the bank account example (examples/bank) end to end from its
# command line: opening, deposits, a refused overdraft (exit status 2), a
# command id that makes a repeated command idempotent, snapshots every N
# events, and the balance from the decider and from the read model.
# Usage: tests/examples/bank.sh /path/to/example_bank
set -euo pipefail
bank=$(realpath "$1")
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/example-bank.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
run() { # run WANT-STATUS ARGS...: output in $OUT
  local want=$1 rc=0
  shift
  OUT=$("$bank" "$@" 2>&1) || rc=$?
  [ "$rc" = "$want" ] || fail "$* exited $rc, expected $want: $OUT"
}
D=$T/db
run 2 "$D" deposit 42 10
echo "$OUT" | grep -q "not open" || fail "deposit before open: $OUT"
run 0 "$D" open 42 Alice
run 2 "$D" open 42 Alice
run 2 "$D" open 43 'Bob"}'
run 0 "$D" deposit 42 1000
run 0 "$D" withdraw 42 300
run 2 "$D" withdraw 42 701
echo "$OUT" | grep -q "insufficient funds" || fail "overdraft: $OUT"
id=0b6c1d3e-6a53-4b8e-9d7c-2f1e0a9b8c7d
run 0 "$D" withdraw 42 700 "$id"
run 0 "$D" withdraw 42 700 "$id"
echo "$OUT" | grep -q "already done" || fail "command id: $OUT"
for i in 1 2 3 4 5 6; do run 0 --snapshot-every 3 "$D" deposit 42 5; done
run 0 "$D" balance 42
echo "$OUT"
echo "$OUT" | grep -q "owner Alice balance 30 version 9 (snapshot at [0-9]" || fail "balance: $OUT"
echo "$OUT" | grep -q '"rows":\[\[30\]\]' || fail "read model: $OUT"
run 1 "$D" deposit 42 abc || true
echo ok
