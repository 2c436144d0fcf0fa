#!/usr/bin/env bash
# help_global.sh - `--help` of the program and of every command, `factum help
# CMD`, --version, the global option in its forms (--data DIR, --data=DIR,
# FACTUM_DATA), `--` before a stream name that starts with '-', and the
# usage errors of the command line itself.
set -euo pipefail
source "$(dirname "$0")/lib.bash"
D=$T/store

run 0 "$FACTUM" --help
contains "$OUT" "usage: factum [--data DIR] COMMAND"
contains "$OUT" "Exit codes:"
run 0 "$FACTUM" -h
run 0 "$FACTUM" help
contains "$OUT" "Commands:"
run 0 "$FACTUM" --version
[[ $OUT =~ ^factum\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "version: $OUT"
contains "$OUT" "(on-disk format 5)" "the format docs/cli.md shows" # a format bump updates docs/cli.md too

for cmd in append read streams info meta delete tombstone verify dump export import stats; do
    contains "$(run 0 "$FACTUM" --help && echo "$OUT")" "  $cmd " "command list"
    run 0 "$FACTUM" "$cmd" --help
    contains "$OUT" "usage: factum $cmd" "$cmd --help"
    eq "$ERR" ""
    run 0 "$FACTUM" help "$cmd"
    contains "$OUT" "usage: factum $cmd" "help $cmd"
done
# --help wins over everything else and needs no data directory.
run 0 "$FACTUM" append --bogus-but-help --help
run 0 "$FACTUM" read x --help
contains "$OUT" "--stream-prefix"
run 0 "$FACTUM" meta --help
contains "$OUT" "factum meta set STREAM JSON"

# Usage errors of the program.
run 2 "$FACTUM"
contains "$ERR" "usage: factum"
run 2 "$FACTUM" frobnicate
eq "$ERR" "factum: unknown command 'frobnicate' (see factum --help)"
run 2 "$FACTUM" help frobnicate
run 2 "$FACTUM" --verbose streams
eq "$ERR" "factum: unknown global option '--verbose' (see factum --help)"
run 2 "$FACTUM" --data
run 2 "$FACTUM" -x streams

# The data directory: --data DIR, --data=DIR, FACTUM_DATA (the option wins).
run 0 "$FACTUM" --data "$D" append one --type T --data '{}'
run 0 "$FACTUM" --data="$D" append one --type T --data '{}'
run 0 env FACTUM_DATA="$D" "$FACTUM" append one --type T --data '{}'
eq "$OUT" "appended 1 event: one@2, position 3"
run 0 env FACTUM_DATA="$T/elsewhere" "$FACTUM" --data "$D" streams
eq "$OUT" "one"
[ ! -e "$T/elsewhere" ] || fail "FACTUM_DATA used although --data was given"
run 1 env FACTUM_DATA="$T/elsewhere" "$FACTUM" streams

# Options may follow or precede the positional arguments; "--" ends them.
f 0 append --type T --expected 2 one --data '{}'
eq "$OUT" "appended 1 event: one@3, position 4"
f 0 append --type=T --data='{"eq":"a=b"}' one
f 0 read one --from 4 --json
eq "$(jq -c .data <<<"$OUT")" '{"eq":"a=b"}'
f 0 append --type T --data '{}' -- -dash
eq "$OUT" "appended 1 event: -dash@0, position 6"
f 0 read --json -- -dash
eq "$(jq -r .stream <<<"$OUT")" "-dash"
f 2 read -dash
contains "$ERR" "unknown option '-dash'"
f 2 append --type T -- -dash --json
contains "$ERR" "unexpected argument '--json'"
echo "help_global: ok"
