#!/usr/bin/env bash
# archive.sh - the archive tier through factumd and the CLI: factumd with
# --archive-dir copies sealed segments and drops the local ones when asked
# (POST /admin/archive, ops and admins only), its events still read back
# through a client and $all; GET /admin/archive and /metrics agree; stopped,
# the CLI finds the archive the store recorded (status, a pass, verify
# --chain, reads); factumd started again without --archive-dir still serves
# the archived events and refuses POST; `factum archive` without an archive
# is a usage error.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"
. "$(dirname "$0")/../../scripts/lib.sh"
command -v curl >/dev/null || { echo "SKIP: no curl"; exit 77; }
D=$T/srv
A=$T/archive
mkdir -p "$A"
PAD=$(head -c 3000 /dev/zero | tr '\0' x)
for i in $(seq 1 50); do printf '{"type":"T","data":{"i":%d,"pad":"%s"}}\n' "$i" "$PAD"; done >"$T/part.ndjson"

pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
factumd_start "$T/factumd.log" "$FACTUMD" --disable-tls --db "$D" --node-ip 127.0.0.1 --node-port 0 \
    --chunk-size 1048576 --archive-dir "$A" --archive-retain-bytes 0 --archive-retain-seconds 0 \
    --archive-interval-ms 0
pid=$factumd_pid
H="http://127.0.0.1:$factumd_port"
URL="kurrentdb://admin:changeit@127.0.0.1:$factumd_port?tls=false"
for _ in $(seq 1 24); do run 0 "$FACTUM" --server "$URL" append s --file "$T/part.ndjson"; done
S=$(curl -sf -u admin:changeit "$H/admin/archive")
eq "$(jq -c '[.enabled, .archiveOnly]' <<<"$S")" '[true,0]' "before a pass ($S)"
eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$H/admin/archive")" 401
eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X PUT "$H/admin/archive")" 405
P0=$(jq -r .passes <<<"$S") # (the pass at the start)
eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X POST "$H/admin/archive")" 202
for _ in $(seq 1 100); do
    S=$(curl -sf -u admin:changeit "$H/admin/archive")
    [ "$(jq -r .passes <<<"$S")" -gt "$P0" ] && break
    sleep 0.1
done
N=$(jq -r .archiveOnly <<<"$S")
[ "$N" -ge 3 ] || fail "archive only after a pass: $S"
eq "$(jq -c '[.localOnly, .archived, .error]' <<<"$S")" '[0,0,""]' "status ($S)"
[ ! -e "$D/log/00000000.seg" ] || fail "segment 0 is still local"
U=$(ls "$A")
[ -f "$A/$U/00000000.seg" ] || fail "segment 0 is not in $A/$U"
run 0 "$FACTUM" --server "$URL" read s --json
eq "$(wc -l <<<"$OUT")" 1200 "events read back"
eq "$(jq -c .data.i <<<"$(head -1 <<<"$OUT")")" 1
run 0 "$FACTUM" --server "$URL" read '$all' --json
eq "$(jq -r 'select(.stream == "s") | .stream' <<<"$OUT" | wc -l)" 1200 "s's events in \$all"
M=$(curl -sf -u admin:changeit "$H/metrics")
grep -q "^factum_archive_segments_archive_only $N$" <<<"$M" || fail "metrics: $(grep archive <<<"$M")"
grep -q "^factum_archive_failing 0$" <<<"$M" || fail "metrics: $(grep archive <<<"$M")"
kill -TERM "$pid"
wait "$pid"
pid=""

# Offline: the store recorded its archive.
eq "$(cat "$D/ARCHIVE")" "$A"
run 0 "$FACTUM" --data "$D" archive --status --json
eq "$(jq -r .archiveOnly <<<"$OUT")" "$N" "offline status"
run 0 "$FACTUM" --data "$D" archive --keep-local
contains "$OUT" "0 local copies dropped now"
run 0 "$FACTUM" --data "$D" verify --chain
contains "$OUT" "intact"
run 0 "$FACTUM" --data "$D" read s --json
eq "$(wc -l <<<"$OUT")" 1200 "offline reads"
# The archive away: the open says what is missing.
mv "$A" "$A.away"
run 1 "$FACTUM" --data "$D" read s
contains "$ERR" "missing"
mv "$A.away" "$A"

# factumd without --archive-dir: archived events still read; no archiving.
factumd_start "$T/factumd2.log" "$FACTUMD" --disable-tls --db "$D" --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
H="http://127.0.0.1:$factumd_port"
URL="kurrentdb://admin:changeit@127.0.0.1:$factumd_port?tls=false"
run 0 "$FACTUM" --server "$URL" read s --json
eq "$(wc -l <<<"$OUT")" 1200 "reads from the recorded archive"
eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X POST "$H/admin/archive")" 409
kill -TERM "$pid"
wait "$pid"
pid=""

# Usage.
D=$T/fresh
f 0 append x --type T --data '{}'
f 2 archive
contains "$ERR" "--archive-dir"
f 2 archive --archive-dir "$A" --retain-bytes lots
run 0 "$FACTUM" archive --help
contains "$OUT" "usage: factum archive"
