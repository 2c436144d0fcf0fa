#!/usr/bin/env bash
# verify_dump_stats.sh - `factum verify` on an intact store (exit 0) and on one
# with a byte flipped in the middle of the log's data in log/00000000.seg
# (exit 1, the damage names the file); `factum dump` (human and --json) and
# `factum stats`.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store

for i in $(seq 1 12); do f 0 append "s-$((i % 3))" --type "T$i" --data "{\"i\":$i,\"pad\":\"................\"}"; done
printf '%s\n' '{"type":"M1","data":{}}' '{"type":"M2","data":{}}' | run 0 "$FACTUM" --data "$D" append multi --stdin

f 0 verify
eq "$OUT" "$(printf 'segments 1, batches 13, events 14, payload bytes 391, positions 1..14\nintact')" "verify summary"
eq "$ERR" ""
f 0 verify --json
eq "$(jq -c '[.intact,.damage,.batches,.events,.firstPosition,.lastPosition,.tornTail]' <<<"$OUT")" \
    '[true,[],13,14,1,14,false]'

# dump: one record per line, batches and events.
f 0 dump --json
eq "$(jq -s -c '[length, (map(select(.kind=="batch")) | length), (map(select(.kind=="event")) | length)]' <<<"$OUT")" \
    '[27,13,14]'
eq "$(jq -s -c '.[0] | [.file,.offset,.kind,.position,.events]' <<<"$OUT")" '["log/00000000.seg",4096,"batch",1,1]'
eq "$(jq -s -c '.[1] | [.file,.kind,.position,.stream,.version,.type]' <<<"$OUT")" \
    '["log/00000000.seg","event",1,"s-1",0,"T1"]'
eq "$(jq -s -c '[.[] | select(.kind=="batch" and .events==2) | .position]' <<<"$OUT")" '[13]' "the two-event batch"
jq -s -e 'all(.[]; (.crc | test("^[0-9a-f]{8}$")) and .length > 0)' <<<"$OUT" >/dev/null || fail "crc/length: $OUT"
jq -s -e '[.[] | select(.file=="log/00000000.seg")] | [range(1; length) as $i | .[$i].offset == .[$i-1].offset + .[$i-1].length] | all' \
    <<<"$OUT" >/dev/null || fail "records do not follow each other: $OUT"
DUMP_JSON=$OUT
f 0 dump
eq "$(wc -l <<<"$OUT")" 27
[[ $(sed -n 2p <<<"$OUT") =~ ^log/00000000\.seg\ +[0-9]+\ +len\ +[0-9]+\ +crc\ [0-9a-f]{8}\ +event\ +pos\ 1\ +s-1@0\ +T1$ ]] ||
    fail "dump human line: $(sed -n 2p <<<"$OUT")"

# stats of the closed store, read-only.
f 0 stats --json
eq "$(jq -c '[.lastPosition,.appends,.durability,.failed]' <<<"$OUT")" '[14,0,"durable",false]'
jq -e 'has("logBytes") and has("indexTables") and has("memtableEntries") and has("fsyncs") and has("groups")' \
    <<<"$OUT" >/dev/null || fail "stats fields: $OUT"
f 0 stats
contains "$OUT" "last position      14"
contains "$OUT" "durability         durable"

# Flip one byte in the middle of the written part of the first segment.
end=$(jq -s '[.[] | select(.file=="log/00000000.seg") | .offset + .length] | max' <<<"$DUMP_JSON")
mid=$(( (4096 + end) / 2 ))
byte=$(od -An -tu1 -j "$mid" -N1 "$D/log/00000000.seg" | tr -d ' ')
printf "\\$(printf '%03o' $((byte ^ 0xff)))" | dd of="$D/log/00000000.seg" bs=1 seek="$mid" conv=notrunc status=none
f 1 verify
contains "$OUT" "damage: log/00000000.seg offset "
contains "$OUT" "DAMAGED"
one_error_line verify
contains "$ERR" "damaged"
f 1 verify --json
jq -e '.intact == false and (.damage | length) > 0 and all(.damage[]; .file == "log/00000000.seg")' <<<"$OUT" \
    >/dev/null || fail "verify --json on damage: $OUT"
off=$(jq '.damage[0].offset' <<<"$OUT")
[ "$off" -le "$mid" ] || fail "damage at $off, after the flipped byte at $mid"
f 1 dump
one_error_line dump
contains "$ERR" "damaged record"
f 1 read '$all'
one_error_line read
contains "$ERR" "run factum verify"

# Not a store.
mkdir "$T/plain"
run 1 "$FACTUM" --data "$T/plain" verify
one_error_line verify
run 1 "$FACTUM" --data "$T/plain" dump
run 1 "$FACTUM" --data "$T/plain" stats
run 1 "$FACTUM" --data "$T/missing" verify
[ ! -e "$T/missing" ] || fail "verify created a directory"
echo "verify_dump_stats: ok"
