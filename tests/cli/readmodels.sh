#!/usr/bin/env bash
# readmodels.sh - `factum readmodel` and `factum query` on a data directory:
# create a read model, append with `factum append`, wait for the position
# the append printed, query as a table and as JSON (with parameters),
# pause and resume, rebuild with a new definition, the parked events, drop;
# and bad input (malformed JSON, SQL syntax errors, unknown parameters, a
# statement that writes in a query, a name taken) gets a clear one-line
# error, exit 2 (1 for a name taken, 4 for an unknown read model), and
# changes nothing.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store

cat >"$T/balances.json" <<'EOF'
{
  "name": "balances",
  "streams": ["account-"],
  "schema": ["CREATE TABLE balances(id TEXT PRIMARY KEY, balance INTEGER NOT NULL)"],
  "handlers": {
    "AccountOpened": "INSERT INTO balances(id, balance) VALUES (:data.id, 0)",
    "Deposited": ["UPDATE balances SET balance = balance + :data.amount WHERE id = :data.id"]
  }
}
EOF

# position P of the last append's --json answer
append_pos() {
    f 0 append "$@" --json
    jq -r .lastPosition <<<"$OUT"
}

append_pos account-1 --type AccountOpened --data '{"id":"a1"}' >/dev/null
f 0 readmodel create "$T/balances.json"
eq "$OUT" "created" "create"
f 0 readmodel list
contains "$OUT" "balances" "list"
contains "$OUT" "NAME" "list header"
f 0 readmodel list --json
eq "$(jq -r '[.name,.target,.lifecycle]|@tsv' <<<"$OUT")" "$(printf 'balances\tsqlite\tasync')" "list --json"
[ -n "$(ls "$D/readmodels")" ] || fail "no SQLite file in $D/readmodels"

# Append, wait for the position the append printed, query.
P=$(append_pos account-1 --type Deposited --data '{"id":"a1","amount":10}')
append_pos account-2 --type AccountOpened --data '{"id":"a2"}' >/dev/null
P=$(append_pos other-1 --type Deposited --data '{"id":"a2","amount":99}') # not an account- stream
f 0 readmodel wait balances "$P"
contains "$OUT" "balances reached position" "wait"
f 0 query balances 'SELECT id, balance FROM balances ORDER BY id'
eq "$(sed -n 1p <<<"$OUT" | tr -s ' ')" " id | balance" "table header"
contains "$(sed -n 2p <<<"$OUT")" "----+" "table rule"
contains "$(sed -n 3p <<<"$OUT")" "a1 |" "row 1"
contains "$(sed -n 3p <<<"$OUT")" " 10" "row 1 balance"
contains "$(sed -n 4p <<<"$OUT")" "a2 |" "row 2"
eq "$(sed -n 5p <<<"$OUT")" "(2 rows)" "row count"
f 0 query balances 'SELECT balance FROM balances WHERE id = :id' --param id=a1 --json
eq "$(jq -c .rows <<<"$OUT")" "[[10]]" "query --json rows"
eq "$(jq -c .columns <<<"$OUT")" '["balance"]' "query --json columns"
[ "$(jq .position <<<"$OUT")" -ge "$P" ] || fail "position $(jq .position <<<"$OUT") < $P"
f 0 query balances 'SELECT count(*) AS n FROM balances WHERE balance >= :min' --params '{"min": 5}' --json
eq "$(jq -c .rows <<<"$OUT")" "[[1]]" "--params"
f 0 query balances 'SELECT id FROM balances ORDER BY id' --row-limit 1 --json
eq "$(jq -c '[.rows, .truncated]' <<<"$OUT")" '[[["a1"]],true]' "row limit"
f 0 query balances 'SELECT id FROM balances' --min-position "$P" --json
eq "$(jq '.rows|length' <<<"$OUT")" 2 "--min-position"

# Pause: appends are not applied (a wait times out, exit 1); resume goes on.
f 0 readmodel pause balances
eq "$OUT" "paused balances" "pause"
f 0 readmodel status balances --json
eq "$(jq -r .state <<<"$OUT")" "paused" "state after pause"
P2=$(append_pos account-1 --type Deposited --data '{"id":"a1","amount":5}')
f 1 readmodel wait balances "$P2" --timeout 300
one_error_line readmodel
contains "$ERR" "did not reach position $P2 within 300 ms"
f 0 query balances 'SELECT balance FROM balances WHERE id = :id' --param id=a1 --json
eq "$(jq -c .rows <<<"$OUT")" "[[10]]" "paused: not applied"
f 0 readmodel resume balances
f 0 readmodel wait balances "$P2"
f 0 query balances 'SELECT balance FROM balances WHERE id = :id' --param id='"a1"' --json
eq "$(jq -c .rows <<<"$OUT")" "[[15]]" "resumed: applied"
f 0 readmodel status balances
contains "$OUT" "state        running" "status"
contains "$OUT" "position     " "status position"

# Bad input: a clear one-line error, exit 2 (or 1, 4), nothing changed.
before_list=$("$FACTUM" --data "$D" readmodel list --json)
before_files=$(ls "$D/readmodels")
unchanged() {
    local l
    l=$("$FACTUM" --data "$D" readmodel list --json)
    [ "$(jq -c '[.name,.state,.generation]' <<<"$l")" = "$(jq -c '[.name,.state,.generation]' <<<"$before_list")" ] ||
        fail "the read models changed after $1: $l"
    eq "$(ls "$D/readmodels")" "$before_files" "files after $1"
}
printf '{"name": "broken", "schema": [' >"$T/bad.json"
f 2 readmodel create "$T/bad.json"
one_error_line readmodel
unchanged "malformed JSON"
cat >"$T/syntax.json" <<'EOF'
{"name": "syntax", "schema": ["CREATE TABLE t(x INTEGER)"], "handlers": {"A": "INSERT INTO t VALUE (:data.x)"}}
EOF
f 2 readmodel create "$T/syntax.json"
one_error_line readmodel
contains "$ERR" "syntax" "SQL syntax error"
unchanged "a statement with a syntax error"
cat >"$T/param.json" <<'EOF'
{"name": "param", "schema": ["CREATE TABLE t(x INTEGER)"], "handlers": {"A": "INSERT INTO t VALUES (:nosuch)"}}
EOF
f 2 readmodel create "$T/param.json"
one_error_line readmodel
contains "$ERR" "nosuch" "unknown parameter"
unchanged "an unknown parameter"
cat >"$T/schema.json" <<'EOF'
{"name": "schema", "schema": ["CREATE TABEL t(x INTEGER)"], "handlers": {"A": "SELECT 1"}}
EOF
f 2 readmodel create "$T/schema.json"
one_error_line readmodel
unchanged "a bad schema"
f 1 readmodel create "$T/balances.json"
one_error_line readmodel
contains "$ERR" "exists" "a name taken"
unchanged "a name taken"
f 2 query balances 'DELETE FROM balances'
one_error_line query
unchanged "a write in a query"
f 2 query balances 'SELECT 1; DELETE FROM balances'
one_error_line query
f 2 query balances 'SELECT * FROM balances WHERE id = :id'
one_error_line query
contains "$ERR" "id" "a parameter not given"
f 2 query balances 'SELEC 1'
one_error_line query
f 0 query balances 'SELECT count(*) FROM balances' --json
eq "$(jq -c .rows <<<"$OUT")" "[[2]]" "rows after the refused statements"
f 4 query nosuch 'SELECT 1'
one_error_line query
f 4 readmodel status nosuch
f 4 readmodel pause nosuch
f 2 readmodel wait balances notanumber
f 2 query balances 'SELECT 1' --param novalue
f 2 query balances 'SELECT 1' --params '[1]'
f 2 readmodel frobnicate balances
f 0 readmodel --help
contains "$OUT" "usage: factum readmodel"
f 0 query --help
contains "$OUT" "usage: factum query"

# Rebuild with a new definition (a column more): the new generation
# replaces the old one once it has caught up, with every event replayed.
cat >"$T/balances2.json" <<'EOF'
{
  "name": "balances",
  "streams": ["account-"],
  "schema": ["CREATE TABLE balances(id TEXT PRIMARY KEY, balance INTEGER NOT NULL, deposits INTEGER NOT NULL)"],
  "handlers": {
    "AccountOpened": "INSERT INTO balances(id, balance, deposits) VALUES (:data.id, 0, 0)",
    "Deposited": "UPDATE balances SET balance = balance + :data.amount, deposits = deposits + 1 WHERE id = :data.id"
  }
}
EOF
gen=$("$FACTUM" --data "$D" readmodel status balances --json | jq .generation)
f 0 readmodel rebuild balances "$T/balances2.json"
eq "$OUT" "rebuilding balances" "rebuild"
# the rebuild runs while the read models are open: keep them open (a wait) until it has switched
for _ in $(seq 1 100); do
    f 0 readmodel wait balances "$P2"
    f 0 readmodel status balances --json
    [ "$(jq .generation <<<"$OUT")" -gt "$gen" ] && [ "$(jq 'has("rebuild")' <<<"$OUT")" = false ] && break
    sleep 0.1
done
[ "$(jq .generation <<<"$OUT")" -gt "$gen" ] || fail "the rebuild did not switch: $OUT"
f 0 query balances 'SELECT id, balance, deposits FROM balances ORDER BY id' --json
eq "$(jq -c .rows <<<"$OUT")" '[["a1",15,2],["a2",0,0]]' "rebuilt rows"
f 0 readmodel status balances --definition
contains "$OUT" "deposits" "the new definition is stored"
f 0 readmodel parked balances --json
eq "$(jq '.rows|length' <<<"$OUT")" 0 "no parked events"

# Park: an event whose statement fails is parked, the read model goes on.
cat >"$T/strict.json" <<'EOF'
{
  "name": "strict",
  "onError": "park",
  "streams": ["strict-"],
  "schema": ["CREATE TABLE s(id TEXT PRIMARY KEY)"],
  "handlers": {"Added": "INSERT INTO s(id) VALUES (:data.id)"}
}
EOF
f 0 readmodel create "$T/strict.json"
append_pos strict-1 --type Added --data '{"id":"x"}' >/dev/null
append_pos strict-1 --type Added --data '{"id":"x"}' >/dev/null # a duplicate key: parked
P3=$(append_pos strict-1 --type Added --data '{"id":"y"}')
f 0 readmodel wait strict "$P3"
f 0 query strict 'SELECT id FROM s ORDER BY id' --json
eq "$(jq -c .rows <<<"$OUT")" '[["x"],["y"]]' "rows beside the parked event"
f 0 readmodel parked strict --json
eq "$(jq '.rows|length' <<<"$OUT")" 1 "one parked event"
f 0 readmodel parked strict
contains "$OUT" "(1 row)" "parked as a table"

# Drop: gone, with its tables.
f 0 readmodel drop strict
eq "$OUT" "dropped strict" "drop"
f 4 readmodel status strict
f 0 readmodel list --json
eq "$(jq -r .name <<<"$OUT")" "balances" "list after drop"
f 0 readmodel drop balances
f 0 readmodel list
eq "$OUT" "" "list after dropping everything"
f 4 query balances 'SELECT 1'
echo "readmodels.sh: ok"
