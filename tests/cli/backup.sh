#!/usr/bin/env bash
# backup.sh - `factum backup` and `factum restore` (text and --json; an
# incremental backup keeps what it had; the restored store reads the same and
# verifies with the backup's chain head as a receipt), their refusals (a
# destination holding something else, a restore into a non-empty directory
# or from a directory without a backup, a backup of a store that factumd
# holds) and factumd's POST/GET /admin/backup while appends go on.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"
. "$(dirname "$0")/../../scripts/lib.sh"
D=$T/store

for i in $(seq 1 40); do f 0 append "acct-$((i % 4))" --type Deposited --data "{\"amount\":$i}"; done
f 0 backup "$T/b1"
contains "$OUT" "backed up into $T/b1: positions 1..40, 1 segment"
contains "$OUT" "verified"
[ -f "$T/b1/BACKUP" ] || fail "no descriptor"
for i in $(seq 41 60); do f 0 append "acct-$((i % 4))" --type Deposited --data "{\"amount\":$i}"; done
f 0 backup "$T/b1" --json
eq "$(jq -c '[.position, .segments, .verified]' <<<"$OUT")" '[60,1,true]'
HEAD=$(jq -c .chainHead <<<"$OUT")

run 0 "$FACTUM" --data "$T/r1" restore "$T/b1"
contains "$OUT" "restored into $T/r1: positions 1..60"
run 0 "$FACTUM" --data "$T/r1" read '$all' --json
eq "$(wc -l <<<"$OUT")" 60
f 0 read '$all' --json
LIVE=$OUT
run 0 "$FACTUM" --data "$T/r1" read '$all' --json
eq "$OUT" "$LIVE" "the restored store reads as the live one"
run 0 "$FACTUM" --data "$T/r1" chain head
eq "$OUT" "$HEAD"
run 0 "$FACTUM" --data "$T/r1" append acct-9 --type After --data '{}' # a store like any other

# Refusals.
mkdir -p "$T/other" && echo mine >"$T/other/notes.txt"
f 1 backup "$T/other"
contains "$ERR" "holds something else than a backup of this store"
run 1 "$FACTUM" --data "$T/other" restore "$T/b1"
contains "$ERR" "is not empty"
run 1 "$FACTUM" --data "$T/r2" restore "$T/other"
contains "$ERR" "holds no complete backup"
run 2 "$FACTUM" --data "$T/r2" restore
run 0 "$FACTUM" backup --help
contains "$OUT" "usage: factum backup DEST"
run 0 "$FACTUM" restore --help
contains "$OUT" "usage: factum restore BACKUP"

# factumd: POST /admin/backup while a client appends, GET until completed.
if command -v curl >/dev/null; then
    pid=""
    trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
    # Without --backup-dir, backups over HTTP are off.
    factumd_start "$T/factumd0.log" "$FACTUMD" --insecure --mem-db --node-ip 127.0.0.1 --node-port 0
    pid=$factumd_pid
    eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$factumd_port/admin/backup?destination=x")" 403
    kill -TERM "$pid"
    wait "$pid"
    mkdir -p "$T/backups"
    factumd_start "$T/factumd.log" "$FACTUMD" --disable-tls --db "$T/srv" --node-ip 127.0.0.1 --node-port 0 \
        --backup-dir "$T/backups/"
    pid=$factumd_pid
    H="http://127.0.0.1:$factumd_port"
    URL="kurrentdb://admin:changeit@127.0.0.1:$factumd_port?tls=false"
    seq 1 200 | sed 's/.*/{"type":"T","data":{"n":&}}/' >"$T/ev.ndjson"
    run 0 "$FACTUM" --server "$URL" append s --file "$T/ev.ndjson"
    eq "$(curl -s -o /dev/null -w '%{http_code}' -X POST "$H/admin/backup?destination=sb")" 401
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit "$H/admin/backup")" 404
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X POST "$H/admin/backup")" 400
    # Only inside --backup-dir: no '..', no absolute path outside it, no empty or '.' component.
    for bad in ../out "a/../../out" "$T/elsewhere" "$T/backupsX/b" / . "a//b" "%2e%2e/out"; do
        eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X POST "$H/admin/backup?destination=$bad")" 400 "$bad"
    done
    [ ! -e "$T/out" ] && [ ! -e "$T/elsewhere" ] || fail "a backup escaped --backup-dir"
    ( for i in $(seq 1 30); do "$FACTUM" --server "$URL" append t --type T --data "{\"i\":$i}" >/dev/null; done ) &
    apid=$!
    R=$(curl -sf -u admin:changeit -X POST "$H/admin/backup?destination=sb")
    [[ $(jq -r .backupId <<<"$R") =~ ^[0-9a-f-]{36}$ ]] || fail "backupId: $R"
    for _ in $(seq 1 100); do
        S=$(curl -sf -u admin:changeit "$H/admin/backup")
        [ "$(jq -r .state <<<"$S")" = running ] || break
        sleep 0.1
    done
    wait $apid
    eq "$(jq -r .state <<<"$S")" completed "state ($S)"
    eq "$(jq -r .verified <<<"$S")" true
    P=$(jq -r .position <<<"$S")
    [ "$P" -ge 200 ] || fail "backup position $P"
    eq "$(jq -r .destination <<<"$S")" "$T/backups/sb"
    run 0 "$FACTUM" --data "$T/sr" restore "$T/backups/sb" --json
    eq "$(jq -r .position <<<"$OUT")" "$P"
    eq "$(jq -c .chainHead <<<"$OUT")" "$(jq -c .chainHead <<<"$S")"
    # An absolute destination inside --backup-dir is taken too (incremental into the same one).
    eq "$(curl -s -o /dev/null -w '%{http_code}' -u admin:changeit -X POST "$H/admin/backup?destination=$T/backups/sb")" 202
    for _ in $(seq 1 100); do
        S=$(curl -sf -u admin:changeit "$H/admin/backup")
        [ "$(jq -r .state <<<"$S")" = running ] || break
        sleep 0.1
    done
    eq "$(jq -c '[.state, .kept >= 0]' <<<"$S")" '["completed",true]'
    run 1 "$FACTUM" --data "$T/srv" backup "$T/sb2" # factumd holds it
    contains "$ERR" "is locked by another process: if a factumd runs on it, back it up with POST /admin/backup"
    one_error_line backup
    run 1 "$FACTUM" --data "$T/srv" chain head
    contains "$ERR" "its head is on GET /admin/chain"
    kill -TERM "$pid"
    wait "$pid" || fail "factumd did not shut down cleanly: $(cat "$T/factumd.log")"
    pid=""
    grep -q "backup .* completed" "$T/factumd.log" || fail "no log line for the backup"
    if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$T/factumd.log"; then fail "factumd's log"; fi
fi
echo "backup.sh: ok"
