#!/usr/bin/env bash
# bad_input.sh - every kind of bad input gives one clear line on stderr, the
# documented exit code, and changes nothing: neither an existing store nor a
# directory where no store exists yet (none is created).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store
f 0 append s --type Seed --data '{}'
f 0 append '$$m' --type '$metadata' --data '{"$maxCount":3}'
BEFORE=$(snapshot "$D")

# bad CODE CMD ARGS...: refused with CODE on the store and on a fresh path.
bad() {
    local want=$1
    shift
    f "$want" "$@"
    if [ "$1" = meta ] && [[ ${2:-} == [gs]et ]]; then one_error_line "meta $2"; else one_error_line "$1"; fi
    eq "$(snapshot "$D")" "$BEFORE" "store changed by: $*"
    local keep=$D
    D=$T/fresh
    f "$want" "$@"
    [ ! -e "$D" ] || fail "a store was created by: $*"
    D=$keep
}

# Arguments.
bad 2 append s --type T --data '{"a":'
contains "$ERR" "--data is not valid JSON"
bad 2 append s --type T --data 'plain text'
bad 2 append s --type T --data '{}' --metadata '[1]'
contains "$ERR" "--metadata must be a JSON object"
bad 2 append s --type T --data '{}' --metadata 'nope'
bad 2 append s --type T --id not-a-uuid
contains "$ERR" "--id: 'not-a-uuid' is not a UUID"
bad 2 append s --type T --id 0b9a3c4e-1f2d-4e5f-8a9b-0c1d2e3f4a5
bad 2 append s --type T --bogus
contains "$ERR" "unknown option '--bogus'"
bad 2 append s --type
contains "$ERR" "option '--type' needs a value"
bad 2 append s --data '{}'
contains "$ERR" "missing --type"
bad 2 append s --type ''
contains "$ERR" "invalid event type"
bad 2 append s --type "$(printf 'x%.0s' {1..1025})"
bad 2 append --type T
contains "$ERR" "missing STREAM"
bad 2 append s t --type T
contains "$ERR" "unexpected argument 't'"
bad 2 append '' --type T
contains "$ERR" "invalid stream name: it is empty"
bad 2 append $'bad\xff' --type T
contains "$ERR" "not valid UTF-8"
bad 2 append "$(printf 's%.0s' {1..1025})" --type T
contains "$ERR" "the limit is 1024"
bad 2 append s --type T --expected sometimes
contains "$ERR" "--expected: 'sometimes'"
bad 2 append s --type T --expected -3
bad 2 append s --type T --type U
contains "$ERR" "given more than once"
bad 2 append s --binary
contains "$ERR" "--binary needs --data"
bad 2 append s --stdin --type T </dev/null
contains "$ERR" "cannot be combined"
bad 2 append s --stdin --file x </dev/null
bad 2 append '$$m' --type NotMeta --data '{}'
contains "$ERR" "must have type \$metadata"
bad 2 append '$$m' --type '$metadata' --data '{"$maxCount":-1}'
bad 2 read s --count many
contains "$ERR" "--count: 'many' is not a non-negative integer"
bad 2 read s --from -1
bad 2 read '' 
bad 2 read s --json=yes
contains "$ERR" "takes no value"
bad 2 meta set s '{"$maxCount":"x"}'
contains "$ERR" "wrong type"
bad 2 meta set s '[]'
bad 2 meta set s '{'
bad 2 meta set s
bad 2 meta frob s
bad 2 meta get s --expected 1
bad 2 delete s --expected no
bad 2 tombstone
bad 2 info s t
bad 2 streams extra
bad 2 verify extra
bad 2 stats --count

# NDJSON input.
lines() { printf '%s\n' "$@" >"$T/in.ndjson"; }
lines '{"type":"A","data":{}}' '{"type":"B","data":{}'
bad 2 append s --file "$T/in.ndjson"
contains "$ERR" "line 2: not valid JSON"
lines '{"data":{}}'
bad 2 append s --file "$T/in.ndjson"
contains "$ERR" "line 1: \"type\" (a string) is required"
lines '{"type":"A","stream":"elsewhere"}'
bad 2 append s --file "$T/in.ndjson"
contains "$ERR" "unknown key \"stream\""
lines '{"type":"A","metadata":[1]}'
bad 2 append s --file "$T/in.ndjson"
contains "$ERR" "\"metadata\" must be a JSON object"
lines '{"type":"A","data":"%%%","dataEncoding":"base64"}'
bad 2 append s --file "$T/in.ndjson"
contains "$ERR" "not valid base64"
lines '{"type":"A","data":"AA==","dataEncoding":"hex"}'
bad 2 append s --file "$T/in.ndjson"
lines '{"type":"A","id":"nope"}'
bad 2 append s --file "$T/in.ndjson"
lines '[]'
bad 2 append s --file "$T/in.ndjson"
lines '' '   '
bad 2 append s --file "$T/in.ndjson"
contains "$ERR" "no events in the input"
bad 1 append s --file "$T/does-not-exist.ndjson"
contains "$ERR" "cannot open"
lines '{"type":"A","id":"11111111-1111-4111-8111-111111111111"}' '{"type":"B","id":"11111111-1111-4111-8111-111111111111"}'
bad 1 append s --file "$T/in.ndjson"
contains "$ERR" "appears more than once"

# An event over the 16 MiB limit.
{ printf '{"type":"Big","data":"'; head -c 16777300 /dev/zero | tr '\0' a; printf '"}\n'; } >"$T/big.ndjson"
bad 1 append s --file "$T/big.ndjson"
contains "$ERR" "over the limit of 16777216 bytes"
rm -f "$T/big.ndjson"

# Expectations that cannot hold do not create a store either.
bad 3 append s2 --type T --expected 4
bad 3 append s2 --type T --expected exists
bad 3 meta set s2 '{}' --expected 0
bad 3 delete s2 --expected exists
bad 3 tombstone s2 --expected 7

# A directory that is not a store, and a file.
mkdir "$T/notstore"
echo data >"$T/notstore/file.txt"
NS_BEFORE=$(snapshot "$T/notstore")
for cmd in "append s --type T" "read s" "streams" "info s" "meta set s {}" "delete s" "tombstone s" "stats" "export"; do
    # shellcheck disable=SC2086
    run 1 "$FACTUM" --data "$T/notstore" $cmd
    label=${cmd%% *}
    [ "$label" = meta ] && label="meta set"
    one_error_line "$label"
    contains "$ERR" "is not a factum data directory"
done
lines '{"stream":"s","version":0,"type":"A"}'
run 1 "$FACTUM" --data "$T/notstore" import "$T/in.ndjson"
contains "$ERR" "is not a factum data directory"
eq "$(snapshot "$T/notstore")" "$NS_BEFORE" "a directory that is not a store was changed"
run 1 "$FACTUM" --data "$T/notstore/file.txt" append s --type T
contains "$ERR" "is not a factum data directory"

# A store that another process holds open (its lock is taken).
if command -v flock >/dev/null 2>&1; then
    run 1 flock -x "$D/LOCK" "$FACTUM" --data "$D" append s --type T
    one_error_line append
    contains "$ERR" "is locked by another process"
    run 1 flock -x "$D/LOCK" "$FACTUM" --data "$D" read s
    contains "$ERR" "is locked by another process"
    run 1 flock -x "$D/LOCK" "$FACTUM" --data "$D" verify
    contains "$ERR" "is locked by another process"
fi

# No data directory at all; reading a store that does not exist yet.
run 2 "$FACTUM" streams
contains "$ERR" "no data directory"
run 1 "$FACTUM" --data "$T/nothing" read s
contains "$ERR" "no factum store in"
[ ! -e "$T/nothing" ] || fail "a read created the directory"
eq "$(snapshot "$D")" "$BEFORE" "store changed"
echo "bad_input: ok"
