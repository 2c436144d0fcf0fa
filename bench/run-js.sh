#!/usr/bin/env bash
# The JavaScript engine evaluation (docs/adr/0006-javascript-engine.md):
# every factum-bench-js-* that the build has (bench/js: V8 from libnode-dev,
# Duktape from duktape-dev, Duktape from its shipped source with the
# execution timeout) and the production engine (factum-js driven by
# src/jshost/jsproc.c), RUNS times each, then the median of each "@" figure.
#
#   bench/run-js.sh [--runs N] [--events N] [--out DIR] [--only LIST]
#
# Installs the engines first if missing (scripts/deps.sh js). Raw outputs
# and medians.tsv go to DIR (default bench/results/js-<date>).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
runs=3 events=1000000 out="bench/results/js-$(date +%Y%m%d-%H%M%S)" only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --events) events=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    *) echo "usage: $0 [--runs N] [--events N] [--out DIR] [--only LIST]" >&2; exit 2 ;;
  esac
done
if [ -z "${FACTUM_BENCH_BUILD:-}" ]; then
  scripts/deps.sh js
  cmake -S . -B build/js -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  cmake --build build/js -j2 --target factum-bench-js-v8 factum-bench-js-duk factum-bench-js-duk-src factum-bench-js-worker factum-js >/dev/null 2>&1 || true
  b=build/js
else
  b=$FACTUM_BENCH_BUILD
fi
mkdir -p "$out"
# factum-bench-js-worker drives the production worker of that build.
export FACTUM_JS_WORKER=${FACTUM_JS_WORKER:-$(cd "$b" && pwd)/factum-js}
{
  echo "date: $(date -u +%FT%TZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; memory: $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "kernel: $(uname -r); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} > "$out/machine.txt"
cat "$out/machine.txt"
args=(--events "$events")
[ -n "$only" ] && args+=(--only "$only")
for prog in "$b"/bench/js/factum-bench-js-*; do
  [ -x "$prog" ] || continue
  name=$(basename "$prog")
  for r in $(seq 1 "$runs"); do
    echo "== $name run $r (load $(cut -d' ' -f1 /proc/loadavg))"
    "$prog" "${args[@]}" > "$out/$name-run$r.txt" 2>&1 || echo "$name run $r failed (see $out/$name-run$r.txt)"
  done
done
# The median of each figure over the runs.
cat "$out"/*-run*.txt | awk '/^@ /{k=$2" "$3" "$4; v[k]=v[k]" "$5} END{for(k in v) print k v[k]}' | sort |
  while read -r sys w m vals; do
    med=$(printf '%s\n' $vals | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
    printf '%s\t%s\t%s\t%s\t%s\n' "$sys" "$w" "$m" "$med" "$vals"
  done > "$out/medians.tsv"
column -t "$out/medians.tsv"
