#!/usr/bin/env bash
# readmodels.sh - the read models of a real factumd over the network: the
# ReadModels gRPC service through `factum --server` (create, append, wait,
# query, pause, resume, rebuild, drop, bad definitions and statements, a
# wait that times out: DEADLINE_EXCEEDED, exit 1) and the /readmodels HTTP
# endpoints with curl (the same, 408 for a wait that times out, 400s for
# bad input, the Factum-ReadModel-* headers), and the factum_readmodel_*
# lines of /metrics. Run twice: with --insecure, then with TLS and
# authentication (certificates from mkcerts.sh), where readers are
# enforced: a user not among a read model's readers gets 403 /
# PERMISSION_DENIED (exit 5), anonymous 401, and only $ops/$admins may
# administer. With FACTUM_TEST_PG (tests/lib/with-postgres.sh) a PostgreSQL
# target too. Each run ends with SIGTERM and a clean shutdown.
# Usage: tests/integration/readmodels.sh /path/to/factumd /path/to/factum
set -euo pipefail
factumd=$(realpath "$1")
FACTUM=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/integration-readmodels.XXXXXX")
pid=""
cleanup() {
  [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT
. "$here/../../scripts/lib.sh"
unset FACTUM_DATA FACTUM_SERVER FACTUM_USERNAME FACTUM_PASSWORD
export COLUMNS=120 LC_ALL=C

fail() {
  echo "FAIL (readmodels.sh line ${BASH_LINENO[0]}, $mode): $*" >&2
  exit 1
}
eq() { [ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"; }
contains() { case "$1" in *"$2"*) ;; *) fail "${3:-text}: '$1' does not contain '$2'" ;; esac; }
# s CODE ARGS...: factum --server $URL ARGS, expecting exit CODE (stdout in OUT, stderr in ERR)
s() {
  local want=$1 rc=0
  shift
  "$FACTUM" --server "$URL" "$@" >"$T/.out" 2>"$T/.err" || rc=$?
  [ "$(tr -d '\000' <"$T/.out" | wc -c)" = "$(wc -c <"$T/.out")" ] || fail "a NUL byte in the output of factum $*"
  OUT=$(cat "$T/.out")
  ERR=$(cat "$T/.err")
  case "$ERR" in *Sanitizer*|*"runtime error"*) fail "sanitizer report from: $* :: $ERR" ;; esac
  [ "$rc" = "$want" ] || fail "exit $rc instead of $want from: factum $* :: stdout: $OUT :: stderr: $ERR"
}
# h CODE METHOD PATH [curl args...]: an HTTP request, expecting status CODE
# (body in BODY, headers in HDRS).
h() {
  local want=$1 method=$2 path=$3 code
  shift 3
  code=$(curl -sS "${CURL[@]}" -X "$method" -o "$T/.body" -D "$T/.hdrs" -w '%{http_code}' "$@" "$HTTP$path") ||
    fail "curl $method $path failed"
  [ "$(tr -d '\000' <"$T/.body" | wc -c)" = "$(wc -c <"$T/.body")" ] || fail "a NUL byte in the body of $method $path"
  BODY=$(cat "$T/.body")
  HDRS=$(tr -d '\r' <"$T/.hdrs")
  [ "$code" = "$want" ] || fail "HTTP $code instead of $want from $method $path :: $BODY"
}
# h_started: as h, for a read model just created or rebuilt: while it is starting (its tables are being
# created) the server answers 409 "try again" (docs/readmodels.md), so try again for up to 10 s.
h_started() {
  local i
  for i in $(seq 1 100); do
    code=$(curl -sS "${CURL[@]}" -X "$2" -o "$T/.body" -w '%{http_code}' "${@:4}" "$HTTP$3") || fail "curl $2 $3 failed"
    [ "$code" = 409 ] && grep -q "is starting" "$T/.body" || break
    sleep 0.1
  done
  h "$@"
}

cat >"$T/balances.json" <<'EOF'
{
  "name": "balances",
  "readers": ["$all"],
  "streams": ["account-"],
  "schema": ["CREATE TABLE balances(id TEXT PRIMARY KEY, balance INTEGER NOT NULL)"],
  "handlers": {
    "AccountOpened": "INSERT INTO balances(id, balance) VALUES (:data.id, 0)",
    "Deposited": ["UPDATE balances SET balance = balance + :data.amount WHERE id = :data.id"]
  }
}
EOF
cat >"$T/fragile.json" <<'EOF2'
{
  "name": "fragile",
  "onError": "stop",
  "streams": ["fragile-"],
  "schema": ["CREATE TABLE f(id TEXT PRIMARY KEY)"],
  "handlers": {"Added": "INSERT INTO f(id) VALUES (:data.id)"}
}
EOF2
cat >"$T/inline.json" <<'EOF2'
{
  "name": "inline",
  "lifecycle": "inline",
  "streams": ["inline-"],
  "schema": ["CREATE TABLE seen(id TEXT PRIMARY KEY)"],
  "handlers": {"Added": "INSERT INTO seen(id) VALUES (:data.id)"}
}
EOF2
cat >"$T/secret.json" <<'EOF'
{
  "name": "secret",
  "readers": ["auditors"],
  "streams": ["account-"],
  "schema": ["CREATE TABLE opened(id TEXT PRIMARY KEY)"],
  "handlers": {"AccountOpened": "INSERT INTO opened(id) VALUES (:data.id)"}
}
EOF

checks() {
  # ---- gRPC, through the command line ----
  s 0 readmodel create "$T/balances.json"
  s 0 append account-1 --type AccountOpened --data '{"id":"a1"}'
  s 0 append account-1 --type Deposited --data '{"id":"a1","amount":10}' --json
  P=$(jq -r .lastPosition <<<"$OUT")
  s 0 readmodel wait balances "$P"
  contains "$OUT" "balances reached position" "wait over gRPC"
  s 0 query balances 'SELECT id, balance FROM balances WHERE id = :id' --param id=a1 --json
  eq "$(jq -c .rows <<<"$OUT")" '[["a1",10]]' "query over gRPC"
  s 0 query balances 'SELECT id, balance FROM balances'
  contains "$OUT" "(1 row)" "table over gRPC"
  s 0 readmodel list --json
  eq "$(jq -r .name <<<"$OUT")" "balances" "list over gRPC"
  s 0 readmodel status balances
  contains "$OUT" "state        running" "status over gRPC"
  s 0 readmodel status balances --definition
  contains "$OUT" "AccountOpened" "definition over gRPC"
  # a wait beyond the head times out (DEADLINE_EXCEEDED): exit 1
  local t0 t1
  t0=$(date +%s%N)
  s 1 readmodel wait balances $((P + 1000)) --timeout 300
  t1=$(date +%s%N)
  contains "$ERR" "did not reach position" "wait timeout over gRPC"
  [ $(((t1 - t0) / 1000000)) -ge 250 ] || fail "the wait gave up after $(((t1 - t0) / 1000000)) ms"
  # bad definitions and statements: INVALID_ARGUMENT with the reason, exit 2; a name taken: exit 1
  printf '{"name":"bad","schema":["CREATE TABLE t(x)"],"handlers":{"A":"INSERT INTO t VALUE (:data.x)"}}' >"$T/bad.json"
  s 2 readmodel create "$T/bad.json"
  contains "$ERR" "syntax" "SQL syntax error over gRPC"
  printf '{"name":"bad","schema":["CREATE TABLE t(x)"],"handlers":{"A":"INSERT INTO t VALUES (:nosuch)"}}' >"$T/bad2.json"
  s 2 readmodel create "$T/bad2.json"
  contains "$ERR" "nosuch" "unknown parameter over gRPC"
  s 1 readmodel create "$T/balances.json"
  contains "$ERR" "exists" "ALREADY_EXISTS"
  s 4 readmodel status bad
  s 2 query balances 'DELETE FROM balances'
  s 0 query balances 'SELECT count(*) FROM balances' --json
  eq "$(jq -c .rows <<<"$OUT")" '[[1]]' "rows after a refused write"
  s 4 query nosuch 'SELECT 1'
  s 0 readmodel pause balances
  s 0 readmodel status balances --json
  eq "$(jq -r .state <<<"$OUT")" paused "paused over gRPC"
  s 0 readmodel resume balances

  # rebuilds over gRPC: with the definition it has, with a new one, with one of another name (refused)
  s 0 readmodel rebuild balances
  eq "$OUT" "rebuilding balances" "rebuild over gRPC"
  s 0 readmodel rebuild balances "$T/balances.json"
  s 2 readmodel rebuild balances "$T/secret.json"
  contains "$ERR" "named secret, not balances" "a rebuild under another name"
  s 4 readmodel rebuild nosuch
  local i
  for i in $(seq 1 100); do
    s 0 readmodel status balances --json
    [ "$(jq 'has("rebuild")' <<<"$OUT")" = false ] && [ "$(jq .generation <<<"$OUT")" -ge 3 ] && break
    sleep 0.1
  done
  [ "$(jq .generation <<<"$OUT")" -ge 3 ] || fail "the rebuilds did not switch: $OUT"
  s 0 query balances 'SELECT id, balance FROM balances' --min-position "$P" --json
  eq "$(jq -c .rows <<<"$OUT")" '[["a1",10]]' "rows after the rebuilds"
  s 0 query balances 'SELECT id FROM balances' --min-position "$P" --row-limit 1 --json
  eq "$(jq -c '[.rows, .truncated]' <<<"$OUT")" '[[["a1"]],false]' "query options over gRPC"
  s 1 query balances 'SELECT id FROM balances' --min-position $((P + 1000)) --wait-ms 200
  contains "$ERR" "did not reach position" "query's min-position out of time"
  s 0 readmodel parked balances --json
  eq "$(jq '.rows|length' <<<"$OUT")" 0 "parked over gRPC"
  # a statement that fails stops the read model (onError stop): FAILED_PRECONDITION, with why
  s 0 readmodel create "$T/fragile.json"
  s 0 append fragile-1 --type Added --data '{"id":"x"}'
  s 0 append fragile-1 --type Added --data '{"id":"x"}' --json
  local PF
  PF=$(jq -r .lastPosition <<<"$OUT")
  s 1 readmodel wait fragile "$PF" --timeout 5000
  contains "$ERR" "faulted" "wait on a faulted read model"
  contains "$ERR" "stopped at position $PF" "the event that stopped it"
  s 0 readmodel status fragile --json
  eq "$(jq -r '[.state, .error.position]|@tsv' <<<"$OUT")" "$(printf 'faulted\t%s' "$PF")" "faulted status"
  h 409 GET "/readmodels/fragile/wait?position=$PF"
  contains "$BODY" "stopped at position $PF" "HTTP wait on a faulted read model"
  h 200 GET /metrics
  contains "$BODY" 'factum_readmodel_state{readmodel="fragile",state="faulted"} 1' "faulted metric"
  s 0 readmodel drop fragile

  # inline: an acknowledged append is in the table before the next query, without a wait, from the
  # moment the read model is live (it has caught up and holds appends: docs/readmodels.md)
  s 0 readmodel create "$T/inline.json"
  for _ in $(seq 1 100); do
    s 0 readmodel status inline --json
    [ "$(jq -r .live <<<"$OUT")" = true ] && break
    sleep 0.1
  done
  eq "$(jq -r .live <<<"$OUT")" true "inline: live after create"
  for i in 1 2 3 4 5 6 7 8; do
    s 0 append inline-1 --type Added --data "{\"id\":\"k$i\"}"
    s 0 query inline 'SELECT count(*) FROM seen' --json
    eq "$(jq -c .rows <<<"$OUT")" "[[$i]]" "inline: the append before the query"
  done
  h 200 POST /readmodels/inline/query --data '{"sql":"SELECT count(*) FROM seen"}'
  eq "$(jq -c .rows <<<"$BODY")" "[[8]]" "inline over HTTP"
  s 0 readmodel drop inline

  # ---- HTTP, with curl ----
  h 200 GET /readmodels
  eq "$(jq -r '.readModels[0].name' <<<"$BODY")" balances "GET /readmodels"
  h 200 GET /readmodels/balances
  eq "$(jq -r '.status.state' <<<"$BODY")" running "GET /readmodels/balances state"
  eq "$(jq -r '.definition.name' <<<"$BODY")" balances "GET /readmodels/balances definition"
  h 404 GET /readmodels/nosuch
  contains "$BODY" "error" "404 body"
  h 400 GET '/readmodels/bad%20name'
  h 200 GET /readmodels/balances/query -G --data-urlencode 'sql=SELECT balance FROM balances WHERE id = :id' \
    --data-urlencode 'params={"id":"a1"}'
  eq "$(jq -c .rows <<<"$BODY")" '[[10]]' "GET query"
  contains "$HDRS" "Factum-ReadModel-Position: " "position header"
  contains "$HDRS" "Factum-ReadModel-Lag-Events: " "lag header"
  contains "$HDRS" "Factum-ReadModel-Lag-Ms: " "lag ms header"
  [ "$(sed -n 's/^Factum-ReadModel-Position: //p' <<<"$HDRS")" -ge "$P" ] || fail "position header < $P: $HDRS"
  h 200 POST /readmodels/balances/query -H 'Content-Type: application/json' \
    --data "{\"sql\":\"SELECT id FROM balances\",\"minPosition\":$P,\"rowLimit\":10}"
  eq "$(jq -c .rows <<<"$BODY")" '[["a1"]]' "POST query"
  h 400 POST /readmodels/balances/query --data '{"sql": 1}'
  h 400 POST /readmodels/balances/query --data 'not json'
  h 400 GET /readmodels/balances/query -G --data-urlencode 'sql=DELETE FROM balances'
  h 400 GET '/readmodels/balances/query?sql=SELECT%201&min_position=abc'
  h 400 GET '/readmodels/balances/query?sql=%zz'
  h 400 GET /readmodels/balances/query
  h 200 GET "/readmodels/balances/wait?position=$P"
  eq "$(jq -r .name <<<"$BODY")" balances "wait body"
  t0=$(date +%s%N)
  h 408 GET "/readmodels/balances/wait?position=$((P + 1000))&timeout=300"
  t1=$(date +%s%N)
  [ $(((t1 - t0) / 1000000)) -ge 250 ] || fail "the HTTP wait gave up after $(((t1 - t0) / 1000000)) ms"
  h 400 GET /readmodels/balances/wait
  if [ "$mode" = insecure ]; then
    # NET-9: a request answered later holds back what the client pipelined after it, in order
    local fd reply
    exec {fd}<>"/dev/tcp/127.0.0.1/$port"
    printf 'GET /readmodels/balances/wait?position=%s&timeout=300 HTTP/1.1\r\nHost: x\r\n\r\nGET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
      $((P + 1000)) >&"$fd"
    reply=$(timeout 10 cat <&"$fd" | tr -d '\r' | grep '^HTTP/1.1' | tr '\n' ' ')
    exec {fd}>&-
    eq "$reply" "HTTP/1.1 408 Request Timeout HTTP/1.1 204 No Content " "pipelined after a deferred answer"
  fi
  h 200 POST /readmodels/balances/pause
  h 200 GET /readmodels/balances
  eq "$(jq -r '.status.state' <<<"$BODY")" paused "paused over HTTP"
  h 200 POST /readmodels/balances/resume
  h 400 POST /readmodels --data '{"name": "x", "schema": ['
  h 400 POST /readmodels --data-binary @"$T/bad.json"
  h 409 POST /readmodels --data-binary @"$T/balances.json"
  h 201 POST /readmodels --data-binary @"$T/secret.json"
  h 200 POST /readmodels/secret/rebuild
  h_started 200 GET /readmodels/secret/parked
  eq "$(jq '.rows|length' <<<"$BODY")" 0 "parked over HTTP"
  h 405 PUT /readmodels/balances
  h 404 GET /readmodels/balances/frobnicate
  # /metrics
  h 200 GET /metrics
  for m in position lag_events lag_seconds applied_total parked_total skipped_total; do
    contains "$BODY" "factum_readmodel_${m}{readmodel=\"balances\"}" "metric $m"
  done
  contains "$BODY" 'factum_readmodel_state{readmodel="balances",state="running"} 1' "state metric"

  if [ "$mode" = secure ]; then
    # readers (RM-4): carl is neither a reader of secret nor an admin
    s 0 user create carl 'carl pw'
    local admin_url=$URL
    URL="kurrentdb://carl:carl%20pw@127.0.0.1:$port?tls=true&tlsCAFile=$certs/ca/ca.crt"
    s 5 query secret 'SELECT id FROM opened'
    s 5 readmodel wait secret 1
    s 5 readmodel pause balances
    s 5 readmodel create "$T/bad.json"
    s 0 query balances 'SELECT id FROM balances' --json # balances: readers $all
    eq "$(jq -c .rows <<<"$OUT")" '[["a1"]]' "a reader"
    s 0 readmodel list --json
    URL=$admin_url
    local keep=("${CURL[@]}")
    CURL=(--http1.1 --cacert "$certs/ca/ca.crt" -u 'carl:carl pw')
    h 403 GET /readmodels/secret/query -G --data-urlencode 'sql=SELECT id FROM opened'
    h 403 GET /readmodels/secret
    h 403 GET "/readmodels/secret/wait?position=1"
    h 403 POST /readmodels/balances/pause
    h 403 DELETE /readmodels/balances
    h 200 GET /readmodels/balances/query -G --data-urlencode 'sql=SELECT id FROM balances'
    CURL=(--http1.1 --cacert "$certs/ca/ca.crt")
    h 401 GET /readmodels/balances/query -G --data-urlencode 'sql=SELECT id FROM balances'
    h 401 GET /readmodels
    CURL=("${keep[@]}")
    h 200 GET /readmodels/secret/query -G --data-urlencode 'sql=SELECT id FROM opened' # admin
    eq "$(jq -c .rows <<<"$BODY")" '[["a1"]]' "admin reads secret"
  fi

  # the administrative actions are in $audit, without the definitions
  s 0 read '$audit' --json
  for a in readmodel-created readmodel-paused readmodel-resumed readmodel-rebuilt; do
    contains "$OUT" "\"type\":\"$a\"" "audit record $a"
  done
  eq "$(jq -r 'select(.type == "readmodel-created") | .data.target' <<<"$OUT" | sort -u | tr '\n' ' ')" \
    "balances fragile inline secret " "audited creations"
  case "$OUT" in *CREATE\ TABLE*) fail "a definition in the audit trail" ;; esac

  if [ -n "${FACTUM_TEST_PG:-}" ]; then
    # a PostgreSQL target (tests/lib/with-postgres.sh): the same calls; its connection string is shown
    # only to those who may administer
    local pgname="pg_$mode"
    jq -n --arg name "$pgname" --arg conn "$FACTUM_TEST_PG" '{name: $name, target: {type: "postgres", connection: $conn},
      readers: ["$all"], streams: ["account-"],
      schema: ["CREATE TABLE balances(id TEXT PRIMARY KEY, balance BIGINT NOT NULL)"],
      handlers: {AccountOpened: "INSERT INTO balances(id, balance) VALUES (:data.id, 0)",
                 Deposited: "UPDATE balances SET balance = balance + :data.amount WHERE id = :data.id"}}' >"$T/pg.json"
    h 201 POST /readmodels --data-binary @"$T/pg.json"
    s 0 readmodel wait "$pgname" "$P" --timeout 10000
    s 0 query "$pgname" 'SELECT id, balance FROM balances WHERE id = :id' --param id=a1 --json
    eq "$(jq -c .rows <<<"$OUT")" '[["a1",10]]' "a PostgreSQL target over gRPC"
    h 200 GET "/readmodels/$pgname/query" -G --data-urlencode 'sql=SELECT count(*) AS n FROM balances'
    eq "$(jq -c .rows <<<"$BODY")" '[[1]]' "a PostgreSQL target over HTTP"
    h 400 GET "/readmodels/$pgname/query" -G --data-urlencode 'sql=DELETE FROM balances'
    h 200 GET "/readmodels/$pgname"
    eq "$(jq -r .status.target <<<"$BODY")" postgres "the target"
    eq "$(jq -r .definition.target.connection <<<"$BODY")" "$FACTUM_TEST_PG" "the connection, to an admin"
    if [ "$mode" = secure ]; then
      local keep_pg=("${CURL[@]}")
      CURL=(--http1.1 --cacert "$certs/ca/ca.crt" -u 'carl:carl pw')
      h 200 GET "/readmodels/$pgname"
      eq "$(jq -r .definition.target.connection <<<"$BODY")" "(hidden)" "the connection, to a reader"
      CURL=("${keep_pg[@]}")
    fi
    s 0 readmodel drop "$pgname"
  fi
  h 200 DELETE /readmodels/secret
  h 404 GET /readmodels/secret
  s 0 readmodel drop balances
  s 0 readmodel list
  eq "$OUT" "" "nothing left"
}

certs=$T/certs
for mode in insecure secure; do
  log=$T/factumd-$mode.log
  if [ "$mode" = secure ]; then
    bash "$here/mkcerts.sh" "$certs" >/dev/null
    factumd_start "$log" "$factumd" --certificate-file "$certs/node.crt" --certificate-private-key-file "$certs/node.key" \
      --trusted-root-certificates-path "$certs/ca" --mem-db --node-ip 127.0.0.1 --node-port 0
    port=$factumd_port
    URL="kurrentdb://admin:changeit@127.0.0.1:$port?tls=true&tlsCAFile=$certs/ca/ca.crt"
    HTTP="https://127.0.0.1:$port"
    CURL=(--http1.1 --cacert "$certs/ca/ca.crt" -u admin:changeit)
  else
    factumd_start "$log" "$factumd" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0
    port=$factumd_port
    URL="kurrentdb://127.0.0.1:$port?tls=false"
    HTTP="http://127.0.0.1:$port"
    CURL=()
  fi
  pid=$factumd_pid
  echo "== read models over gRPC and HTTP, factumd $mode on port $port"
  checks
  # a wait in progress ends at once when factumd stops (UNAVAILABLE), not at the end of the drain
  s 0 readmodel create "$T/balances.json"
  "$FACTUM" --server "$URL" readmodel wait balances 999999999 --timeout 60000 >"$T/w.out" 2>&1 &
  wpid=$!
  sleep 0.5
  t0=$(date +%s%N)
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  t1=$(date +%s%N)
  wrc=0
  wait "$wpid" || wrc=$?
  [ "$wrc" = 1 ] || fail "the wait ended with $wrc: $(cat "$T/w.out")"
  contains "$(cat "$T/w.out")" "stopping" "a wait ended by the shutdown"
  [ $(((t1 - t0) / 1000000)) -lt 4000 ] || fail "factumd took $(((t1 - t0) / 1000000)) ms to stop"
  pid=""
  [ "$rc" = 0 ] || { cat "$log"; fail "factumd did not shut down cleanly (exit $rc)"; }
  # (the read model faulted on purpose logs why, as an ERROR)
  if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$log" | grep -v "read model fragile stopped at the event"; then
    fail "errors in the log"
  fi
done
# --run-readmodels=false: nothing is served, and every call says why
mode=off
log=$T/factumd-off.log
factumd_start "$log" "$factumd" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0 --run-readmodels=false
pid=$factumd_pid port=$factumd_port
URL="kurrentdb://127.0.0.1:$port?tls=false" HTTP="http://127.0.0.1:$port" CURL=()
s 1 readmodel list
contains "$ERR" "runs no read models" "gRPC without read models"
h 503 GET /readmodels
contains "$BODY" "runs no read models" "HTTP without read models"
h 200 GET /info
eq "$(jq .features.readModels <<<"$BODY")" false "/info"
kill -TERM "$pid"
wait "$pid" || fail "factumd did not shut down cleanly"
pid=""
echo "readmodels.sh: ok"
