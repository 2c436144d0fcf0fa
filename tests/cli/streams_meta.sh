#!/usr/bin/env bash
# streams_meta.sh - `streams`, `info`, `meta get/set` (and $maxCount hiding
# events from reads), soft `delete` then re-append (the numbering goes on),
# and `tombstone` (reads and appends fail for good).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store

for s in alpha beta gamma; do f 0 append "$s" --type Made --data "{\"s\":\"$s\"}"; done
f 0 append alpha --type More --data '{}'

# streams: creation order, user streams unless --all, --count, --json.
f 0 streams
eq "$OUT" "$(printf 'alpha\nbeta\ngamma')"
f 0 streams --count
eq "$OUT" 3
f 0 streams --json
eq "$(jq -s -c 'map([.stream,.createdPosition])' <<<"$OUT")" '[["alpha",1],["beta",2],["gamma",3]]'

# info of a live stream and of one never written.
f 0 info alpha
contains "$OUT" "status:           live"
contains "$OUT" "last version:     1"
contains "$OUT" "last position:    4"
contains "$OUT" "metadata:         {}"
f 0 info alpha --json
eq "$(jq -c . <<<"$OUT")" '{"stream":"alpha","status":"live","lastVersion":1,"lastPosition":4,"metadataVersion":null,"metadata":{}}'
f 0 info nothing --json
eq "$(jq -c '[.status,.lastVersion,.lastPosition]' <<<"$OUT")" '["none",null,null]'
f 0 info nothing
contains "$OUT" "status:           none"

# meta get/set, with expectations on the metadata stream.
f 0 meta get alpha
eq "$OUT" "{}"
f 0 meta set alpha '{"$maxCount": 2, "owner": "team-a"}' --expected no-stream
eq "$OUT" 'set the metadata of alpha: $$alpha@0, position 5'
f 0 meta get alpha
eq "$(jq -c . <<<"$OUT")" '{"$maxCount":2,"owner":"team-a"}'
f 3 meta set alpha '{"$maxCount":3}' --expected no-stream
one_error_line "meta set"
contains "$ERR" "stream '\$\$alpha': expected no-stream, actual version 0"
f 0 meta set alpha '{"$maxCount":3}' --expected 0 --json
eq "$(jq -c . <<<"$OUT")" '{"stream":"alpha","version":1,"position":6}'
f 0 info alpha --json
eq "$(jq -c '[.metadataVersion,.metadata]' <<<"$OUT")" '[1,{"$maxCount":3}]'
f 0 streams --all
eq "$OUT" "$(printf 'alpha\nbeta\ngamma\n$$alpha')"
f 0 streams --all --count
eq "$OUT" 4
f 0 streams --all --count --json
eq "$OUT" '{"count":4}'

# $maxCount: reads show only the newest N events.
for i in 1 2 3 4; do f 0 append alpha --type More --data "{\"i\":$i}"; done
f 0 read alpha --json
eq "$(jq -s -c 'map(.version)' <<<"$OUT")" '[3,4,5]' '$maxCount 3'
f 0 read alpha --backward --json
eq "$(jq -s -c 'map(.version)' <<<"$OUT")" '[5,4,3]'
f 0 read alpha --from 0 --count 1 --json
eq "$(jq -r .version <<<"$OUT")" 3
f 0 meta set alpha '{"$maxCount":1}'
f 0 read alpha --json
eq "$(jq -s -c 'map(.version)' <<<"$OUT")" '[5]' '$maxCount 1'
f 0 read '$all' --stream-prefix alpha --json
eq "$(jq -s -c '[.[] | select(.stream=="alpha") | .version]' <<<"$OUT")" '[0,1,2,3,4,5]' '$all is not truncated'

# Soft delete, then re-append: reads fail until then, numbering continues.
f 3 delete beta --expected 5
contains "$ERR" "expected 5, actual version 0"
f 0 delete beta --expected 0
eq "$OUT" "soft-deleted beta (metadata event at position 12)"
f 4 read beta
one_error_line read
contains "$ERR" "stream 'beta' is soft-deleted"
f 0 info beta --json
eq "$(jq -c '[.status,.lastVersion]' <<<"$OUT")" '["soft-deleted",0]'
f 3 append beta --type Back --data '{}' --expected exists
contains "$ERR" "actual version 0 (soft-deleted)"
f 0 append beta --type Back --data '{"again":1}' --expected no-stream
eq "$OUT" "appended 1 event: beta@1, position 14"
f 0 read beta --json
eq "$(jq -s -c 'map([.version,.type])' <<<"$OUT")" '[[1,"Back"]]' 'old events stay hidden'
f 0 info beta --json
eq "$(jq -r .status <<<"$OUT")" live
f 0 delete beta --json
eq "$(jq -c . <<<"$OUT")" '{"stream":"beta","position":15}'
f 0 append beta --type Back2 --data '{}' --expected 1
eq "$OUT" "appended 1 event: beta@2, position 17"

# Tombstone: reading, appending and deleting fail with exit 4, forever.
f 3 tombstone gamma --expected 3
contains "$ERR" "expected 3, actual version 0"
f 0 tombstone gamma --expected 0
eq "$OUT" "tombstoned gamma at position 18"
f 4 read gamma
one_error_line read
contains "$ERR" "stream 'gamma' is tombstoned"
f 4 append gamma --type X --data '{}'
one_error_line append
contains "$ERR" "tombstoned"
f 4 append gamma --type X --data '{}' --expected no-stream
f 4 delete gamma
f 4 tombstone gamma
f 0 info gamma --json
eq "$(jq -r .status <<<"$OUT")" tombstoned
f 0 info gamma
contains "$OUT" "status:           tombstoned"
f 0 read '$all' --backward --count 1 --json
eq "$(jq -r '[.stream,.type,.position]|@tsv' <<<"$OUT")" "$(printf 'gamma\t$streamDeleted\t18')"
contains "$OUT" '"version":9223372036854775807' "tombstone version"
f 0 tombstone never --json
eq "$(jq -c . <<<"$OUT")" '{"stream":"never","position":19}'
f 0 streams
eq "$OUT" "$(printf 'alpha\nbeta\ngamma\nnever')" "deleted streams are still listed"
echo "streams_meta: ok"
