#!/usr/bin/env bash
# bank.sh - the bank account example (examples/bank) end to end from its
# command line: opening, deposits, a refused overdraft (exit status 2), a
# command id that makes a repeated command idempotent, snapshots every N
# events, the balance from the decider and from the read model, and an
# event of the old MoneyDeposited shape (version 1) read through the
# upcaster the program registers, by the decider and by the read model;
# "the balance on March 15" as known now and as known then, with a
# withdrawal booked late (--valid-from), through the temporal read.
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
# an event of the old shape: stored as written, read as version 2 everywhere
run 0 "$D" import-v1 42 25
run 0 "$D" balance 42
echo "$OUT" | grep -q "owner Alice balance 55 version 10" || fail "balance after import-v1: $OUT"
echo "$OUT" | grep -q '"rows":\[\[55\]\]' || fail "read model after import-v1: $OUT"
run 0 "$D" withdraw 42 55
run 2 "$D" withdraw 42 1
# the balance on March 15: a branch's withdrawal of March 12 is booked late
E=$T/time
run 0 "$E" open 7 Bob --valid-from 2026-03-01
run 0 "$E" deposit 7 100 --valid-from 2026-03-10
run 0 "$E" deposit 7 50 --valid-from 2026-03-14T09:30:00Z
run 0 "$E" balance 7 --valid-at 2026-03-15
echo "$OUT" | grep -q "balance 150 at 2026-03-15 as known now (open)" || fail "March 15 before the late booking: $OUT"
sleep 0.05
before=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 0.05
run 0 "$E" withdraw 7 30 --valid-from 2026-03-12
run 0 "$E" balance 7 --valid-at 2026-03-15
echo "$OUT" | grep -q "balance 120 at 2026-03-15 as known now" || fail "March 15 as known now: $OUT"
run 0 "$E" balance 7 --valid-at 2026-03-15 --as-of "$before"
echo "$OUT" | grep -q "balance 150 at 2026-03-15 as known at" || fail "March 15 as known then: $OUT"
run 0 "$E" balance 7 --valid-at 2026-03-11
echo "$OUT" | grep -q "balance 100 at 2026-03-11" || fail "March 11: $OUT"
run 0 "$E" balance 7 --valid-at 2026-02-01
echo "$OUT" | grep -q "balance 0 at 2026-02-01 as known now (not open then)" || fail "February: $OUT"
run 0 "$E" balance 7 --as-of 2020-01-01
echo "$OUT" | grep -q "balance 0 at any time as known at 2020-01-01 (not open then)" || fail "2020: $OUT"
run 2 "$E" deposit 7 5 --valid-from yesterday
echo "$OUT" | grep -q "RFC 3339" || fail "bad --valid-from: $OUT"
run 1 "$E" deposit 7 5 --valid-at 2026-03-01
run 1 "$D" deposit 42 abc || true
echo ok
