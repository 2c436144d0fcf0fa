#!/usr/bin/env bash
# projection_asof.sh - `factum projection state|result NAME --as-of TIME |
# --as-of-position P [--partition P]` on a local data directory and over the
# network (a factumd beside factum, --run-projections All): the state after
# a given event, by time and by position, a partition's, the result;
# nothing written by the replay; bad input refused (a bad time, both
# options, a position past the end, an unknown projection, a system one).
# Needs the JavaScript engine (factum-js). docs/temporal.md.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"

cat >"$T/total.js" <<'JS'
fromCategory('acct').when({
  $init: () => ({ n: 0, sum: 0 }),
  Deposited: (s, e) => { s.n++; s.sum += e.body.amount; return s; }
}).transformBy((s) => ({ total: s.sum }));
JS
cat >"$T/per.js" <<'JS'
fromCategory('acct').foreachStream().when({
  $init: () => ({ bal: 0 }),
  Deposited: (s, e) => { s.bal += e.body.amount; return s; }
});
JS

# checks TOOL: the same scenario through `f` (local) or `s` (server).
checks() {
  local x=$1
  $x 0 projection create total --file "$T/total.js" --wait
  $x 0 projection create per --file "$T/per.js" --wait
  $x 0 append acct-1 --type Deposited --data '{"amount":5}'
  P1=$(sed -n 's/.*position \([0-9]*\).*/\1/p' <<<"$OUT")
  sleep 0.05
  T1=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
  sleep 0.05
  $x 0 append acct-2 --type Deposited --data '{"amount":7}'
  $x 0 append acct-1 --type Deposited --data '{"amount":11}'
  P3=$(sed -n 's/.*position \([0-9]*\).*/\1/p' <<<"$OUT")
  $x 0 projection enable total --wait
  $x 0 projection state total
  eq "$(jq -c . <<<"$OUT")" '{"n":3,"sum":23}'

  $x 0 projection state total --as-of-position "$P1"
  eq "$(jq -c . <<<"$OUT")" '{"n":1,"sum":5}'
  $x 0 projection result total --as-of-position "$P1"
  eq "$(jq -c . <<<"$OUT")" '{"total":5}'
  $x 0 projection state total --as-of "$T1"
  eq "$(jq -c . <<<"$OUT")" '{"n":1,"sum":5}'
  $x 0 projection state total --as-of-position "$((P3 - 1))"
  eq "$(jq -c . <<<"$OUT")" '{"n":2,"sum":12}'
  $x 0 projection state per --partition acct-1 --as-of-position "$((P3 - 1))"
  eq "$(jq -c . <<<"$OUT")" '{"bal":5}'
  $x 0 projection state per --partition acct-2 --as-of "$T1"
  eq "$OUT" '{}'
  $x 0 projection state per --partition acct-1 --as-of-position "$P3"
  eq "$(jq -c . <<<"$OUT")" '{"bal":16}'
  $x 0 projection state total --as-of 2001-01-01
  eq "$OUT" '{}'

  $x 2 projection state total --as-of yesterday
  contains "$ERR" "RFC 3339"
  $x 2 projection state total --as-of "$T1" --as-of-position 1
  $x 1 projection state total --as-of-position 999999
  contains "$ERR" "past the end"
  $x 4 projection state nope --as-of-position 1
  $x 1 projection state '$by_category' --as-of-position 1
  contains "$ERR" "system projection"
}

where=(--data "$D")
checks f
# Nothing was written by the replays: the log ends where it did.
f 0 read '$all' --backward --count 1 --json
LAST=$(jq -r .position <<<"$OUT")
f 0 projection state total --as-of-position 1
f 0 read '$all' --backward --count 1 --json
eq "$(jq -r .position <<<"$OUT")" "$LAST"

. "$(dirname "$0")/../../scripts/lib.sh"
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
factumd_start "$T/factumd.log" "$FACTUMD" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0 --run-projections All
pid=$factumd_pid
URL="kurrentdb://127.0.0.1:$factumd_port?tls=false"
s() { local want=$1; shift; run "$want" "$FACTUM" --server "$URL" "$@"; }
where=(--server "$URL")
checks s
kill -TERM "$pid"
wait "$pid" || fail "factumd did not shut down cleanly: $(cat "$T/factumd.log")"
pid=""
if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$T/factumd.log"; then fail "factumd's log"; fi
