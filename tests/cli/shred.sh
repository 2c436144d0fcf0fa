#!/usr/bin/env bash
# shred.sh - crypto-shredding through the CLI: with --master-key-file and
# --shred-categories the events of user-<id> are sealed (no plaintext in the
# data directory) and read back as written; without the key the store does
# not open (one error line); a key readable by others is refused; `shred`
# erases a subject (read shows <shredded>, --json "shredded":true), says so
# again with exit 4, and `shreds` lists it (--ids: the key ids); a backup made
# before the shred, restored with `restore --shreds`, keeps the subject
# shredded; restored without the list, it does not (why the list exists).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/data
K=$T/master.key
head -c 32 /dev/urandom >"$K"
chmod 600 "$K"
S=(--master-key-file "$K" --shred-categories user)
MARK=PLAINTEXT-OF-ANN
run 0 "$FACTUM" --data "$D" "${S[@]}" append user-1 --type Registered --data "{\"name\":\"$MARK\"}"
run 0 "$FACTUM" --data "$D" "${S[@]}" append user-2 --type Registered --data '{"name":"Bob"}'
run 0 "$FACTUM" --data "$D" "${S[@]}" append order-1 --type Placed --data '{"total":3}'
if grep -rq "$MARK" "$D"; then fail "plaintext in the data directory: $(grep -rl "$MARK" "$D")"; fi
run 0 "$FACTUM" --data "$D" "${S[@]}" read user-1
contains "$OUT" "$MARK"
run 0 "$FACTUM" --data "$D" "${S[@]}" read '$all' --json
contains "$OUT" "$MARK"
# Without the master key, or with one others can read: refused.
f 1 read user-1
one_error_line read
contains "$ERR" "master key"
chmod 644 "$K"
run 1 "$FACTUM" --data "$D" "${S[@]}" read user-1
chmod 600 "$K"
run 1 "$FACTUM" --data "$D" shred 1 # no master key: the store does not open
contains "$ERR" "master key"
# A backup before the shred.
run 0 "$FACTUM" --data "$D" "${S[@]}" backup "$T/b1"
run 0 "$FACTUM" --data "$D" "${S[@]}" shred 1 --json
eq "$(jq -r .subject <<<"$OUT")" 1
KID=$(jq -r .keyId <<<"$OUT")
run 4 "$FACTUM" --data "$D" "${S[@]}" shred 1
one_error_line shred
run 0 "$FACTUM" --data "$D" "${S[@]}" read user-1
contains "$OUT" "<shredded>"
lacks "$OUT" "$MARK"
run 0 "$FACTUM" --data "$D" "${S[@]}" read user-1 --json
eq "$(jq -r '.shredded' <<<"$OUT")" true
eq "$(jq -r '.data' <<<"$OUT")" ""
run 0 "$FACTUM" --data "$D" "${S[@]}" read user-2
contains "$OUT" Bob
run 0 "$FACTUM" --data "$D" "${S[@]}" shreds
contains "$OUT" "key $KID  1"
run 0 "$FACTUM" --data "$D" "${S[@]}" shreds --ids
eq "$(grep -v '^#' <<<"$OUT")" "$KID"
printf '%s\n' "$OUT" >"$T/ids.txt"
# Restores of the backup made before the shred.
run 0 "$FACTUM" --data "$T/r1" "${S[@]}" restore "$T/b1" --shreds "$T/ids.txt"
run 0 "$FACTUM" --data "$T/r1" "${S[@]}" read user-1
contains "$OUT" "<shredded>"
run 0 "$FACTUM" --data "$T/r2" "${S[@]}" restore "$T/b1"
run 0 "$FACTUM" --data "$T/r2" "${S[@]}" read user-1
contains "$OUT" "$MARK" "a backup from before the shred, restored without the list"
run 1 "$FACTUM" --data "$T/r3" restore "$T/b1"
one_error_line restore
contains "$ERR" "master key"
echo "user-1" >"$T/bad.txt"
rm -rf "$T/r4"
run 1 "$FACTUM" --data "$T/r4" "${S[@]}" restore "$T/b1" --shreds "$T/bad.txt"
one_error_line restore
contains "$ERR" "not a list of key ids"
echo "shred.sh: ok"
