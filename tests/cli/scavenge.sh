#!/usr/bin/env bash
# scavenge.sh - `factum scavenge` (text and --json): a stream under $maxCount
# and a soft-deleted one lose their unreadable events and the log file
# shrinks; reads give what they gave before; a second run finds nothing to do;
# verify --chain still passes; bad options are refused; a store that factumd
# holds gets the hint; factumd's POST/GET/DELETE /admin/scavenge (ops and
# admins only) while a client appends.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"
. "$(dirname "$0")/../../scripts/lib.sh"
D=$T/store

PAD=$(head -c 3000 /dev/zero | tr '\0' x)
f 0 meta set kept '{"$maxCount":5}'
for i in $(seq 1 200); do
    printf '{"type":"T","data":{"i":%d,"pad":"%s"}}\n{"type":"T","data":{"i":%d,"pad":"%s"}}\n' "$i" "$PAD" "$i" "$PAD"
done >"$T/ev.ndjson"
f 0 append kept --file "$T/ev.ndjson"
f 0 append gone --file "$T/ev.ndjson"
f 0 append live --type T --data '{"i":1}'
f 0 delete gone
f 0 read kept --json
KEPT=$(jq -c '[.version, .data.i]' <<<"$OUT")
eq "$(wc -l <<<"$OUT")" 5
run 0 "$FACTUM" chain keygen --out "$T/k"
f 0 chain sign --key "$T/k.key"
echo "$OUT" >"$T/receipt.json"
BEFORE=$(du -k "$D/log/00000000.seg" | cut -f1)

f 0 scavenge --seal
contains "$OUT" "completed: 1 of 1 segments compacted"
contains "$OUT" "events removed"
AFTER=$(du -k "$D/log/00000000.seg" | cut -f1)
# 800 events of 3 KB, 5 of them readable: over 2 MB freed (the segment the
# seal started is preallocated whole, as every new one).
[ $((BEFORE - AFTER)) -gt 2000 ] || fail "segment 0 went from ${BEFORE}k to ${AFTER}k"
[ "$AFTER" -lt 200 ] || fail "segment 0 still has ${AFTER}k"
f 0 read kept --json
eq "$(jq -c '[.version, .data.i]' <<<"$OUT")" "$KEPT" "kept reads as before"
f 4 read gone
f 0 read live --json
eq "$(jq -c .data.i <<<"$OUT")" 1
f 0 read '$all' --json
eq "$(jq -r 'select(.stream == "kept") | .stream' <<<"$OUT" | wc -l)" 5 "kept's events in \$all"
eq "$(jq -r 'select(.stream == "gone") | .stream' <<<"$OUT" | wc -l)" 0 "gone's events in \$all"
f 0 streams
contains "$OUT" "gone"
f 0 scavenge --json
eq "$(jq -c '[.state, .compacted, .eventsRemoved]' <<<"$OUT")" '["completed",0,0]' "a second scavenge"
f 0 read '$scavenges' --json
eq "$(jq -r .type <<<"$OUT" | sort | uniq -c | awk '{print $1 $2}' | tr '\n' ' ')" '2$scavengeCompleted 2$scavengeStarted '
# The chain still verifies, through the head signed before the scavenge.
f 0 verify --chain --receipt "$T/receipt.json" --public-key "$T/k.pub"
contains "$OUT" "is on the chain"
contains "$OUT" "intact"
contains "$OUT" "of them removed by scavenges"
f 0 verify --json
[ "$(jq -r .removed <<<"$OUT")" -gt 700 ] || fail "removed in verify --json: $OUT"
f 2 scavenge --threshold 200
f 2 scavenge --throttle x
run 0 "$FACTUM" scavenge --help
contains "$OUT" "usage: factum scavenge"
run 1 "$FACTUM" --data "$T/none" scavenge
contains "$ERR" "no store"

# factumd: the HTTP control surface.
if command -v curl >/dev/null; then
    pid=""
    trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
    factumd_start "$T/factumd.log" "$FACTUMD" --disable-tls --db "$T/srv" --node-ip 127.0.0.1 --node-port 0 \
        --chunk-size 1048576
    pid=$factumd_pid
    H="http://127.0.0.1:$factumd_port"
    URL="kurrentdb://admin:changeit@127.0.0.1:$factumd_port?tls=false"
    run 1 "$FACTUM" --data "$T/srv" scavenge
    contains "$ERR" "POST /admin/scavenge"
    run 0 "$FACTUM" --server "$URL" meta set s '{"$maxCount":3}'
    split -l 50 "$T/ev.ndjson" "$T/part." # an append fits in a segment (1 MiB here)
    for p in "$T"/part.* "$T"/part.*; do run 0 "$FACTUM" --server "$URL" append s --file "$p"; done
    eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$H/admin/scavenge")" 401
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit "$H/admin/scavenge/nope")" 404
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit "$H/admin/scavenge/last")" 404
    eq "$(curl -sf -u admin:changeit "$H/admin/scavenge" | jq -r .state)" none
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X POST "$H/admin/scavenge?threshold=101")" 400
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X POST "$H/admin/scavenge?seal=maybe")" 400
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X DELETE "$H/admin/scavenge/nope")" 404
    # A slow one (1 MB/s), stopped; then a whole one while a client appends.
    R=$(curl -sf -u admin:changeit -X POST "$H/admin/scavenge?seal=true&throttle=1000000")
    ID=$(jq -r .scavengeId <<<"$R")
    [[ $ID =~ ^[0-9a-f-]{36}$ ]] || fail "scavengeId: $R"
    R2=$(curl -s -w ' %{http_code}' -u admin:changeit -X POST "$H/admin/scavenge")
    contains "$R2" "\"scavengeId\":\"$ID\""
    contains "$R2" " 409"
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X DELETE "$H/admin/scavenge/$ID")" 200
    for _ in $(seq 1 100); do
        S=$(curl -sf -u admin:changeit "$H/admin/scavenge/$ID")
        [ "$(jq -r .state <<<"$S")" = running ] || break
        sleep 0.1
    done
    eq "$(jq -r .state <<<"$S")" stopped "state ($S)"
    ( for i in $(seq 1 20); do "$FACTUM" --server "$URL" append t --type T --data "{\"i\":$i}" >/dev/null; done ) &
    apid=$!
    ID=$(curl -sf -u admin:changeit -X POST "$H/admin/scavenge?seal=true" | jq -r .scavengeId)
    for _ in $(seq 1 200); do
        S=$(curl -sf -u admin:changeit "$H/admin/scavenge/current")
        [ "$(jq -r .state <<<"$S")" = running ] || break
        sleep 0.1
    done
    wait $apid
    eq "$(jq -r '[.scavengeId, .state] | join(" ")' <<<"$S")" "$ID completed" "state ($S)"
    # (the stopped one may have compacted some segments already)
    [ "$(jq -r .eventsRemoved <<<"$S")" -gt 0 ] || fail "removed: $S"
    [ "$(jq -r .spaceSaved <<<"$S")" -gt 1000000 ] || fail "saved: $S"
    eq "$(curl -sf -u admin:changeit "$H/admin/scavenge/last" | jq -r .scavengeId)" "$ID"
    M=$(curl -sf -u admin:changeit "$H/metrics")
    grep -q "^factum_scavenge_running 0$" <<<"$M" || fail "factum_scavenge_running: $(grep scavenge <<<"$M")"
    SAVED=$(sed -n 's/^factum_scavenge_space_saved_bytes \(.*\)/\1/p' <<<"$M")
    eq "$SAVED" "$(jq -r .spaceSaved <<<"$S")" "factum_scavenge_space_saved_bytes"
    run 0 "$FACTUM" --server "$URL" read s --json
    eq "$(wc -l <<<"$OUT")" 3
    run 0 "$FACTUM" --server "$URL" read '$all' --json
    eq "$(jq -r 'select(.stream == "s") | .stream' <<<"$OUT" | wc -l)" 3 "s's events in \$all after both"
    run 0 "$FACTUM" --server "$URL" read t --json
    eq "$(wc -l <<<"$OUT")" 20
    kill -TERM "$pid"
    wait "$pid"
    pid=""
    grep -q "scavenge $ID started" "$T/factumd.log" || fail "no log line for the scavenge"
    run 0 "$FACTUM" --data "$T/srv" verify --chain
fi
