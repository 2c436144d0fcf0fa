#!/usr/bin/env bash
# rm_crash_server.sh - the read models' crash test in factumd (RM-2, RM-5,
# RM-6): clients append bank events over gRPC while factumd applies them to
# a read model (its lifecycle switched between async and inline by
# rebuilds), and factumd is killed with SIGKILL at a random moment, cycle
# after cycle. At the end the read model's table must equal the balances
# computed from the log alone (`factum read '$all' --json`: every event's
# effect once; `n` counts each account's events, so a doubled or lost one
# shows) and the table of a read model created at the end and built without
# interruption. SQLite, and PostgreSQL with FACTUM_TEST_PG
# (tests/lib/with-postgres.sh). Seed printed; FACTUM_SEED replays the
# choices (not the timing). FACTUM_RM_CRASH_CYCLES: cycles (default 6).
# Usage: tests/fault/rm_crash_server.sh /path/to/factumd /path/to/factum
set -euo pipefail
factumd=$(realpath "$1")
FACTUM=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/rm-crash-server.XXXXXX")
appenders=()
cleanup() {
  for p in "${appenders[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -z "${factumd_pid:-}" ] || kill -9 "$factumd_pid" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
. "$here/../../scripts/lib.sh"
unset FACTUM_DATA FACTUM_SERVER FACTUM_USERNAME FACTUM_PASSWORD
export LC_ALL=C
seed=${FACTUM_SEED:-$(((RANDOM << 15) | RANDOM))}
echo "rm_crash_server: seed $seed (replay with FACTUM_SEED=$seed)"
RANDOM=$seed
cycles=${FACTUM_RM_CRASH_CYCLES:-6}
target=""
[ -n "${FACTUM_TEST_PG:-}" ] && target=",\"target\":{\"type\":\"postgres\",\"connection\":\"$FACTUM_TEST_PG\"}"
echo "target: ${FACTUM_TEST_PG:+postgres}${FACTUM_TEST_PG:-sqlite}" | sed 's/host=.*//'
fail() {
  echo "FAIL (rm_crash_server.sh line ${BASH_LINENO[0]}): $*" >&2
  [ -f "$T/log" ] && tail -20 "$T/log" >&2
  exit 1
}
def() { # NAME LIFECYCLE
  cat <<EOD
{"name":"$1"$target,"lifecycle":"$2","streams":["acct-"],
 "schema":"CREATE TABLE acc(id TEXT PRIMARY KEY, balance BIGINT NOT NULL, n BIGINT NOT NULL)",
 "handlers":{"Opened":"INSERT INTO acc VALUES (:data.id, 0, 1)",
             "Moved":["UPDATE acc SET balance = balance + :data.amount WHERE id = :data.id",
                      "UPDATE acc SET n = n + 1 WHERE id = :data.id"]}}
EOD
}
start() {
  factumd_start "$T/log" "$factumd" --insecure --db "$T/db" --node-ip 127.0.0.1 --node-port 0 || fail "factumd did not start"
  URL="kurrentdb://127.0.0.1:$factumd_port?tls=false"
}
cli() { "$FACTUM" --server "$URL" "$@"; }
# An appender: NDJSON batches of 1-3 Moved events to one account, until killed.
appender() {
  local k=$1 r=$2
  RANDOM=$r
  while :; do
    local a=$((RANDOM % 10)) n=$((1 + RANDOM % 3)) lines=""
    for ((i = 0; i < n; i++)); do
      lines+="{\"type\":\"Moved\",\"data\":{\"id\":\"a$a\",\"amount\":$((RANDOM % 200 - 100))}}"$'\n'
    done
    printf '%s' "$lines" | "$FACTUM" --server "$URL" append "acct-$a" --stdin >/dev/null 2>&1 || true
  done
}

start
def bank async >"$T/bank.json"
cli readmodel create "$T/bank.json" >/dev/null || fail "create"
for a in 0 1 2 3 4 5 6 7 8 9; do
  cli append "acct-$a" --expected no-stream --type Opened --data "{\"id\":\"a$a\"}" >/dev/null || fail "open a$a"
done
for ((c = 0; c < cycles; c++)); do
  [ -n "${factumd_pid:-}" ] && kill -0 "$factumd_pid" 2>/dev/null || start
  if ((RANDOM % 2)); then
    life=async
    ((RANDOM % 2)) && life=inline
    def bank $life >"$T/bank.json"
    cli readmodel rebuild bank "$T/bank.json" >/dev/null 2>&1 || true
  fi
  appenders=()
  for k in 1 2 3 4; do
    appender "$k" "$RANDOM" &
    appenders+=($!)
  done
  sleep "$((RANDOM % 2)).$((2 + RANDOM % 8))"
  kill -9 "$factumd_pid"
  wait "$factumd_pid" 2>/dev/null || true
  for p in "${appenders[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  appenders=()
  factumd_pid=""
done

start
def fresh async >"$T/fresh.json"
cli readmodel create "$T/fresh.json" >/dev/null || fail "create fresh"
head=$(cli append acct-0 --type Moved --data '{"id":"a0","amount":0}' --json | jq -r .lastPosition)
cli readmodel wait bank "$head" --timeout 120000 >/dev/null || fail "bank did not reach $head: $(cli readmodel status bank)"
cli readmodel wait fresh "$head" --timeout 120000 >/dev/null || fail "fresh did not reach $head"
bank=$(cli query bank 'SELECT id, balance, n FROM acc ORDER BY id' --json | jq -c .rows)
fresh=$(cli query fresh 'SELECT id, balance, n FROM acc ORDER BY id' --json | jq -c .rows)
# The expectation from the log alone.
cli read '$all' --stream-prefix acct- --json >"$T/all.ndjson" || fail "read \$all"
want=$(jq -s -c '[group_by(.stream)[] | {id: ("a" + (.[0].stream | ltrimstr("acct-"))),
                   b: (map(select(.type == "Moved") | .data.amount) | add // 0), n: length}]
                 | sort_by(.id) | map([.id, .b, .n])' "$T/all.ndjson")
events=$(wc -l <"$T/all.ndjson")
echo "$cycles cycles, $events account events, head $head"
[ "$bank" = "$want" ] || fail "the read model's table differs from the log: $bank vs $want"
[ "$fresh" = "$want" ] || fail "an uninterrupted read model differs from the log: $fresh vs $want"
cli readmodel drop fresh >/dev/null
cli readmodel drop bank >/dev/null
kill "$factumd_pid"
wait "$factumd_pid" 2>/dev/null || true
factumd_pid=""
echo "rm_crash_server: ok"
