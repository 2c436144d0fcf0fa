#!/usr/bin/env bash
# chain.sh - the hash chain from the command line (ADR 0025): `factum chain
# head` (and a factumd's GET /admin/chain, which gives the same head),
# `chain keygen`, `chain sign` (from --data, a file and stdin), `verify
# --chain` with and without a receipt (text and --json); a byte of an event
# changed with its CRC fixed passes `verify` but not `verify --chain`; a
# receipt changed after signing, signed with another key, or of a longer
# log is refused; the usage errors.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
FACTUMD=$(dirname "$(realpath "$FACTUM")")/factumd
[ -x "$FACTUMD" ] || fail "no factumd beside $FACTUM"
. "$(dirname "$0")/../../scripts/lib.sh"
D=$T/store

for i in 1 2 3 4 5; do f 0 append "acct-$((i % 2))" --type Deposited --data "{\"amount\":1000$i}"; done
f 0 chain head
HEAD5=$OUT
eq "$(jq -r .position <<<"$HEAD5")" 5
[[ $(jq -r .hash <<<"$HEAD5") =~ ^[0-9a-f]{64}$ ]] || fail "hash: $HEAD5"

run 0 "$FACTUM" chain keygen --out "$T/k"
[ "$(stat -c %a "$T/k.key")" = 600 ] || fail "the private key's mode: $(stat -c %a "$T/k.key")"
grep -q "BEGIN PUBLIC KEY" "$T/k.pub" || fail "public key PEM"
run 1 "$FACTUM" chain keygen --out "$T/k" # never overwrites a key
contains "$ERR" "cannot create"

f 0 chain sign --key "$T/k.key"
echo "$OUT" >"$T/r5.json"
eq "$(jq -r .position "$T/r5.json")" 5
eq "$(jq -r .algorithm "$T/r5.json")" Ed25519
eq "$(jq -r .hash "$T/r5.json")" "$(jq -r .hash <<<"$HEAD5")"
run 0 "$FACTUM" chain sign --key "$T/k.key" - <<<"$HEAD5" # a head from stdin
eq "$(jq -r .hash <<<"$OUT")" "$(jq -r .hash <<<"$HEAD5")"

f 0 verify --chain --receipt "$T/r5.json" --public-key "$T/k.pub"
contains "$OUT" "hash chain: 5 batches from position 1 checked"
contains "$OUT" "the receipt's head (position 5) is on the chain"
contains "$OUT" "intact"

# More appends: the old receipt still holds (the chain passes through it).
for i in 6 7 8; do f 0 append acct-9 --type Deposited --data "{\"amount\":2000$i}"; done
f 0 verify --chain --receipt "$T/r5.json" --json
eq "$(jq -c '[.intact, .chain.batches, .chain.receipt, .chain.head.position]' <<<"$OUT")" '[true,8,true,8]'
f 0 verify --json
eq "$(jq -c .chain <<<"$OUT")" null

# Receipts that must not pass.
jq -c '.position = 4' "$T/r5.json" >"$T/changed.json"
f 1 verify --chain --receipt "$T/changed.json"
contains "$ERR" "signature does not verify"
run 0 "$FACTUM" chain keygen --out "$T/other"
f 1 verify --chain --receipt "$T/r5.json" --public-key "$T/other.pub"
contains "$ERR" "was not signed with the key"
jq -c '.position = 99' <<<"$HEAD5" >"$T/far.json"
run 0 "$FACTUM" chain sign --key "$T/k.key" "$T/far.json"
echo "$OUT" >"$T/far-r.json"
f 1 verify --chain --receipt "$T/far-r.json"
contains "$OUT" "cut or replaced"

# A byte of an event's data changed and its frame's CRC fixed: the
# checksums cannot tell, the chain can.
python3 - "$D/log/00000000.seg" <<'EOF'
import struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read(1 << 20))
i = b.index(b'"amount":10003')
i += len('"amount":1')
b[i] = ord('9')
# The event frame holding i: walk the frames from the first (offset 4096).
off = 4096
while True:
    ln = struct.unpack_from('<I', b, off)[0]
    if off <= i < off + ln:
        break
    off += ln
T = [0] * 256
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    T[n] = c
def crc(data, c=0):
    c ^= 0xFFFFFFFF
    for x in data:
        c = T[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
# The frame's CRC32C: over bytes 0..3, continued over 8..len-1.
c0 = crc(b[off:off + 4])
c = crc(b[off + 8:off + ln], c0)
struct.pack_into('<I', b, off + 4, c)
with open(p, 'r+b') as f:
    f.write(b)
EOF
f 0 verify
f 1 verify --chain
contains "$OUT" "hash chain broken at the batch of positions 3..3"
f 1 verify --chain --receipt "$T/r5.json"

# Usage.
f 2 verify --receipt "$T/r5.json"
contains "$ERR" "need --chain"
f 2 verify --chain --public-key "$T/k.pub"
run 2 "$FACTUM" chain
run 2 "$FACTUM" chain frobnicate
run 2 "$FACTUM" chain sign --key "$T/k.key" "$T/k.pub"
contains "$ERR" "not JSON"
run 2 "$FACTUM" chain keygen
run 1 "$FACTUM" chain sign --key "$T/k.pub" - <<<"$HEAD5"
contains "$ERR" "not an Ed25519 private key"
run 0 "$FACTUM" chain --help
contains "$OUT" "usage: factum chain head"

# A running factumd gives its head on GET /admin/chain (operations or
# admin users), the same head `chain head` reads offline once it stopped.
if command -v curl >/dev/null; then
    pid=""
    trap '[ -z "$pid" ] || kill -9 "$pid" 2>/dev/null || true; rm -rf "$T"' EXIT
    factumd_start "$T/factumd.log" "$FACTUMD" --disable-tls --db "$T/srv" --node-ip 127.0.0.1 --node-port 0
    pid=$factumd_pid
    URL="kurrentdb://admin:changeit@127.0.0.1:$factumd_port?tls=false"
    for i in 1 2 3; do run 0 "$FACTUM" --server "$URL" append s --type T --data "{\"i\":$i}"; done
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$factumd_port/admin/chain")
    eq "$code" 401
    SRV=$(curl -sf -u admin:changeit "http://127.0.0.1:$factumd_port/admin/chain")
    # Its own events (users, settings) come first: the head is the log's last position.
    eq "$(jq -r .position <<<"$SRV")" "$(curl -sf -u admin:changeit "http://127.0.0.1:$factumd_port/info" | jq -r .lastPosition)"
    run 0 "$FACTUM" chain sign --key "$T/k.key" - <<<"$SRV"
    echo "$OUT" >"$T/srv-r.json"
    kill -TERM "$pid"
    wait "$pid" || fail "factumd did not shut down cleanly: $(cat "$T/factumd.log")"
    pid=""
    run 0 "$FACTUM" --data "$T/srv" chain head
    eq "$OUT" "$SRV"
    run 0 "$FACTUM" --data "$T/srv" verify --chain --receipt "$T/srv-r.json" --public-key "$T/k.pub"
    if grep -E "ERROR|runtime error|AddressSanitizer|LeakSanitizer" "$T/factumd.log"; then fail "factumd's log"; fi
fi
echo "chain.sh: ok"
