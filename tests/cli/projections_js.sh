#!/usr/bin/env bash
# projections_js.sh - `factum projection` on JavaScript projections, on a
# local data directory and over the network (a factumd beside factum with
# --run-projections All): create from --file and from stdin, state and
# result, list and list by mode (one-time, transient), update, disable ->
# append -> enable --wait, reset --wait (not doubled), a partition's state,
# an existing name, delete only once stopped. Needs the JavaScript engine
# (factum-js) in the projection manager.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"

cat >"$T/count.js" <<'JS'
fromCategory('cart')
  .foreachStream()
  .when({
    $init: () => ({ items: 0 }),
    ItemAdded: (s, e) => { s.items += e.body.qty; return s; }
  });
JS
cat >"$T/total.js" <<'JS'
fromAll().when({
  $init: function () { return { n: 0 }; },
  ItemAdded: function (s, e) { s.n += e.body.qty; return s; }
}).outputState();
JS

# checks TOOL: the same scenario through `f` (local) or `s` (server).
checks() {
  local x=$1
  $x 0 append cart-1 --type ItemAdded --data '{"qty":2}'
  $x 0 append cart-2 --type ItemAdded --data '{"qty":5}'
  $x 0 projection create total --file "$T/total.js" --wait
  $x 0 projection state total
  eq "$(jq -c . <<<"$OUT")" '{"n":7}'
  $x 0 projection result total
  eq "$(jq -c . <<<"$OUT")" '{"n":7}'
  run 0 "$FACTUM" "${where[@]}" projection create carts --file - --wait <"$T/count.js"
  $x 0 projection state carts --partition cart-2
  eq "$(jq -c . <<<"$OUT")" '{"items":5}'
  $x 0 projection state carts --partition cart-9
  eq "$OUT" '{}'
  $x 0 projection list --json
  eq "$(jq -s -c 'map(select(.name == "total" or .name == "carts")) | map([.name, .status, .mode])' <<<"$OUT")" \
    '[["total","Running","Continuous"],["carts","Running","Continuous"]]'
  $x 1 projection create total --file "$T/total.js"
  contains "$ERR" "exists already"

  $x 0 projection disable total
  $x 0 append cart-1 --type ItemAdded --data '{"qty":10}'
  $x 0 projection state total
  eq "$(jq -c . <<<"$OUT")" '{"n":7}'
  $x 0 projection enable total --wait
  $x 0 projection state total
  eq "$(jq -c . <<<"$OUT")" '{"n":17}'
  $x 0 projection reset total --wait
  $x 0 projection state total
  eq "$(jq -c . <<<"$OUT")" '{"n":17}'
  $x 0 projection update total --query 'fromAll().when({$init: () => ({n: 0}), ItemAdded: (s, e) => { s.n += 1; return s; }}).outputState();'
  $x 0 projection reset total --wait
  $x 0 projection state total
  eq "$(jq -c . <<<"$OUT")" '{"n":3}'

  $x 0 projection create once --mode one-time --query 'fromAll().when({$init: () => ({}), $any: (s, e) => s});'
  $x 0 projection list --mode one-time --json
  eq "$(jq -s -c 'map(.mode)' <<<"$OUT")" '["OneTime"]'
  # A transient projection is not stored: it lives as long as the manager
  # does, so only a server keeps it from one command to the next.
  if [ "$x" = s ]; then
    $x 0 projection create tmp --mode transient --query 'fromAll().when({$init: () => ({})});'
    $x 0 projection list --mode transient --json
    eq "$(jq -s -c 'map([.name, .mode])' <<<"$OUT")" '[["tmp","Transient"]]'
  fi

  $x 1 projection delete total
  contains "$ERR" "disable it first"
  $x 0 projection disable total
  $x 0 projection delete total --delete-state-stream --delete-checkpoint-stream
  $x 4 projection show total
}

where=(--data "$D")
checks f

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
