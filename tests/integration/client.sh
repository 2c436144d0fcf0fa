#!/usr/bin/env bash
# client.sh - the C client and the command line over the network: starts a
# real factumd (temporary database, a free port on 127.0.0.1), runs the C
# client's test program against it (FACTUMD_URL), then drives `factum
# --server` through every command that works remotely, and finally stops
# the server with SIGTERM and checks that it shut down cleanly.
# With a fourth argument, tls_proxy (tests/integration/tls_proxy.c): the
# client's TLS against OpenSSL's own server in front of factumd - the C
# client's whole program over TLS, then certificates refused for each
# reason, mutual TLS, ALPN, and TLS spoken to a cleartext port and back.
# Usage: tests/integration/client.sh /path/to/factumd /path/to/factum /path/to/integration_client [/path/to/tls_proxy]
set -euo pipefail
factumd=$(realpath "$1")
FACTUM=$(realpath "$2")
client_test=$(realpath "$3")
tls_proxy=${4:+$(realpath "$4")}
: "${FACTUM_TEST_TMP:=${TMPDIR:-/tmp}}"
mkdir -p "$FACTUM_TEST_TMP"
T=$(mktemp -d "$FACTUM_TEST_TMP/integration-client.XXXXXX")
log=$T/factumd.log
pid=""
cleanup() {
  [ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true
  [ ! -f "$T/proxies" ] || while read -r p; do kill "$p" 2>/dev/null || true; done <"$T/proxies"
  rm -rf "$T"
}
trap cleanup EXIT
. "$(dirname "$0")/../../scripts/lib.sh"
factumd_start "$log" "$factumd" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid port=$factumd_port
URL="kurrentdb://127.0.0.1:$port?tls=false"
export FACTUMD_URL=$URL
unset FACTUM_DATA FACTUM_SERVER
export COLUMNS=120 LC_ALL=C

status=0
# What the C client's program makes factumd log as an error on purpose: the
# read model it stops with a duplicate key (t_readmodels).
expected_errors='read model rm_[0-9a-f]+ stopped at the event'
echo "== C client against factumd on port $port"
if ! "$client_test"; then status=1; fi

echo "== factum --server against factumd on port $port"
# Every check runs `factum --server $URL ...` (s) or, to compare, the local
# command line on a data directory (l); both leave stdout in $OUT, stderr
# in $ERR, and fail on an unexpected exit status or a sanitizer report.
cli_checks() {
  set -euo pipefail
  fail() {
    local i=0 # the line of cli_checks that failed
    while [ "${FUNCNAME[i + 1]:-cli_checks}" != cli_checks ]; do i=$((i + 1)); done
    echo "FAIL (client.sh line ${BASH_LINENO[i]}): $*" >&2
    exit 1
  }
  run() {
    local want=$1 rc=0
    shift
    "$@" >"$T/.out" 2>"$T/.err" || rc=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
    case "$ERR" in *Sanitizer*|*"runtime error"*) fail "sanitizer report from: $* :: $ERR" ;; esac
    [ "$rc" = "$want" ] || fail "exit $rc instead of $want from: $* :: stdout: $OUT :: stderr: $ERR"
  }
  s() { local want=$1; shift; run "$want" "$FACTUM" --server "$URL" "$@"; }
  l() { local want=$1; shift; run "$want" "$FACTUM" --data "$T/local" "$@"; }
  eq() { [ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"; }
  contains() { case "$1" in *"$2"*) ;; *) fail "${3:-text}: '$1' does not contain '$2'" ;; esac; }
  lacks() { case "$1" in *"$2"*) fail "${3:-text}: '$1' contains '$2'" ;; esac; }

  # append: one event, expectations, NDJSON, --json
  s 0 append cli-orders --type OrderPlaced --data '{"sku": "a-1", "qty": 2}' --expected no-stream
  eq "$OUT" "appended 1 event: cli-orders@0, position $(jq -n "$(sed -n 's/.*position \([0-9]*\)$/\1/p' <<<"$OUT")")"
  P0=$(sed -n 's/.*position \([0-9]*\)$/\1/p' <<<"$OUT")
  s 0 append cli-orders --type OrderPaid --data '{"amount":10}' --metadata '{"user":"bob"}' --expected 0 --json
  eq "$(jq -r '[.stream,.count,.firstVersion,.lastVersion,.lastPosition,.idempotent]|@tsv' <<<"$OUT")" \
    "$(printf 'cli-orders\t1\t1\t1\t%s\tfalse' $((P0 + 1)))" "append --json"
  s 3 append cli-orders --type X --data '{}' --expected 5
  contains "$ERR" "factum: append: wrong expected version for stream 'cli-orders': expected 5, actual version 1"
  s 3 append cli-fresh --type X --data '{}' --expected exists
  contains "$ERR" "expected exists, the stream has no events"
  printf '%s\n' '{"type":"A","data":{"n":1}}' '' '{"type":"B","data":"aGk=","dataEncoding":"base64"}' \
    '{"type":"C","metadata":{"m":true}}' >"$T/three.ndjson"
  s 0 append cli-batch --file "$T/three.ndjson" --expected no-stream
  contains "$OUT" "appended 3 events: cli-batch@0..2"
  s 2 append cli-batch --type X --data '{not json'
  s 2 append '' --type X
  # Bad input is refused before anything is sent.
  s 0 read cli-batch --count 5
  eq "$(wc -l <<<"$OUT")" 3 "cli-batch events"

  # read: a stream, both ways, --from, --count, --json
  s 0 read cli-orders
  contains "$OUT" "cli-orders@0  OrderPlaced"
  contains "$OUT" "cli-orders@1  OrderPaid"
  s 0 read cli-orders --backward --count 1 --json
  eq "$(jq -r '[.version,.type,.data.amount,.metadata.user]|@tsv' <<<"$OUT")" "$(printf '1\tOrderPaid\t10\tbob')"
  s 0 read cli-batch --from 1 --json
  eq "$(jq -r .version <<<"$OUT" | tr '\n' ' ')" "1 2 " "read --from 1"
  eq "$(jq -r 'select(.version==1)|[.data,.dataEncoding]|@tsv' <<<"$OUT")" "$(printf 'aGk=\tbase64')"
  s 0 read cli-batch --backward --from 1 --json
  eq "$(jq -r .version <<<"$OUT" | tr '\n' ' ')" "1 0 " "read --backward --from 1"
  s 4 read cli-nothing
  eq "$ERR" "factum: read: stream 'cli-nothing' not found"

  # read '$all' with filters, combined as locally: all must hold
  s 0 read '$all' --stream-prefix cli-o --json
  eq "$(jq -r .type <<<"$OUT" | tr '\n' ' ')" "OrderPlaced OrderPaid " "stream prefix"
  s 0 read '$all' --type-prefix Order --stream-regex '^cli-' --json
  eq "$(jq -r .type <<<"$OUT" | tr '\n' ' ')" "OrderPlaced OrderPaid " "type prefix and stream regex"
  s 0 read '$all' --stream-prefix cli-batch --type-regex '^[BC]$' --backward --json
  eq "$(jq -r .type <<<"$OUT" | tr '\n' ' ')" "C B " "backward, prefix and regex"
  s 0 read '$all' --type-prefix Order --count 1 --json
  eq "$(jq -r .type <<<"$OUT")" "OrderPlaced" "--count"
  s 0 read '$all' --from "$P0" --count 2 --json
  eq "$(jq -r .position <<<"$OUT" | tr '\n' ' ')" "$P0 $((P0 + 1)) " "--from is inclusive"
  s 0 read '$all' --from "$((P0 + 1))" --backward --count 2 --json
  eq "$(jq -r .position <<<"$OUT" | tr '\n' ' ')" "$((P0 + 1)) $P0 " "--backward --from is inclusive"
  s 0 meta set cli-orders '{"owner":"x"}'
  s 0 read '$all' --stream-prefix '$$cli-orders' --json
  eq "$(jq -r .type <<<"$OUT")" '$metadata' "system events are in \$all"
  s 0 read '$all' --stream-prefix '$$cli-orders' --exclude-system --json
  eq "$OUT" "" "--exclude-system"
  s 2 read '$all' --stream-regex '([bad'
  s 2 read cli-orders --type-prefix X

  # info, meta get / set
  s 0 info cli-orders --json
  eq "$(jq -r '[.status,.lastVersion,.metadataVersion,.metadata.owner]|@tsv' <<<"$OUT")" "$(printf 'live\t1\t0\tx')"
  s 0 info cli-none
  contains "$OUT" "status:           none"
  s 0 meta get cli-orders
  eq "$OUT" '{"owner":"x"}'
  s 3 meta set cli-orders '{"$maxCount":1}' --expected 5
  contains "$ERR" "wrong expected version for stream '\$\$cli-orders': expected 5, actual version 0"
  s 0 meta set cli-orders '{"$maxCount":1}' --expected 0 --json
  eq "$(jq -r '[.stream,.version]|@tsv' <<<"$OUT")" "$(printf 'cli-orders\t1')"
  s 0 read cli-orders
  eq "$(wc -l <<<"$OUT")" 1 "\$maxCount hides the older event"
  s 2 meta set cli-orders '{"$maxCount":"x"}'
  s 2 meta set cli-orders '[1]'

  # delete and tombstone
  s 3 delete cli-orders --expected 0
  s 0 delete cli-orders --expected 1
  contains "$OUT" "soft-deleted cli-orders (metadata event at position"
  s 4 read cli-orders
  eq "$ERR" "factum: read: stream 'cli-orders' is soft-deleted"
  s 0 info cli-orders --json
  eq "$(jq -r .status <<<"$OUT")" "soft-deleted"
  s 0 append cli-orders --type Again --data '{}'
  eq "$OUT" "appended 1 event: cli-orders@2, position $(jq -n "$(sed -n 's/.*position \([0-9]*\)$/\1/p' <<<"$OUT")")"
  s 0 tombstone cli-batch --json
  jq -e '.position > 0' <<<"$OUT" >/dev/null || fail "tombstone --json: $OUT"
  s 4 read cli-batch
  eq "$ERR" "factum: read: stream 'cli-batch' is tombstoned (permanently deleted)"
  s 4 append cli-batch --type X
  s 4 tombstone cli-batch
  s 0 info cli-batch
  contains "$OUT" "status:           tombstoned"

  # export and import: a local store to the server and back
  l 0 append imp-a --type A --data '{"i":1}' --metadata '{"who":"me"}'
  l 0 append imp-a --type B --data 'raw bytes' --binary
  l 0 meta set imp-a '{"$maxCount":5}' --expected no-stream
  l 0 append imp-t --type T --data '{}'
  l 0 tombstone imp-t
  l 0 export "$T/local.ndjson"
  s 0 import "$T/local.ndjson"
  contains "$OUT" "imported 5 events into 3 streams"
  for stream in imp-a '$$imp-a'; do
    l 0 read "$stream" --json
    want=$(jq -c 'del(.position,.timestamp)' <<<"$OUT")
    s 0 read "$stream" --json
    eq "$(jq -c 'del(.position,.timestamp)' <<<"$OUT")" "$want" "imported $stream"
  done
  s 4 read imp-t
  s 3 import "$T/local.ndjson"
  contains "$ERR" "wrong expected version"
  s 0 read imp-a
  eq "$(wc -l <<<"$OUT")" 2 "a refused import writes nothing"
  s 0 export "$T/remote.ndjson"
  contains "$OUT" "exported "
  eq "$(jq -c 'select(.stream=="imp-a")|del(.position,.timestamp)' "$T/remote.ndjson")" \
    "$(jq -c 'select(.stream=="imp-a")|del(.position,.timestamp)' "$T/local.ndjson")" "export of imp-a"
  s 0 export
  eq "$(wc -l <<<"$OUT")" "$(wc -l <"$T/remote.ndjson")" "export to stdout"

  # tail: follow a stream / $all through a subscription
  s 0 append cli-tail --type T1 --data '{"n":1}'
  s 0 append cli-tail --type T2 --data '{"n":2}'
  s 0 tail cli-tail --from start --count 2 --json
  eq "$(jq -r '[.version,.type]|@tsv' <<<"$OUT" | tr '\n' ' ')" "$(printf '0\tT1 1\tT2 ')" "tail --from start"
  s 0 tail cli-tail --from 0 --markers --idle-exit 300
  contains "$OUT" "cli-tail@1  T2"
  contains "$OUT" "# caught up at 1"
  # live: a tail started before the append prints it, then exits after --count
  ("$FACTUM" --server "$URL" tail cli-tail --count 1 --json >"$T/tail.out" 2>"$T/tail.err") &
  tail_pid=$!
  sleep 0.5
  s 0 append cli-tail --type CliLive --data '{"n":3}'
  wait "$tail_pid" || fail "tail of a live event: $(cat "$T/tail.err")"
  eq "$(jq -r '[.version,.type]|@tsv' <"$T/tail.out")" "$(printf '2\tCliLive')" "tail live"
  TP=$(jq -r .position <"$T/tail.out")
  s 0 tail '$all' --from "$((TP - 1))" --count 1 --json
  eq "$(jq -r .type <<<"$OUT")" "CliLive" "tail \$all --from (exclusive)"
  s 0 tail '$all' --from start --type-prefix CliLive --markers --json --idle-exit 300
  eq "$(jq -r "select(.type)|.type" <<<"$OUT")" "CliLive" "tail \$all --type-prefix"
  eq "$(jq -r 'select(.marker=="caught_up")|.position' <<<"$OUT")" "$(s 0 stats --json; jq -r '."es-writer-lastPosition"' <<<"$OUT")" "caught up at the head"
  # lag monitoring: an open subscription shows in the server's stats
  ("$FACTUM" --server "$URL" tail cli-tail --idle-exit 3000 >/dev/null 2>&1) &
  tail_pid=$!
  sleep 0.5
  s 0 stats
  contains "$OUT" "es-subscription-cli-tail-"
  contains "$OUT" "-lagEvents 0"
  wait "$tail_pid" || true
  s 0 tail cli-nothing-yet --idle-exit 200
  eq "$OUT" "" "tail of a stream not written yet"
  s 4 tail cli-batch
  contains "$ERR" "tombstoned"
  s 2 tail cli-tail --type-prefix X
  s 2 tail '$all' --type-prefix X --stream-regex Y
  s 2 tail '$all' --type-regex '([bad'
  l 2 tail cli-tail
  contains "$ERR" "tail follows a server"

  # stats, and what stays local
  s 0 stats
  contains "$OUT" "es-writer-lastPosition "
  s 0 stats --json
  jq -e '."es-writer-lastPosition" > 0' <<<"$OUT" >/dev/null || fail "stats --json: $OUT"
  s 1 streams
  eq "$ERR" "factum: streams: not available over --server: the protocol has no stream listing (read '\$all' instead)"
  s 1 verify
  contains "$ERR" "factum: verify: not available over --server"
  s 1 dump
  contains "$ERR" "factum: dump: not available over --server"
  s 0 read --help
  contains "$OUT" "usage: factum read"

  # choosing and reaching the server
  FACTUM_SERVER=$URL run 0 "$FACTUM" read cli-orders --count 1
  FACTUM_SERVER=$URL run 0 "$FACTUM" --data "$T/local" read imp-a --count 1
  FACTUM_DATA=$T/local run 0 "$FACTUM" --server "$URL" read cli-orders --count 1
  run 2 "$FACTUM" --server "$URL" --data "$T/local" read x
  eq "$ERR" "factum: give --data or --server, not both"
  # TLS is the default: to a cleartext server, a clear refusal.
  run 1 "$FACTUM" --server "kurrentdb://127.0.0.1:$port" read x
  contains "$ERR" "TLS handshake failed"
  contains "$ERR" "a server started with --insecure answers so: then add tls=false"
  run 2 "$FACTUM" --server "http://127.0.0.1:$port" read x
  run 1 "$FACTUM" --server "kurrentdb://127.0.0.1:1?tls=false" read x
  contains "$ERR" "factum: read: cannot connect to 'kurrentdb://127.0.0.1:1?tls=false': no server answered"
  # bench over the network: every workload runs and the contention check passes
  s 0 bench --count 400 --clients 4 --workload W1,W2,W3,W4,W5,W7
  contains "$OUT" "factum bench against"
  contains "$OUT" "PASS"
  lacks "$OUT" "FAIL"
  echo "cli checks passed"
}
if ! (cli_checks); then status=1; fi

# Certificates for the TLS runs, made as a user makes them: factum certs.
C=$T/certs
"$FACTUM" certs dev --out "$C" >/dev/null
"$FACTUM" certs create-ca --out "$C/other-ca" >/dev/null
"$FACTUM" certs create-node --ca-certificate "$C/ca/ca.crt" --ca-key "$C/ca/ca.key" --out "$C/elsewhere" \
  --dns-names elsewhere.example.com --ip-addresses 10.9.9.9 >/dev/null
"$FACTUM" certs create-user --ca-certificate "$C/other-ca/ca.crt" --ca-key "$C/other-ca/ca.key" \
  --username mallory --out "$C/mallory" >/dev/null
"$FACTUM" certs create-ca --ca-certificate "$C/ca/ca.crt" --ca-key "$C/ca/ca.key" --out "$C/inter" >/dev/null
"$FACTUM" certs create-node --ca-certificate "$C/inter/ca.crt" --ca-key "$C/inter/ca.key" --out "$C/inter-node" \
  --dns-names localhost >/dev/null

# start_proxy CERT KEY ARGS...: a tls_proxy in front of factumd; sets pport.
start_proxy() {
  local out=$T/proxy.$RANDOM
  "$tls_proxy" "$1" "$2" "$port" "${@:3}" >"$out" 2>"$out.err" &
  echo $! >>"$T/proxies"
  proxy_err=$out.err
  pport=""
  for _ in $(seq 100); do
    pport=$(sed -n 's/^port //p' "$out")
    [ -n "$pport" ] && return 0
    sleep 0.05
  done
  echo "tls_proxy did not start: $(cat "$out.err")" >&2
  return 1
}

tls_checks() {
  set -euo pipefail
  fail() { echo "FAIL (client.sh line ${BASH_LINENO[1]}): $*" >&2; exit 1; }
  run() {
    local want=$1 rc=0
    shift
    "$@" >"$T/.out" 2>"$T/.err" || rc=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
    case "$ERR" in *Sanitizer*|*"runtime error"*) fail "sanitizer report from: $* :: $ERR" ;; esac
    [ "$rc" = "$want" ] || fail "exit $rc instead of $want from: $* :: stdout: $OUT :: stderr: $ERR"
  }
  contains() { case "$1" in *"$2"*) ;; *) fail "${3:-text}: '$1' does not contain '$2'" ;; esac; }
  CA=$C/ca/ca.crt

  start_proxy "$C/node/node.crt" "$C/node/node.key"
  good=$pport
  SURL="kurrentdb://admin:changeit@localhost:$good?tlsCAFile=$CA"
  echo "-- the C client's program over TLS (port $good)"
  FACTUMD_BEHIND_PROXY=1 FACTUMD_URL=$SURL "$client_test" >"$T/secure-client.log" 2>&1 ||
    { cat "$T/secure-client.log"; fail "the C client's program over TLS"; }
  grep -E "CPU / wall|pollForAnswerUs=" "$T/secure-client.log" || true
  tail -1 "$T/secure-client.log"

  echo "-- factum --server over TLS"
  run 0 "$FACTUM" --server "$SURL" append tls-s --type T --data '{"over":"tls"}'
  contains "$OUT" "appended 1 event: tls-s@0"
  run 0 "$FACTUM" --server "kurrentdb://127.0.0.1:$good?tlsCAFile=$CA" read tls-s --json # an IP in the SAN
  contains "$OUT" '"over":"tls"'
  run 0 "$FACTUM" --server "kurrentdb://localhost:$good" --tls-ca-file "$CA" read tls-s
  run 0 env FACTUM_SERVER="kurrentdb://localhost:$good" FACTUM_TLS_CA_FILE="$CA" "$FACTUM" read tls-s
  run 0 "$FACTUM" --server "kurrentdb://localhost:$good?tlsCAFile=$CA" --username admin --password changeit read tls-s
  run 2 "$FACTUM" --data "$T/x" --tls-ca-file "$CA" read tls-s
  contains "$ERR" "--tls-ca-file goes with --server"

  # A node certificate from an intermediate CA (its file carries the intermediate): the root suffices.
  start_proxy "$C/inter-node/node.crt" "$C/inter-node/node.key"
  run 0 "$FACTUM" --server "kurrentdb://localhost:$pport?tlsCAFile=$CA" read tls-s

  echo "-- certificates refused, with the reason"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$good?tlsCAFile=$C/other-ca/ca.crt" read tls-s
  contains "$ERR" "certificate verify failed: unable to get local issuer certificate (the server's certificate is not signed by the CA of tlsCAFile)"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$good" read tls-s
  contains "$ERR" "certificate verify failed"
  contains "$ERR" "give the server's CA with tlsCAFile"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$good?tlsCAFile=$T/missing.crt" read tls-s
  contains "$ERR" "cannot read tlsCAFile '$T/missing.crt'"
  # A certificate for another host: refused by name and by address; accepted without verification.
  start_proxy "$C/elsewhere/node.crt" "$C/elsewhere/node.key"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$pport?tlsCAFile=$CA" read tls-s
  contains "$ERR" "certificate verify failed: hostname mismatch (the server's certificate does not name 'localhost')"
  run 1 "$FACTUM" --server "kurrentdb://127.0.0.1:$pport?tlsCAFile=$CA" read tls-s
  contains "$ERR" "certificate verify failed: IP address mismatch"
  run 0 "$FACTUM" --server "kurrentdb://localhost:$pport?tlsVerifyCert=false" read tls-s
  # An expired certificate (made valid for 1 day, then looked at 2 days later is not possible
  # here; the CA's own checks are covered by certs.sh): a self-signed one is refused.
  run 1 "$FACTUM" --server "kurrentdb://localhost:$good?tlsCAFile=$C/node/node.crt" read tls-s
  contains "$ERR" "certificate verify failed"

  # Expired and not yet valid certificates (openssl ca can date them; tests/integration/mkcerts.sh).
  if MKCERTS_EXTRA=1 bash "$(dirname "$0")/mkcerts.sh" "$T/dated" >/dev/null 2>&1; then
    start_proxy "$T/dated/expired.crt" "$T/dated/expired.key"
    run 1 "$FACTUM" --server "kurrentdb://localhost:$pport?tlsCAFile=$T/dated/ca/ca.crt" read tls-s
    contains "$ERR" "certificate verify failed: certificate has expired"
    start_proxy "$T/dated/future.crt" "$T/dated/future.key"
    run 1 "$FACTUM" --server "kurrentdb://localhost:$pport?tlsCAFile=$T/dated/ca/ca.crt" read tls-s
    contains "$ERR" "certificate verify failed: certificate is not yet valid"
  else
    echo "   (no dated certificates: mkcerts.sh failed; expiry not checked)"
  fi

  echo "-- mutual TLS"
  start_proxy "$C/node/node.crt" "$C/node/node.key" --client-ca "$CA"
  mtls=$pport
  run 1 "$FACTUM" --server "kurrentdb://localhost:$mtls?tlsCAFile=$CA" read tls-s
  contains "$ERR" "the server refused the TLS connection"
  contains "$ERR" "certificate required"
  run 0 "$FACTUM" --server "kurrentdb://localhost:$mtls?tlsCAFile=$CA&userCertFile=$C/user-admin/user-admin.crt&userKeyFile=$C/user-admin/user-admin.key" read tls-s
  grep -q "client CN=admin" "$proxy_err" || fail "the proxy saw no client certificate CN=admin: $(cat "$proxy_err")"
  run 0 "$FACTUM" --server "kurrentdb://localhost:$mtls?tlsCAFile=$CA" --user-cert-file "$C/user-admin/user-admin.crt" \
    --user-key-file "$C/user-admin/user-admin.key" read tls-s
  # A user certificate from another CA: the server refuses it.
  run 1 "$FACTUM" --server "kurrentdb://localhost:$mtls?tlsCAFile=$CA&userCertFile=$C/mallory/user-mallory.crt&userKeyFile=$C/mallory/user-mallory.key" read tls-s
  contains "$ERR" "the server refused the TLS connection"
  # A key that is not the certificate's: refused before connecting.
  run 1 "$FACTUM" --server "kurrentdb://localhost:$mtls?tlsCAFile=$CA&userCertFile=$C/user-admin/user-admin.crt&userKeyFile=$C/mallory/user-mallory.key" read tls-s
  contains "$ERR" "is not the key of userCertFile"
  run 2 "$FACTUM" --server "kurrentdb://localhost:$mtls?tlsCAFile=$CA&userCertFile=$C/user-admin/user-admin.crt" read tls-s
  contains "$ERR" "userCertFile and userKeyFile go together"

  echo "-- ALPN"
  start_proxy "$C/node/node.crt" "$C/node/node.key" --alpn none
  run 0 "$FACTUM" --server "kurrentdb://localhost:$pport?tlsCAFile=$CA" read tls-s # HTTP/2 by prior knowledge
  start_proxy "$C/node/node.crt" "$C/node/node.key" --alpn http/1.1
  run 1 "$FACTUM" --server "kurrentdb://localhost:$pport?tlsCAFile=$CA" read tls-s
  contains "$ERR" "TLS handshake failed" # OpenSSL refuses a protocol it did not offer

  echo "-- one side speaks TLS, the other does not"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$good?tls=false" read tls-s
  contains "$ERR" "does the server speak TLS? then leave out tls=false"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$port?tlsCAFile=$CA" read tls-s
  contains "$ERR" "(a server started with --insecure answers so: then add tls=false)"
  echo "tls checks passed"
}
if [ -n "$tls_proxy" ]; then
  echo "== the C client and factum --server over TLS (tls_proxy in front of factumd on port $port)"
  if ! (tls_checks); then status=1; fi
  while read -r p; do kill "$p" 2>/dev/null || true; done <"$T/proxies"
fi

# A secure factumd (TLS with the certificates of factum certs), beside the
# insecure one: the C client's program, the command line, mutual TLS, and
# each side of a TLS/cleartext mismatch against factumd's own answers.
slog=$T/factumd-secure.log
secure_checks() {
  set -euo pipefail
  fail() { echo "FAIL (client.sh line ${BASH_LINENO[1]}): $*" >&2; exit 1; }
  run() {
    local want=$1 rc=0
    shift
    "$@" >"$T/.out" 2>"$T/.err" || rc=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
    case "$ERR" in *Sanitizer*|*"runtime error"*) fail "sanitizer report from: $* :: $ERR" ;; esac
    [ "$rc" = "$want" ] || fail "exit $rc instead of $want from: $* :: stdout: $OUT :: stderr: $ERR"
  }
  contains() { case "$1" in *"$2"*) ;; *) fail "${3:-text}: '$1' does not contain '$2'" ;; esac; }
  CA=$C/ca/ca.crt
  SURL="kurrentdb://admin:changeit@localhost:$sport?tlsCAFile=$CA"
  echo "-- the C client's program against the secure factumd"
  FACTUMD_URL=$SURL "$client_test" >"$T/secure-factumd-client.log" 2>&1 ||
    { cat "$T/secure-factumd-client.log"; fail "the C client's program against the secure factumd"; }
  grep -E "CPU / wall|pollForAnswerUs=" "$T/secure-factumd-client.log" || true
  tail -1 "$T/secure-factumd-client.log"
  echo "-- factum --server against the secure factumd"
  run 0 "$FACTUM" --server "$SURL" append sec-s --type T --data '{"secure":true}' --expected no-stream
  run 0 "$FACTUM" --server "kurrentdb://admin:changeit@127.0.0.1:$sport?tlsCAFile=$CA" read sec-s --json
  contains "$OUT" '"secure":true'
  # Without credentials the call is anonymous, and anonymous may not read streams (ACL-4): exit 5.
  run 5 "$FACTUM" --server "kurrentdb://127.0.0.1:$sport?tlsCAFile=$CA" read sec-s --json
  contains "$ERR" "not authenticated"
  run 0 env FACTUM_SERVER="kurrentdb://localhost:$sport" FACTUM_TLS_CA_FILE="$CA" FACTUM_USERNAME=admin \
    FACTUM_PASSWORD=changeit "$FACTUM" read sec-s
  run 0 "$FACTUM" --server "kurrentdb://localhost:$sport?tlsCAFile=$CA" \
    --user-cert-file "$C/user-admin/user-admin.crt" --user-key-file "$C/user-admin/user-admin.key" read sec-s
  run 1 "$FACTUM" --server "kurrentdb://localhost:$sport?tlsCAFile=$CA&userCertFile=$C/mallory/user-mallory.crt&userKeyFile=$C/mallory/user-mallory.key" read sec-s
  contains "$ERR" "the server refused the TLS connection: tlsv1 alert unknown ca"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$sport?tlsCAFile=$C/other-ca/ca.crt" read sec-s
  contains "$ERR" "certificate verify failed: "
  contains "$ERR" "(the server's certificate is not signed by the CA of tlsCAFile)"
  # The official Node client with the same certificates (grpc-js and the Rust bridge's rustls).
  nm=${FACTUM_NODE_MODULES:-$(dirname "$0")/node/node_modules}
  if command -v node >/dev/null && [ -d "$nm/@kurrent/kurrentdb-client" ]; then
    NODE_PATH=$nm timeout 120 node "$(dirname "$0")/node/certs-client.js" "$sport" "$C" ||
      fail "the official Node client with the certificates of factum certs"
  else
    echo "   (no Node client in $nm: npm ci in tests/integration/node, or FACTUM_NODE_MODULES=DIR)"
  fi
  echo "-- credentials and rights: not authenticated and access denied, each exit 5 with its reason"
  run 5 "$FACTUM" --server "kurrentdb://admin:wrong@localhost:$sport?tlsCAFile=$CA" read sec-s
  contains "$ERR" "factum: read: stream 'sec-s': not authenticated (wrong or missing credentials) (the server did not accept the credentials of user 'admin': "
  run 5 "$FACTUM" --server "kurrentdb://nobody:x@localhost:$sport?tlsCAFile=$CA" read sec-s
  contains "$ERR" "the server did not accept the credentials of user 'nobody'"
  run 5 "$FACTUM" --server "kurrentdb://ops:changeit@localhost:$sport?tlsCAFile=$CA" user list
  contains "$ERR" "access denied (user 'ops' may not do this: "
  run 5 "$FACTUM" --server "kurrentdb://localhost:$sport?tlsCAFile=$CA" user list
  contains "$ERR" "access denied without credentials (user:password@ in the connection string)"
  run 0 "$FACTUM" --server "$SURL" user list
  contains "$OUT" "admin"
  # A user certificate (CN=admin) authenticates without a password.
  run 0 "$FACTUM" --server "kurrentdb://localhost:$sport?tlsCAFile=$CA" --user-cert-file "$C/user-admin/user-admin.crt" \
    --user-key-file "$C/user-admin/user-admin.key" user list
  contains "$OUT" "ops"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$sport?tls=false" read sec-s
  contains "$ERR" "the server speaks TLS: leave out tls=false (factumd requires TLS on this port"
  run 1 "$FACTUM" --server "kurrentdb://localhost:$port?tlsCAFile=$CA" read sec-s
  contains "$ERR" "TLS handshake failed: sslv3 alert handshake failure (a server started with --insecure answers so: then add tls=false)"
  echo "secure checks passed"
}
if factumd_start "$slog" "$factumd" --mem-db --node-ip 127.0.0.1 --node-port 0 \
  --certificate-file "$C/node/node.crt" --certificate-private-key-file "$C/node/node.key" \
  --trusted-root-certificates-path "$C/ca"; then
  spid=$factumd_pid sport=$factumd_port
  echo "$spid" >>"$T/proxies"
  echo "== the C client and factum --server against a secure factumd on port $sport"
  if ! (secure_checks); then status=1; fi
  kill -TERM "$spid"
  if ! wait "$spid"; then echo "the secure factumd did not shut down cleanly"; cat "$slog"; status=1; fi
  if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$slog" | grep -Ev "$expected_errors"; then status=1; fi
else
  [ -z "${factumd_pid:-}" ] || kill -9 "$factumd_pid" 2>/dev/null || true
  status=1
fi

kill -TERM "$pid"
if ! wait "$pid"; then echo "factumd did not shut down cleanly"; cat "$log"; status=1; fi
trap 'rm -rf "$T"' EXIT
if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$log" | grep -Ev "$expected_errors"; then status=1; fi
exit $status
