#!/usr/bin/env bash
# readmodels_js.sh - a read model with JavaScript handlers through the command
# line on a data directory (docs/readmodels.md, "JavaScript handlers"): create
# it from a file, append, wait, query what the script wrote; a script that
# does not compile is refused with its line, exit 2, and nothing is created;
# a handler that throws faults the read model, and a wait says why.
# Skipped (exit 77) when the worker factum-js was not built beside factum.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store
[ -x "$(dirname "$FACTUM")/factum-js" ] || { echo "no factum-js beside $FACTUM: skipped"; exit 77; }

cat >"$T/accounts.json" <<'EOF'
{
  "name": "accounts",
  "streams": ["account-"],
  "schema": ["CREATE TABLE acc(id TEXT PRIMARY KEY, owner TEXT, balance INTEGER NOT NULL DEFAULT 0)",
             "CREATE TABLE big(id TEXT, amount INTEGER)"],
  "script": "({\n  AccountOpened(e) {\n    sql('INSERT INTO acc(id, owner) VALUES (:id, :owner)', {id: e.data.id, owner: e.data.owner.name});\n  },\n  Deposited(e) {\n    if (e.data.amount < 0) throw new RangeError('a negative deposit');\n    if (e.data.amount > 1000) sql('INSERT INTO big VALUES (:id, :a)', {id: e.data.id, a: e.data.amount});\n    sql('UPDATE acc SET balance = balance + :a WHERE id = :id', {id: e.data.id, a: e.data.amount});\n  }\n})"
}
EOF

append_pos() {
    f 0 append "$@" --json
    jq -r .lastPosition <<<"$OUT"
}

append_pos account-1 --type AccountOpened --data '{"id":"a1","owner":{"name":"Ann"}}' >/dev/null
f 0 readmodel create "$T/accounts.json"
eq "$OUT" "created" "create"
append_pos account-1 --type Deposited --data '{"id":"a1","amount":5000}' >/dev/null
P=$(append_pos account-1 --type Deposited --data '{"id":"a1","amount":7}')
f 0 readmodel wait accounts "$P"
f 0 query accounts 'SELECT owner, balance FROM acc' --json
eq "$(jq -c .rows <<<"$OUT")" '[["Ann",5007]]' "the script's statements"
f 0 query accounts 'SELECT id, amount FROM big' --json
eq "$(jq -c .rows <<<"$OUT")" '[["a1",5000]]' "a branch in the script"

# A script that does not compile: refused with the line, nothing created.
cat >"$T/bad.json" <<'EOF'
{"name": "bad", "schema": ["CREATE TABLE t(a INTEGER)"], "script": "({ A(e) {\n  sql('x'\n} })"}
EOF
f 2 readmodel create "$T/bad.json"
contains "$ERR" "SyntaxError" "syntax error"
contains "$ERR" "(line 2)" "the line"
f 0 readmodel list --json
lacks "$OUT" '"bad"' "nothing created"

# A handler that throws: faulted at that event, the error in the status.
P=$(append_pos account-1 --type Deposited --data '{"id":"a1","amount":-1}')
f 1 readmodel wait accounts "$P"
contains "$ERR" "faulted" "the wait"
contains "$ERR" "RangeError: a negative deposit in the handler for event 3@account-1 (Deposited)" "the error"
contains "$ERR" "accounts.js:6" "the script's stack"
echo "ok"
