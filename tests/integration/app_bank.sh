#!/usr/bin/env bash
# app_bank.sh - concurrent withdrawals against one account from several
# processes through a real factumd (tests/integration/app_bank.c): the
# no-overdraft invariant holds, conflicts are retried, the final balance is
# the model's. Randomised; the seed is printed (FACTUM_SEED replays it).
# Usage: tests/integration/app_bank.sh /path/to/factumd /path/to/app_bank
set -euo pipefail
factumd=$(realpath "$1")
prog=$(realpath "$2")
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/app-bank.XXXXXX")
pid=""
cleanup() {
  [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/../../scripts/lib.sh"
factumd_start "$T/factumd.log" "$factumd" --insecure --db "$T/db" --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
URL="kurrentdb://127.0.0.1:$factumd_port?tls=false"
seed=${FACTUM_SEED:-$(( ($(date +%s) * 2654435761 + $$) % 4294967296 ))}
echo "app_bank: seed $seed (replay with FACTUM_SEED=$seed)"
procs=${APP_BANK_PROCS:-4} ops=${APP_BANK_OPS:-120}
"$prog" setup "$URL"
wpids=()
for i in $(seq 1 "$procs"); do
  "$prog" work "$URL" $((seed + i * 7919)) "$ops" >"$T/w$i.out" &
  wpids+=($!)
done
status=0
for p in "${wpids[@]}"; do wait "$p" || status=1; done
cat "$T"/w*.out
read -r dep wd acc refused attempts < <(awk '{d+=$1; w+=$2; a+=$3; r+=$4; t+=$5} END {print d, w, a, r, t}' "$T"/w*.out)
echo "$procs processes, $((procs * ops)) commands: $acc accepted, $refused refused, $attempts decide attempts"
[ "$attempts" -gt $((procs * ops)) ] || { echo "FAIL: no conflict was retried"; status=1; }
"$prog" check "$URL" "$dep" "$wd" "$acc" || status=1
if grep -E 'ERROR|AddressSanitizer|runtime error' "$T/factumd.log"; then status=1; fi
kill -TERM "$pid"; wait "$pid" || status=1; pid=""
[ $status = 0 ] && echo ok || echo FAILED
exit $status
