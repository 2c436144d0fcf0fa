#!/usr/bin/env bash
# temporal.sh - `read --as-of/--as-of-position/--valid-at` (a stream and
# '$all', bad times refused) and `schedule` (--at, --in, list, cancel, a
# request due while no program had the store open delivered at the next
# open, bad input refused without touching the store).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store

f 0 append acct --type Deposited --data '{"n":1}' --metadata '{"$validFrom":"2026-03-10T00:00:00Z"}'
sleep 0.05
T1=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 0.05
# a correction recorded later, valid from before
f 0 append acct --type Corrected --data '{"n":2}' --metadata '{"$validFrom":"2026-03-09T00:00:00Z"}'
f 0 append acct --type Deposited --data '{"n":3}'

f 0 read acct --as-of "$T1" --json
eq "$(jq -s -c 'map(.data.n)' <<<"$OUT")" '[1]'
f 0 read acct --valid-at 2026-03-09T12:00:00Z --json
eq "$(jq -s -c 'map(.data.n)' <<<"$OUT")" '[2]'
f 0 read acct --as-of-position 2 --backward --json
eq "$(jq -s -c 'map(.data.n)' <<<"$OUT")" '[2,1]'
f 0 read acct --as-of "$T1" --valid-at 2026-03-09T12:00:00Z --json
eq "$OUT" ''
f 0 read '$all' --as-of-position 2 --json
eq "$(jq -s -c 'map(.position)' <<<"$OUT")" '[1,2]'
f 0 read '$all' --as-of "$T1" --exclude-system --json
eq "$(jq -s -c 'map(.data.n)' <<<"$OUT")" '[1]'
f 4 read never --as-of "$T1"
f 2 read acct --as-of yesterday
f 2 read acct --as-of "$T1" --as-of-position 3
f 2 read acct --valid-at 2026-13-01

# schedule: --in, --at, list, cancel.
f 0 schedule reminders Ping '{"x":1}' --in 4s --json
SOON=$(jq -r .id <<<"$OUT")
SOON_AT=$(date -d "$(jq -r .deliverAt <<<"$OUT")" +%s.%N)
f 0 schedule reminders Ping '{"x":2}' --at 2030-01-01T00:00:00Z --metadata '{"k":"v"}' --json
LATER=$(jq -r .id <<<"$OUT")
eq "$(jq -r .deliverAt <<<"$OUT")" 2030-01-01T00:00:00.000000000Z
f 0 schedule list --json
eq "$(jq -s -c 'map(.id)' <<<"$OUT")" "[\"$SOON\",\"$LATER\"]"
f 0 schedule cancel "$LATER"
f 4 schedule cancel "$LATER"
f 2 schedule cancel not-a-uuid
# due while nothing had the store open: delivered when it is next opened
# for writing (a read-only open delivers nothing)
sleep "$(awk -v t="$SOON_AT" -v n="$(date +%s.%N)" 'BEGIN { d = t - n + 0.2; print (d > 0 ? d : 0) }')"
f 0 schedule list
f 4 schedule cancel 00000000-0000-4000-8000-000000000000
f 0 schedule list
eq "$OUT" ''
f 0 read reminders --json
eq "$(jq -s -c 'map([.type,.data.x])' <<<"$OUT")" '[["Ping",1]]'
# bad input
f 2 schedule reminders Ping '{}'
f 2 schedule reminders Ping '{}' --at 2030-01-01 --in 1s
f 2 schedule reminders Ping 'not json' --in 1s
f 2 schedule reminders Ping '{}' --in soon
f 2 schedule reminders Ping '{}' --in 1s --metadata '{"$deliverTo":"x"}'
f 1 schedule '$scheduled' Ping '{}' --in 1s
# a read model's tables as of a position or a time
cat >"$T/bal.json" <<'JSON'
{"name":"bal","schema":["CREATE TABLE b(id TEXT PRIMARY KEY, n INTEGER NOT NULL)"],"streams":["acct"],
 "handlers":{"Deposited":"INSERT INTO b VALUES ('acct', :data.n) ON CONFLICT(id) DO UPDATE SET n = n + :data.n",
             "Corrected":"INSERT INTO b VALUES ('acct', :data.n) ON CONFLICT(id) DO UPDATE SET n = n + :data.n"}}
JSON
f 0 readmodel create "$T/bal.json"
f 0 query bal 'SELECT n FROM b' --min-position 3 --json
eq "$(jq -c .rows <<<"$OUT")" '[[6]]'
f 0 query bal 'SELECT n FROM b' --as-of-position 2 --json
eq "$(jq -c '[.rows, .position]' <<<"$OUT")" '[[[3]],2]'
f 0 query bal 'SELECT n FROM b' --as-of "$T1" --json
eq "$(jq -c .rows <<<"$OUT")" '[[1]]'
f 0 query bal 'SELECT n FROM b' --as-of 2000-01-01 --json
eq "$(jq -c .rows <<<"$OUT")" '[]'
f 2 query bal 'SELECT n FROM b' --as-of soon
f 2 query bal 'DELETE FROM b' --as-of-position 2

# ---- the same over the network (--server: a factumd beside factum) ----------
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"
. "$(dirname "$0")/../../scripts/lib.sh"
pid=""
trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
factumd_start "$T/factumd.log" "$FACTUMD" --insecure --db "$T/srv" --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
URL="kurrentdb://127.0.0.1:$factumd_port?tls=false"
s() { local want=$1; shift; run "$want" "$FACTUM" --server "$URL" "$@"; }
s 0 append acct --type Deposited --data '{"n":1}' --metadata '{"$validFrom":"2026-03-10T00:00:00Z"}'
sleep 0.05
S1=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 0.05
s 0 append acct --type Corrected --data '{"n":2}' --metadata '{"$validFrom":"2026-03-09T00:00:00Z"}'
s 0 read acct --as-of "$S1" --json
eq "$(jq -s -c 'map(.data.n)' <<<"$OUT")" '[1]'
s 0 read acct --valid-at 2026-03-09T12:00:00Z --json
eq "$(jq -s -c 'map(.data.n)' <<<"$OUT")" '[2]'
s 0 read '$all' --as-of "$S1" --exclude-system --json
eq "$(jq -s -c 'map(.data.n)' <<<"$OUT")" '[1]'
s 4 read acct --as-of 2000-01-01
s 0 schedule reminders Ping '{"x":9}' --in 300ms
for _ in $(seq 1 100); do
  run 0 "$FACTUM" --server "$URL" read '$all' --json
  grep -q '"stream":"reminders"' <<<"$OUT" && break
  sleep 0.05
done
s 0 read reminders --json
eq "$(jq -s -c 'map([.type,.data.x])' <<<"$OUT")" '[["Ping",9]]'
s 1 schedule list
s 0 readmodel create "$T/bal.json"
s 0 read acct --json
P2=$(jq -s '.[1].position' <<<"$OUT")
s 0 query bal 'SELECT n FROM b' --min-position "$P2" --json
eq "$(jq -c .rows <<<"$OUT")" '[[3]]'
s 0 query bal 'SELECT n FROM b' --as-of "$S1" --json
eq "$(jq -c .rows <<<"$OUT")" '[[1]]'
s 0 read acct --json
P1=$(jq -s '.[0].position' <<<"$OUT")
s 0 query bal 'SELECT n FROM b' --as-of-position "$P1" --json
eq "$(jq -c .rows <<<"$OUT")" '[[1]]'
s 2 query bal 'SELECT n FROM b' --as-of yesterday
kill -TERM "$pid"
wait "$pid" || fail "factumd did not shut down cleanly: $(cat "$T/factumd.log")"
pid=""
if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$T/factumd.log"; then fail "factumd's log"; fi
echo ok
