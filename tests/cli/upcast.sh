#!/usr/bin/env bash
# upcast.sh - `factum upcaster set|list|remove` and `factum read` with
# upcasting (docs/upcasting.md): locally (the library upcasts; --raw reads
# the stored bytes; a failing upcaster stops the read naming the event; a
# bad document is refused and changes nothing) and over the network (the
# server upcasts; --raw sends the header factum-raw: 1; documents are
# registered by appending to $upcasters through the client). Script
# upcasters (ADR 0016) too when factum-js is beside factum: registered,
# listed, applied, read raw; one that does not compile is refused locally
# and fails the reads of its events through a server.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"
D=$T/store

cat >"$T/v1.json" <<'JSON'
{"eventType":"MoneyDeposited","fromVersion":1,"toVersion":2,
 "steps":[{"op":"rename","from":"amount","to":"amountCents"},{"op":"default","path":"currency","value":"EUR"}]}
JSON
cat >"$T/v2.json" <<'JSON'
{"eventType":"MoneyDeposited","fromVersion":2,"toVersion":3,
 "steps":[{"op":"move","from":"amountCents","to":"money.cents"},{"op":"type","to":"FundsDeposited"}]}
JSON
cat >"$T/bad.json" <<'JSON'
{"eventType":"MoneyDeposited","fromVersion":3,"toVersion":4,"steps":[{"op":"explode","path":"a"}]}
JSON
cat >"$T/script.json" <<'JSON'
{"eventType":"Scripted","fromVersion":1,"toVersion":2,
 "script":"function (e) { return { type: 'Scripted2', data: { twice: e.data.n * 2, tags: e.data.tags.map(t => t + '!') } }; }"}
JSON
cat >"$T/broken.json" <<'JSON'
{"eventType":"Broken","fromVersion":1,"toVersion":2,"script":"function (e) { return e"}
JSON
JS=0
[ -x "$(dirname "$(realpath "$FACTUM")")/factum-js" ] && JS=1
cat >"$T/fragile.json" <<'JSON'
{"eventType":"Fragile","fromVersion":1,"toVersion":2,"steps":[{"op":"move","from":"a","to":"b.c"}]}
JSON

checks() { # $1: local or server; x: factum against it
  x 0 append acct-1 --type MoneyDeposited --data '{"amount":100}'
  x 0 upcaster list
  eq "$OUT" ""
  x 0 upcaster set "$T/v1.json"
  x 0 read acct-1 --json
  eq "$(jq -c '[.type,.data,.metadata]' <<<"$OUT")" '["MoneyDeposited",{"amountCents":100,"currency":"EUR"},{"$schemaVersion":2}]'
  x 0 read acct-1 --json --raw
  eq "$(jq -c '[.type,.data,.metadata]' <<<"$OUT")" '["MoneyDeposited",{"amount":100},null]'
  x 0 upcaster set - <"$T/v2.json"
  x 0 read '$all' --stream-prefix acct- --json
  eq "$(jq -c '[.type,.data,.metadata]' <<<"$OUT")" '["FundsDeposited",{"currency":"EUR","money":{"cents":100}},{"$schemaVersion":3}]'
  x 0 upcaster list
  eq "$OUT" $'MoneyDeposited 1 -> 2 (2 steps)\nMoneyDeposited 2 -> 3 (2 steps)'
  x 0 upcaster list --json
  eq "$(jq -s -c 'map([.fromVersion,.toVersion])' <<<"$OUT")" '[[1,2],[2,3]]'
  x 2 upcaster set "$T/bad.json"
  one_error_line upcaster
  contains "$ERR" '"op" must be one of'
  x 0 upcaster list
  eq "$(wc -l <<<"$OUT")" 2 "a refused document changes nothing"
  x 0 upcaster remove MoneyDeposited 2
  x 0 read acct-1 --json
  eq "$(jq -c '.type' <<<"$OUT")" '"MoneyDeposited"'
  x 2 upcaster remove MoneyDeposited x
  x 0 append frag-1 --type Fragile --data '{"a":1,"b":7}'
  x 0 upcaster set "$T/fragile.json"
  x 1 read frag-1
  contains "$ERR" "cannot upcast event 0@frag-1 (position"
  contains "$ERR" '"b" of "b.c" is not an object'
  x 0 read frag-1 --raw --json
  eq "$(jq -c '.data' <<<"$OUT")" '{"a":1,"b":7}'
  if [ "$JS" = 1 ]; then
    x 0 append s-1 --type Scripted --data '{"n":21,"tags":["a","b"]}'
    x 0 upcaster set "$T/script.json"
    x 0 upcaster list
    contains "$OUT" "Scripted 1 -> 2 (script, "
    x 0 read s-1 --json
    eq "$(jq -c '[.type,.data,.metadata]' <<<"$OUT")" '["Scripted2",{"twice":42,"tags":["a!","b!"]},{"$schemaVersion":2}]'
    x 0 read s-1 --json --raw
    eq "$(jq -c '.data' <<<"$OUT")" '{"n":21,"tags":["a","b"]}'
    x 0 upcaster remove Scripted 1
    x 0 append b-1 --type Broken --data '{}'
    if [ "$1" = local ]; then
      x 2 upcaster set "$T/broken.json"
      contains "$ERR" "the script does not compile: SyntaxError"
    else
      x 0 upcaster set "$T/broken.json"
      x 1 read b-1
      contains "$ERR" "cannot upcast event 0@b-1"
      contains "$ERR" "upcaster Broken v1->v2 (script): the script does not compile: SyntaxError"
      x 0 upcaster remove Broken 1
    fi
  fi
  if [ "$1" = server ]; then
    x 0 tail acct-1 --from start --count 1 --json
    eq "$(jq -c '.data' <<<"$OUT")" '{"amountCents":100,"currency":"EUR"}'
    x 0 tail acct-1 --from start --count 1 --json --raw
    eq "$(jq -c '.data' <<<"$OUT")" '{"amount":100}'
    x 1 tail frag-1 --from start --count 1
    contains "$ERR" "cannot upcast event 0@frag-1"
  fi
}

# ---- locally ----------------------------------------------------------------
x() { f "$@"; }
checks local
f 1 upcaster remove Nope 1
contains "$ERR" "no upcaster of Nope from version 1"
# The registry is the stream: a restart keeps it (a new process reads it).
f 0 upcaster list
eq "$(wc -l <<<"$OUT")" 2

# ---- a server -----------------------------------------------------------------
. "$(dirname "$0")/../../scripts/lib.sh"
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
factumd_start "$T/factumd.log" "$FACTUMD" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
URL="kurrentdb://127.0.0.1:$factumd_port?tls=false"
x() { local want=$1; shift; run "$want" "$FACTUM" --server "$URL" "$@"; }
checks server
kill -TERM "$pid"
wait "$pid" || fail "factumd did not shut down cleanly: $(cat "$T/factumd.log")"
pid=""
if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$T/factumd.log"; then fail "factumd's log"; fi
echo "ok upcast.sh"
