#!/usr/bin/env bash
# Runs the embedded benchmarks (bench/embedded.c) several times on this
# machine and prints each run plus the median and min-max of every
# workload's throughput. Usage: bench/run-embedded.sh [runs=3] [--relaxed] [--quick] [--no-w9]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}; shift || true
args=(); w9=(--w9)
for a in "$@"; do case "$a" in --no-w9) w9=();; *) args+=("$a");; esac; done
. bench/lib.sh
bench_build factum-bench-embedded # FACTUM_BENCH_BUILD=DIR: use an existing build directory
dir=${FACTUM_BENCH_DIR:-${FACTUM_BENCH_TMP:-/tmp}/factum-bench}
out=$(mktemp)
for r in $(seq 1 "$runs"); do
  echo "## run $r"
  # W9 (10 M events, several GB) only in the first run
  extra=(); [ "$r" = 1 ] && extra=("${w9[@]}")
  "$b"/bench/factum-bench-embedded --dir "$dir" "${args[@]}" "${extra[@]}" | tee -a "$out"
  rm -rf "$dir"
  echo
done
echo "## medians of $runs runs (events/s; min-max)"
echo
echo "| workload | median | min | max |"
echo "|---|---|---|---|"
grep -E '^\| W[0-9]' "$out" | awk -F'|' '
  { w=$2; gsub(/ /,"",w); if (w=="W3") { split($3,a," "); w=w" ("a[1]" clients)" }
    v=$4; if (v !~ /ev\/s/) next; gsub(/[^0-9]/,"",v); if (v!="") print w "\t" v }' > "$out.vals"
cut -f1 "$out.vals" | sort -u | while read -r w; do
  mapfile -t xs < <(awk -F'\t' -v w="$w" '$1==w {print $2}' "$out.vals" | sort -n)
  n=${#xs[@]}; echo "| $w | ${xs[$(( (n-1)/2 ))]} | ${xs[0]} | ${xs[$((n-1))]} |"
done
rm -f "$out.vals"
grep -E '^\| machine' "$out" | awk -F'|' '{ print "machine:" $4 "," $5 }'
rm -f "$out"
