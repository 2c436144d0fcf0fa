#!/usr/bin/env bash
# users.sh - `factum user` against a factumd beside factum started with
# --disable-tls (authentication on): list and show (text and --json), create
# with groups and a full name, the password from a file and from stdin,
# update, disable (its login then fails: exit 5, Unauthenticated), enable,
# change-password (one's own, with the current password), reset-password,
# delete; the errors: no such user (exit 4), a taken login (exit 1), not an
# admin (exit 5, access denied), no --server (exit 2), usage (exit 2).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"
. "$(dirname "$0")/../../scripts/lib.sh"
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
factumd_start "$T/factumd.log" "$FACTUMD" --disable-tls --mem-db --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
HOST="127.0.0.1:$factumd_port"
as() { local want=$1 who=$2; shift 2; run "$want" "$FACTUM" --server "kurrentdb://$who@$HOST?tls=false" "$@"; }
A=admin:changeit

as 0 $A user list
contains "$OUT" "admin"
contains "$OUT" "[\$admins]"
contains "$OUT" "ops"
as 0 $A user list --json
eq "$(jq -s -c 'map(.loginName)' <<<"$OUT")" '["admin","ops"]'
eq "$(jq -s -c '.[0].groups' <<<"$OUT")" '["$admins"]'

as 0 $A user create ann --full-name "Ann A" --group team --group ops2 'pw 1'
as 0 $A user show ann --json
eq "$(jq -c '[.loginName,.fullName,.groups,.disabled]' <<<"$OUT")" '["ann","Ann A",["team","ops2"],false]'
as 0 "ann:pw 1" user show ann
contains "$OUT" "Ann A"
as 1 $A user create ann x
contains "$ERR" "exists"
as 5 "ann:pw 1" user create bob x
contains "$ERR" "denied"
as 5 "ann:pw 1" user list
as 4 $A user delete nobody
contains "$ERR" "no user 'nobody'"

printf 'from file\n' >"$T/pw"
as 0 $A user create bob --new-password-file "$T/pw"
as 0 "bob:from file" user show bob
run 0 "$FACTUM" --server "kurrentdb://$A@$HOST?tls=false" user reset-password bob --new-password-file - <<<"from stdin"
as 0 "bob:from stdin" user show bob
as 5 "bob:from file" user show bob
contains "$ERR" "nauthenticated"

as 0 $A user update ann --full-name "Ann B" --group team
as 0 $A user show ann --json
eq "$(jq -c '[.fullName,.groups]' <<<"$OUT")" '["Ann B",["team"]]'
as 0 $A user disable ann
as 5 "ann:pw 1" user show ann
as 0 $A user enable ann
as 0 "ann:pw 1" user show ann
as 5 "ann:pw 1" user change-password ann wrong new
as 0 "ann:pw 1" user change-password ann 'pw 1' 'pw 2'
as 0 "ann:pw 2" user show ann
as 0 $A user delete ann
as 4 $A user show ann

run 2 "$FACTUM" user list
contains "$ERR" "--server"
as 2 $A user frobnicate
as 2 $A user create
as 0 $A user --help
contains "$OUT" "usage: factum --server URL user list"

kill -TERM "$pid"
wait "$pid" || fail "factumd did not shut down cleanly: $(cat "$T/factumd.log")"
pid=""
if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$T/factumd.log"; then fail "factumd's log"; fi
echo "users.sh: ok"
