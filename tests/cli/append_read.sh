#!/usr/bin/env bash
# append_read.sh - `factum append` (single events, NDJSON input, every kind
# of expectation, idempotent ids, binary data) and `factum read` of a stream
# (forward, backward, --from, --count, human and --json output).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store

# The first write creates the store.
[ ! -e "$D" ] || fail "store exists before the first write"
f 0 append orders --type OrderPlaced --data '{"sku": "a-1", "qty": 2}' --expected no-stream
eq "$OUT" "appended 1 event: orders@0, position 1"
[ -d "$D" ] || fail "store not created"

f 0 append orders --type OrderPaid --data '{"amount":10}' --metadata '{"user":"bob"}' --expected 0 --json
eq "$(jq -r '[.stream,.count,.firstVersion,.lastVersion,.firstPosition,.lastPosition,.idempotent]|@tsv' <<<"$OUT")" \
    "$(printf 'orders\t1\t1\t1\t2\t2\tfalse')" "append --json"
jq -e '.timestamp | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$")' <<<"$OUT" >/dev/null ||
    fail "timestamp format: $OUT"

# Expectations: exists, exact, any; failures exit 3 and name both versions.
f 0 append orders --type Shipped --expected exists --data '{}'
eq "$OUT" "appended 1 event: orders@2, position 3"
f 3 append orders --type X --data '{}' --expected 1
one_error_line append
contains "$ERR" "expected 1, actual version 2"
f 3 append orders --type X --data '{}' --expected no-stream
contains "$ERR" "expected no-stream, actual version 2"
f 3 append fresh --type X --data '{}' --expected exists
contains "$ERR" "expected exists, the stream has no events"
f 3 append fresh --type X --data '{}' --expected 0
contains "$ERR" "expected 0, the stream has no events"
f 0 append orders --type Note --data '"just a string"' --expected any
eq "$OUT" "appended 1 event: orders@3, position 4"

# The same --id again: succeeds, writes nothing, reports the original place.
ID=0b9a3c4e-1f2d-4e5f-8a9b-0c1d2e3f4a5b
f 0 append orders --type Tagged --id "$ID" --data '{"t":1}'
eq "$OUT" "appended 1 event: orders@4, position 5"
f 0 append orders --type Tagged --id "$ID" --data '{"t":1}'
eq "$OUT" "already appended, nothing written: orders@4, position 5"
f 0 append orders --type Tagged --id "$ID" --data '{"t":1}' --expected 3 --json
eq "$(jq -c '[.idempotent,.firstVersion,.firstPosition,.timestamp]' <<<"$OUT")" '[true,4,5,null]'
f 0 read '$all' --backward --count 1 --json
eq "$(jq -r .position <<<"$OUT")" 5 "nothing written by the replay"

# Binary data is stored as given and read back as base64.
f 0 append blobs --type Raw --binary --data 'hello, world'
f 0 read blobs --json
eq "$(jq -r '.dataEncoding' <<<"$OUT")" base64
eq "$(jq -r '.data' <<<"$OUT" | base64 -d)" "hello, world"
f 0 read blobs
contains "$OUT" '"hello, world"' "binary UTF-8 shown as a string"

# Several events from NDJSON (stdin and a file), atomically, in one append.
printf '%s\n' '{"type":"A","data":{"n":1}}' '' '{"type":"B","data":[1,2,3],"metadata":{"m":true}}' \
    '{"type":"C","data":"AAEC/w==","dataEncoding":"base64","id":"6a1e7a3c-2b4d-4c5e-9f60-718293a4b5c6"}' >"$T/three.ndjson"
run 0 "$FACTUM" --data "$D" append batch --expected no-stream --stdin <"$T/three.ndjson"
eq "$OUT" "appended 3 events: batch@0..2, positions 7..9"
printf '%s\n' '{"type":"D","data":null,"id":"00000000-0000-4000-8000-00000000000d"}' \
    '{"type":"E","id":"00000000-0000-4000-8000-00000000000e"}' >"$T/two.ndjson"
f 3 append batch --file "$T/two.ndjson" --expected 1
contains "$ERR" "expected 1, actual version 2"
f 0 append batch --file "$T/two.ndjson" --expected 2 --json
eq "$(jq -r '[.firstVersion,.lastVersion,.firstPosition,.lastPosition,.idempotent]|@tsv' <<<"$OUT")" \
    "$(printf '3\t4\t10\t11\tfalse')"
f 0 append batch --file "$T/two.ndjson" --json
eq "$(jq -r '[.count,.firstVersion,.lastVersion,.lastPosition,.idempotent]|@tsv' <<<"$OUT")" \
    "$(printf '2\t3\t4\t11\ttrue')" "replaying a batch whose events all have ids"
f 0 append batch --file "$T/two.ndjson" --expected 2
eq "$OUT" "already appended, nothing written: batch@3..4, positions 10..11"

f 0 read batch --json
eq "$(jq -s -c 'map([.version,.position,.type])' <<<"$OUT")" \
    '[[0,7,"A"],[1,8,"B"],[2,9,"C"],[3,10,"D"],[4,11,"E"]]' "read batch"
eq "$(jq -s -c '.[1] | [.data,.metadata]' <<<"$OUT")" '[[1,2,3],{"m":true}]'
eq "$(jq -s -r '.[2] | [.id,.data,.dataEncoding] | @tsv' <<<"$OUT")" \
    "$(printf '6a1e7a3c-2b4d-4c5e-9f60-718293a4b5c6\tAAEC/w==\tbase64')"
eq "$(jq -s -c '.[3].data' <<<"$OUT")" 'null' "JSON null data"
eq "$(jq -s -c '.[4] | [.data, .dataEncoding, has("metadata")]' <<<"$OUT")" '["","base64",false]' "no data"

# Every field of the JSON shape.
f 0 read orders --count 2 --json
eq "$(jq -s -c '.[0] | keys_unsorted' <<<"$OUT")" '["stream","version","position","id","type","timestamp","data"]'
eq "$(jq -s -c '.[1] | [.stream,.version,.position,.type,.data,.metadata]' <<<"$OUT")" \
    '["orders",1,2,"OrderPaid",{"amount":10},{"user":"bob"}]'
eq "$(jq -s -c '.[0].data' <<<"$OUT")" '{"sku":"a-1","qty":2}' "data re-written compactly"

# Human lines: position, stream@version, type, short id, timestamp, data.
f 0 read orders
eq "$(wc -l <<<"$OUT")" 5 "lines"
line1=$(head -1 <<<"$OUT")
[[ $line1 =~ ^1\ \ orders@0\ \ OrderPlaced\ \ [0-9a-f]{8}\ \ [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\.[0-9]{3}Z\ \ \{\"sku\":\"a-1\",\"qty\":2\}$ ]] ||
    fail "human line: $line1"
eq "$(sed -n 5p <<<"$OUT" | cut -c1-29)" "5  orders@4  Tagged  0b9a3c4e"
f 0 append wide --type Big --data "{\"text\":\"$(printf 'x%.0s' {1..300})\"}"
run 0 env COLUMNS=80 "$FACTUM" --data "$D" read wide
eq "${#OUT}" 80 "line fitted to COLUMNS"
[[ $OUT == *... ]] || fail "cut data ends in ...: $OUT"

# Forward, backward, --from, --count.
f 0 read orders --from 2 --json
eq "$(jq -s -c 'map(.version)' <<<"$OUT")" '[2,3,4]'
f 0 read orders --backward --json
eq "$(jq -s -c 'map(.version)' <<<"$OUT")" '[4,3,2,1,0]'
f 0 read orders --backward --from 2 --count 2 --json
eq "$(jq -s -c 'map(.version)' <<<"$OUT")" '[2,1]'
f 0 read orders --count 0
eq "$OUT" "" "--count 0"
f 0 read orders --from 99
eq "$OUT" "" "--from past the end"

# More events than one page of the library read (512).
seq 0 1199 | sed 's/.*/{"type":"Tick","data":{"i":&}}/' >"$T/many.ndjson"
f 0 append ticks --file "$T/many.ndjson"
eq "$OUT" "appended 1200 events: ticks@0..1199, positions 13..1212"
f 0 read ticks --json
eq "$(jq -s -c '[length, .[0].data.i, .[1199].data.i, ([.[].version] == [range(1200)])]' <<<"$OUT")" '[1200,0,1199,true]'
f 0 read ticks --backward --from 1000 --count 700 --json
eq "$(jq -s -c '[length, .[0].version, .[699].version]' <<<"$OUT")" '[700,1000,301]'

# A stream that does not exist.
f 4 read nowhere
one_error_line read
contains "$ERR" "stream 'nowhere' not found"
echo "append_read: ok"
