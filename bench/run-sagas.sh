#!/usr/bin/env bash
# The orders saga end to end (issue 14): factum-bench-sagas (bench/sagas.c)
# over examples/orders, embedded, durable (add --relaxed for the relaxed
# mode): SAGA (every order succeeds) and SAGAF (10% fail at each step, the
# completed steps compensated), orders/s and each order's start -> end time;
# SAGA1 (one order at a time): the time from placing an order to its end.
# Usage: bench/run-sagas.sh [--quick] [--runs N] [--orders N] [--clients K] [--workers W] [--relaxed] [--only SAGA,SAGAF,SAGA1]
# FACTUM_BENCH_BUILD=DIR uses an existing build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1 args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --quick | --relaxed) args+=("$1") ;;
    --runs) runs=$2; shift ;;
    --orders | --clients | --workers | --only) args+=("$1" "$2"); shift ;;
    *) echo "usage: $0 [--quick] [--runs N] [--orders N] [--clients K] [--workers W] [--relaxed]" >&2; exit 2 ;;
  esac
  shift
done
. bench/lib.sh
bench_build factum-bench-sagas
T=$(mktemp -d "${TMPDIR:-/tmp}/factum-bench-sagas.XXXXXX")
trap 'rm -rf "$T"' EXIT
echo "| machine | $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr), load $(cut -d' ' -f1 /proc/loadavg), $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD) |"
for r in $(seq 1 "$runs"); do
  rm -rf "${T:?}"/*
  echo "-- run $r"
  "$b/bench/factum-bench-sagas" "${args[@]}" "$T"
done
