#!/usr/bin/env bash
# projections.sh - `factum projection` on the five system projections, on a
# local data directory (--data: the manager opened for each command) and
# over the network (--server: a factumd beside factum, started with
# --run-projections All): list (and by mode), show, enable --wait with the
# links of $ce-<category> read back, disable, reset (not doubled), state
# and result, update of a configuration, and the errors (no such
# projection: exit 4; deleting a system projection, an existing name, a
# server without projections: exit 1; usage: exit 2).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"
SYSTEM='["$streams","$stream_by_category","$by_category","$by_event_type","$by_correlation_id"]'

# ---- a local data directory ----------------------------------------------

f 1 projection list
one_error_line "projection list"
contains "$ERR" "no factum store in"
[ ! -e "$D" ] || fail "projection list created the store"
f 0 append acct-1 --type Opened --data '{"n":1}'
f 0 append acct-2 --type Opened --data '{"n":2}'

f 0 projection list
contains "$OUT" "NAME"
for p in '$streams' '$stream_by_category' '$by_category' '$by_event_type' '$by_correlation_id'; do
  contains "$OUT" "$p"
done
contains "$OUT" "Stopped"
lacks "$OUT" "Running"
f 0 projection list --json
eq "$(jq -s -c 'map(.name)' <<<"$OUT")" "$SYSTEM"
eq "$(jq -s -c 'map(.status) | unique' <<<"$OUT")" '["Stopped"]'
eq "$(jq -s -c 'map(.mode) | unique' <<<"$OUT")" '["Continuous"]'
f 0 projection list --mode continuous --json
eq "$(jq -s -c 'length' <<<"$OUT")" 5
f 0 projection list --mode one-time
eq "$OUT" "no projections"
f 2 projection list --mode sometimes
one_error_line "projection list"

# enable --wait: it has caught up when the command returns.
f 0 projection enable '$by_category' --wait
f 0 read '$ce-acct' --json
eq "$(jq -s -c 'map([.type, (.data | @base64d)])' <<<"$OUT")" '[["$>","0@acct-1"],["$>","0@acct-2"]]'
f 0 projection show '$by_category' --json
eq "$(jq -c '[.name, .enabled, .mode, .epoch, .stateReason]' <<<"$OUT")" '["$by_category",true,"Continuous",0,""]'
contains "$(jq -r .query <<<"$OUT")" "first"
f 0 projection show '$by_category'
contains "$OUT" "enabled                yes"
contains "$OUT" "query                  first"

# disable: what is appended meanwhile waits; enable catches up.
f 0 projection disable '$by_category'
f 0 append acct-3 --type Opened --data '{"n":3}'
f 0 projection show '$by_category' --json
eq "$(jq -c '[.status, .enabled]' <<<"$OUT")" '["Stopped",false]'
f 0 read '$ce-acct' --json
eq "$(jq -s -c 'length' <<<"$OUT")" 2
f 0 projection enable '$by_category' --wait
f 0 read '$ce-acct' --json
eq "$(jq -s -c 'map(.data | @base64d)' <<<"$OUT")" '["0@acct-1","0@acct-2","0@acct-3"]'

# reset: computed again from the start, the old links truncated away.
f 0 projection reset '$by_category' --wait
f 0 read '$ce-acct' --json
eq "$(jq -s -c 'map(.data | @base64d)' <<<"$OUT")" '["0@acct-1","0@acct-2","0@acct-3"]'
f 0 projection show '$by_category' --json
eq "$(jq -c '.epoch > 0' <<<"$OUT")" true

# state and result of a system projection: none, {}.
f 0 projection state '$by_category'
eq "$OUT" "{}"
f 0 projection result '$by_category' --partition acct
eq "$OUT" "{}"

# update: a system projection's query is its configuration.
f 0 projection update '$by_category' --query $'last\n-'
f 0 projection show '$by_category' --json
eq "$(jq -r .query <<<"$OUT")" $'last\n-'
f 0 append acct-x-1 --type Opened --data '{}'
f 0 projection enable '$by_category' --wait
f 0 read '$ce-acct-x' --json
eq "$(jq -s -c 'map(.data | @base64d)' <<<"$OUT")" '["0@acct-x-1"]'
f 2 projection update '$by_category'
one_error_line "projection update"

# errors
f 4 projection show nope
one_error_line "projection show"
contains "$ERR" "no projection 'nope'"
f 4 projection enable nope
f 4 projection state nope
f 1 projection delete '$by_category'
one_error_line "projection delete"
contains "$ERR" "system projection"
f 2 projection create foo
one_error_line "projection create"
contains "$ERR" "the query is missing"
f 2 projection frobnicate x
f 2 projection show
f 0 projection --help
contains "$OUT" "usage: factum projection list"

# ---- a server ------------------------------------------------------------

. "$(dirname "$0")/../../scripts/lib.sh"
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
start() {
  factumd_start "$T/factumd.log" "$FACTUMD" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0 "$@"
  pid=$factumd_pid
  URL="kurrentdb://127.0.0.1:$factumd_port?tls=false"
}
stop() {
  kill -TERM "$pid"
  wait "$pid" || fail "factumd did not shut down cleanly: $(cat "$T/factumd.log")"
  pid=""
  if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$T/factumd.log"; then fail "factumd's log"; fi
}
s() { local want=$1; shift; run "$want" "$FACTUM" --server "$URL" "$@"; }

# Without projections the service is not there.
start
s 1 projection list
one_error_line "projection list"
stop

start --run-projections All
s 0 append acct-1 --type Opened --data '{"n":1}'
s 0 append acct-2 --type Opened --data '{"n":2}'
s 0 projection list --json
eq "$(jq -s -c 'map(.name)' <<<"$OUT")" "$SYSTEM"
eq "$(jq -s -c 'map(.status) | unique' <<<"$OUT")" '["Stopped"]'
s 0 projection list --mode continuous --json
eq "$(jq -s -c 'length' <<<"$OUT")" 5
s 0 projection list --mode transient
eq "$OUT" "no projections"
s 0 projection enable '$by_category' --wait
s 0 read '$ce-acct' --json
eq "$(jq -s -c 'map([.type, (.data | @base64d)])' <<<"$OUT")" '[["$>","0@acct-1"],["$>","0@acct-2"]]'
s 0 projection show '$by_category' --json
eq "$(jq -c '[.name, .status, .enabled, .mode, .progress]' <<<"$OUT")" '["$by_category","Running",true,"Continuous",100]'
eq "$(jq -c '.position > 0 and .eventsProcessedAfterRestart > 0' <<<"$OUT")" true
s 0 projection show '$by_category'
contains "$OUT" "status                 Running"
s 0 projection list
contains "$OUT" "Running"
s 0 projection disable '$by_category'
s 0 append acct-3 --type Opened --data '{"n":3}'
s 0 projection enable '$by_category' --wait
s 0 projection reset '$by_category' --wait
s 0 read '$ce-acct' --json
eq "$(jq -s -c 'map(.data | @base64d)' <<<"$OUT")" '["0@acct-1","0@acct-2","0@acct-3"]'
s 0 projection state '$by_category'
eq "$OUT" "{}"
s 0 projection result '$by_category'
eq "$OUT" "{}"
s 0 projection update '$by_category' --query $'last\n-'
s 4 projection show nope
one_error_line "projection show"
contains "$ERR" "no projection 'nope'"
s 4 projection disable nope
s 4 projection result nope
s 1 projection delete '$by_category'
contains "$ERR" "system projection"
s 1 projection create '$by_category' --query 'fromAll()'
one_error_line "projection create"
s 1 projection create foo --query 'fromAll()' --track-emitted-streams
contains "$ERR" "emit"
stop
