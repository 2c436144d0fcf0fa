#!/usr/bin/env bash
# read_all.sh - `factum read '$all'`: the whole log in both directions, --from
# and --count, and every filter (stream and type prefixes, repeated; regexes;
# --exclude-system; combinations, which must all hold).
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store

# positions: 1 order-1 Placed, 2 order-2 Placed, 3 user-1 Registered,
# 4 order-1 Paid, 5 $$order-1 $metadata, 6 user-2 Registered, 7 invoice-9 Issued
f 0 append order-1 --type OrderPlaced --data '{}'
f 0 append order-2 --type OrderPlaced --data '{}'
f 0 append user-1 --type UserRegistered --data '{}'
f 0 append order-1 --type OrderPaid --data '{}'
f 0 meta set order-1 '{"note":"x"}'
f 0 append user-2 --type UserRegistered --data '{}'
f 0 append invoice-9 --type InvoiceIssued --data '{}'

positions() { jq -s -c 'map(.position)' <<<"$OUT"; }

f 0 read '$all' --json
eq "$(positions)" '[1,2,3,4,5,6,7]'
eq "$(jq -s -c '.[4] | [.stream,.version,.type,.data]' <<<"$OUT")" '["$$order-1",0,"$metadata",{"note":"x"}]'
f 0 read '$all' --backward --json
eq "$(positions)" '[7,6,5,4,3,2,1]'
f 0 read '$all' --from 3 --count 2 --json
eq "$(positions)" '[3,4]'
f 0 read '$all' --backward --from 3 --json
eq "$(positions)" '[3,2,1]'
f 0 read '$all' --from 100 --json
eq "$OUT" ""
f 0 read '$all'
eq "$(wc -l <<<"$OUT")" 7
[[ $(sed -n 5p <<<"$OUT") =~ ^5\ \ \$\$order-1@0\ \ \$metadata\ \  ]] || fail "human \$all line: $OUT"

f 0 read '$all' --stream-prefix order- --json
eq "$(positions)" '[1,2,4]' "stream prefix"
f 0 read '$all' --stream-prefix order- --stream-prefix user- --json
eq "$(positions)" '[1,2,3,4,6]' "repeated stream prefix"
f 0 read '$all' --type-prefix User --type-prefix Invoice --json
eq "$(positions)" '[3,6,7]' "repeated type prefix"
f 0 read '$all' --stream-regex '^(user|invoice)-[0-9]$' --json
eq "$(positions)" '[3,6,7]' "stream regex"
f 0 read '$all' --type-regex 'Paid|Issued' --json
eq "$(positions)" '[4,7]' "type regex"
f 0 read '$all' --exclude-system --json
eq "$(positions)" '[1,2,3,4,6,7]' "exclude system"
f 0 read '$all' --stream-prefix order- --type-prefix OrderPlaced --json
eq "$(positions)" '[1,2]' "stream and type filters together"
f 0 read '$all' --stream-prefix order- --stream-regex '2$' --json
eq "$(positions)" '[2]' "prefix and regex together"
f 0 read '$all' --stream-prefix '$' --json
eq "$(positions)" '[5]' "system streams by prefix"
f 0 read '$all' --type-regex Registered --backward --count 1 --json
eq "$(positions)" '[6]' "filter backward with count"
f 0 read '$all' --stream-prefix nomatch --json
eq "$OUT" ""

# A filter that drops most of a log longer than one page.
seq 1 1500 | sed 's/.*/{"type":"Noise","data":{}}/' >"$T/noise.ndjson"
f 0 append noise --file "$T/noise.ndjson"
f 0 append rare --type Rare --data '{}'
f 0 read '$all' --type-prefix Rare --json
eq "$(positions)" '[1508]' "sparse filter"
f 0 read '$all' --stream-prefix noise --count 600 --json
eq "$(jq -s -c '[length, .[0].position, .[599].position]' <<<"$OUT")" '[600,8,607]'
f 0 read '$all' --backward --json
eq "$(jq -s -c '[length, .[0].position, .[1507].position]' <<<"$OUT")" '[1508,1508,1]'

# Filters are for $all only; a bad regex is a usage error.
f 2 read order-1 --stream-prefix x
one_error_line read
f 2 read '$all' --stream-regex '('
one_error_line read
contains "$ERR" "not a valid regular expression (PCRE2 syntax"
f 2 read '$all' --type-regex '[z-a]'
# The syntax KurrentDB users write (.NET-like): \d, classes, (?i).
f 0 read '$all' --stream-regex '^ORDER-\d+$' --json
eq "$(positions)" '[]' "case matters"
f 0 read '$all' --stream-regex '(?i)^ORDER-\d+$' --count 2 --json
eq "$(jq -s -c 'map(.stream)' <<<"$OUT")" '["order-1","order-2"]' "(?i) and \\d"
# A pattern that backtracks without end fails the read clearly (FLT-2).
f 0 append "$(printf 'a%.0s' {1..60})-" --type Long --data '{}'
f 1 read '$all' --stream-regex '^(\w+\w?)+$'
one_error_line read
contains "$ERR" "match limits"
echo "read_all: ok"
