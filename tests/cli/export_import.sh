#!/usr/bin/env bash
# export_import.sh - `factum export` and `factum import`: a round trip into a
# fresh directory gives the same `read '$all' --json` (positions and ids
# included; timestamps, and the ids of re-made tombstones, are new), the
# progress bar appears only on a terminal, and bad files or conflicting
# stores are refused without changing anything.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/src

# A store with a bit of everything.
f 0 append acct-1 --type Opened --data '{"owner":"Ann","limits":[1,2.5e3,{"x":null}]}' --metadata '{"by":"cli"}'
f 0 append acct-1 --type Raw --binary --data $'bytes\twith tab'
printf '%s\n' '{"type":"A","data":{"i":1}}' '{"type":"B","data":"AP8A/w==","dataEncoding":"base64"}' \
    '{"type":"C","data":{"u":"caf\u00e9 \ud83d\ude00"},"metadata":"bWV0YQ==","metadataEncoding":"base64"}' >"$T/in.ndjson"
f 0 append acct-2 --file "$T/in.ndjson"
f 0 meta set acct-1 '{"$maxCount": 2, "custom": {"deep": [true]}}'
f 0 delete acct-2
f 0 append acct-2 --type Reborn --data '{}'
f 0 append doomed --type Last --data '{}'
f 0 tombstone doomed
f 0 tombstone never-written
f 0 append '$custom-system' --type '$thing' --data '{}'
seq 1 700 | sed 's/.*/{"type":"Bulk","data":{"n":&}}/' >"$T/bulk.ndjson"
f 0 append bulk --file "$T/bulk.ndjson"
f 0 append acct-1 --type Later --data '{}'
f 0 read '$all' --json
SRC_ALL=$OUT
N=$(jq -s length <<<"$SRC_ALL")

# export to stdout and to a file give the same lines; no progress off a terminal.
f 0 export
eq "$ERR" "" "no progress bar when stderr is not a terminal"
eq "$OUT" "$SRC_ALL" "export is read \$all --json"
f 0 export "$T/dump.ndjson"
eq "$ERR" ""
eq "$OUT" "exported $N events to $T/dump.ndjson"
cmp -s "$T/dump.ndjson" <(printf '%s\n' "$SRC_ALL") || fail "export file differs"
[ -z "$(find "$T" -maxdepth 1 -name '*.tmp.*')" ] || fail "temporary file left behind"

# import into a fresh directory.
D=$T/dst
f 0 import "$T/dump.ndjson"
eq "$ERR" ""
eq "$OUT" "imported $N events into 8 streams, positions 1..$N"
f 0 read '$all' --json
DST_ALL=$OUT
norm() { jq -c 'del(.timestamp) | if .type == "$streamDeleted" then del(.id) else . end'; }
diff <(norm <<<"$SRC_ALL") <(norm <<<"$DST_ALL") >"$T/diff" || fail "round trip differs: $(head -5 "$T/diff")"
eq "$(jq -s -c '[.[] | select(.type == "$streamDeleted") | .stream]' <<<"$DST_ALL")" '["doomed","never-written"]'
for s in acct-1 acct-2 bulk; do
    run 0 "$FACTUM" --data "$T/src" read "$s" --json
    a=$(norm <<<"$OUT")
    f 0 read "$s" --json
    eq "$(norm <<<"$OUT")" "$a" "read $s after import"
    run 0 "$FACTUM" --data "$T/src" info "$s" --json
    a=$OUT
    f 0 info "$s" --json
    eq "$OUT" "$a" "info $s after import"
done
f 0 read acct-1 --json
eq "$(jq -s -c "map(.version)" <<<"$OUT")" "[1,2]" '$maxCount survives the import'
f 4 read doomed
f 0 info acct-2 --json
eq "$(jq -c '[.status,.lastVersion]' <<<"$OUT")" '["live",3]'
f 0 verify

# Importing the same file again: every stream conflicts, nothing is written.
before=$(snapshot "$D")
f 3 import "$T/dump.ndjson"
one_error_line import
contains "$ERR" "wrong expected version"
eq "$(snapshot "$D")" "$before" "a refused import changes nothing"

# Bad files: reported with their line, nothing created.
D=$T/bad
printf '%s\n' '{"stream":"s","version":0,"type":"A","data":{}}' '{"stream":"s","version":0,"type":"A"' >"$T/broken.ndjson"
f 2 import "$T/broken.ndjson"
one_error_line import
contains "$ERR" "line 2: not valid JSON"
printf '%s\n' '{"stream":"s","version":0,"type":"A"}' '{"stream":"s","version":2,"type":"A"}' >"$T/gap.ndjson"
f 2 import "$T/gap.ndjson"
contains "$ERR" "line 2: stream 's' version 2 does not follow version 0"
printf '%s\n' '{"stream":"s","version":0,"type":"A","colour":"red"}' >"$T/key.ndjson"
f 2 import "$T/key.ndjson"
contains "$ERR" 'line 1: unknown key "colour"'
printf '%s\n' '{"stream":"s","version":3,"type":"A"}' >"$T/late.ndjson"
f 3 import "$T/late.ndjson"
contains "$ERR" "expected 2, the stream has no events"
printf '%s\n' '{"stream":"$$s","version":0,"type":"$metadata","data":{"$maxCount":"many"}}' >"$T/meta.ndjson"
f 2 import "$T/meta.ndjson"
contains "$ERR" "holds metadata"
printf '%s\n' '{"stream":"s","version":9223372036854775807,"type":"$streamDeleted"}' \
    '{"stream":"s","version":0,"type":"A"}' >"$T/after.ndjson"
f 2 import "$T/after.ndjson"
contains "$ERR" "after its tombstone"
f 1 import "$T/missing.ndjson"
one_error_line import
f 2 import "$T"
contains "$ERR" "not a regular file"
[ ! -e "$D" ] || fail "a refused import created the store"
f 2 import
f 2 import a b

# export errors: nothing is left behind.
D=$T/src
f 1 export "$T/no/such/dir/x.ndjson"
one_error_line export
[ ! -e "$T/no" ] || fail "export created directories"

# The progress bar, on a terminal only.
if command -v script >/dev/null 2>&1; then
    script -qec "'$FACTUM' --data '$T/src' export '$T/tty.ndjson'" /dev/null >"$T/tty.out" </dev/null ||
        fail "export under script failed: $(cat "$T/tty.out")"
    grep -q 'export \[#' "$T/tty.out" || fail "no progress bar on a terminal: $(cat -v "$T/tty.out")"
    grep -q '100%' "$T/tty.out" || fail "progress bar does not reach 100%"
    cmp -s "$T/tty.ndjson" "$T/dump.ndjson" || fail "export on a terminal differs"
    script -qec "'$FACTUM' --data '$T/tty-dst' import '$T/tty.ndjson'" /dev/null >"$T/tty.out" </dev/null ||
        fail "import under script failed: $(cat "$T/tty.out")"
    grep -q 'importing \[#' "$T/tty.out" || fail "no import progress bar on a terminal: $(cat -v "$T/tty.out")"
    grep -q "imported $N events" "$T/tty.out" || fail "import summary under script"
fi
echo "export_import: ok"
