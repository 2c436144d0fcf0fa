#!/usr/bin/env bash
# The whole comparison in one command: BENCH.md's workloads against factum
# (embedded durable and relaxed, factumd over the network with the C client)
# and, in the same run, PostgreSQL 15, SQLite, Redis 7 Streams and NATS
# JetStream, each installed if missing and started privately on 127.0.0.1
# (bench/run-*.sh write their settings down), plus the machine's own limits
# (fdatasync latency and rate, sequential write bandwidth, loopback round
# trip). Writes to OUT (default bench/results/latest):
#   raw-runN.txt   every program's output of run N (Markdown rows and "@" lines)
#   results.tsv    system, workload, metric, run, value
#   summary.md     the table: median of the runs, min-max beside it
#   *.png          throughput per workload per system; latency distributions of W1, W6, W8, W11, W12;
#                  W11's calls/s, W12's p99 and its server CPU and memory per subscriber (gnuplot)
#   readmodels-runN/  bench/run-readmodels.sh's run N: SQL read models beside the hand-written
#                  way (its own summary.md; not in the table above)
# Usage: bench/run-all.sh [--quick] [--big] [--runs N] [--out DIR] [--report] [--only W6,W11,W12]
#   --quick   small workloads, one run (about 3 minutes); CI runs it
#   --big     W12 with 10,000 subscribers (W12_10K) instead of 1,000
#   --only L  only these workloads (BENCH.md's names), for every system that has
#             them; the relaxed run and the read models are left out
#   default   full workloads, 3 runs, medians and min-max (about 40 minutes)
#   --report  run nothing: write summary.md and the plots again from OUT's results
# FACTUM_BENCH_BUILD=DIR uses an existing build directory instead of building build/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 big=0 runs="" out=bench/results/latest report=0 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --big) big=1 ;;
    --only) only=$2; shift ;;
    --runs) runs=$2; shift ;;
    --out) out=$2; shift ;;
    --report) report=1 ;;
    *) echo "usage: $0 [--quick] [--big] [--runs N] [--out DIR] [--report] [--only W1,W2,...]" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$runs" ] || { [ $quick = 1 ] && runs=1 || runs=3; }
q=(); [ $quick = 1 ] && q=(--quick)
g=(); [ $big = 1 ] && g=(--big) # W12's size: the W12 programs only
if [ $report = 1 ]; then
  [ -s "$out/results.tsv" ] || { echo "$0: no results in $out" >&2; exit 2; }
  out=$(cd "$out" && pwd)
  runs=$(cut -f4 "$out/results.tsv" | sort -u | wc -l)
  # A run made with --only: its workloads.
  if [ -z "$only" ] && ! awk -F'\t' '$2 == "W1" { f = 1 } END { exit !f }' "$out/results.tsv"; then
    only=$(cut -f2 "$out/results.tsv" | sort -u | paste -sd,)
  fi
  rm -f "$out"/*.png
  work=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-runall.XXXXXX)
  trap 'rm -rf "$work"' EXIT
else

# What building factum and the systems need (Debian packages), once.
scripts/deps.sh bench
. bench/lib.sh
bench_build
export FACTUM_BENCH_BUILD=$b # the run-*.sh scripts below use this build
mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -rf "$out"/raw-run*.txt "$out"/results.tsv "$out"/lat-run*.tsv "$out"/*.png "$out"/readmodels-run*
work=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-runall.XXXXXX)
trap 'rm -rf "$work"' EXIT

# ---- the machine ------------------------------------------------------------
{
  echo "| machine | $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr), $(df -P "$work" | awk 'NR == 2 {print $1}') |"
  "$b"/bench/factum-bench-embedded --dir "$work/probe" --only PACED "${q[@]}" | grep machine | head -2
  seq_mb=$(dd if=/dev/zero of="$work/seq" bs=1M count=$([ $quick = 1 ] && echo 256 || echo 1024) conv=fdatasync 2>&1 |
    sed -n 's/.*, \([0-9.,]*\) \([MG]B\)\/s$/\1 \2\/s/p')
  rm -f "$work/seq"
  echo "| machine | sequential write, 1 MiB blocks, then fdatasync | $seq_mb | |"
} | tee "$out/machine.md"

# ---- the runs ------------------------------------------------------------------
for r in $(seq 1 "$runs"); do
  raw="$out/raw-run$r.txt"
  export FACTUM_BENCH_LAT="$out/lat-run$r.tsv"
  echo "== run $r of $runs"
  run() { # name, command...
    local name=$1; shift
    echo "-- $name" | tee -a "$raw"
    if ! "$@" >>"$raw" 2>&1; then echo "FAILED: $name" | tee -a "$raw"; fi
  }
  o=(); [ -n "$only" ] && o=(--only "$only")
  run factum "$b"/bench/factum-bench-embedded --dir "$work/emb" --only "${only:-W1,W2,W3,W4,W5,W6,W7,W11,W12}" \
    "${q[@]}" "${g[@]}"
  [ -n "$only" ] ||
    run factum-relaxed "$b"/bench/factum-bench-embedded --dir "$work/emb" --relaxed --only W1,W2,W3,W4,W5,W7 "${q[@]}"
  run factumd bench/run-network.sh --only "${only:-W1,W2,W3,W4,W5,W6,W7,W8,CU,W11,W12}" "${q[@]}" "${g[@]}"
  run postgres bench/run-postgres.sh "${q[@]}" "${g[@]}" "${o[@]}"
  mkdir -p "$work/sqlite"
  run sqlite "$b"/bench/factum-bench-systems sqlite "$work/sqlite" "${q[@]}" "${g[@]}" "${o[@]}"
  run redis bench/run-redis.sh "${q[@]}" "${g[@]}" "${o[@]}"
  run nats bench/run-nats.sh "${q[@]}" "${g[@]}" "${o[@]}"
  [ -n "$only" ] || run readmodels bench/run-readmodels.sh "${q[@]}" --out "$out/readmodels-run$r"
  grep '^@ ' "$raw" | awk -v r="$r" '{print $2 "\t" $3 "\t" $4 "\t" r "\t" $5}' >>"$out/results.tsv"
done

grep -h '^| wire |' "$out"/raw-run1.txt | head -1 | sed 's/^| wire |/| machine |/' >>"$out/machine.md" || true
fi

# ---- the summary -----------------------------------------------------------------
systems="factum factum-relaxed factumd postgres sqlite redis nats"
[ -n "$only" ] && systems="factum factumd postgres sqlite redis nats"
rows="W1:ev_per_s W1:p50_us W1:p99_us W2:ev_per_s W3:ev_per_s W3_256:ev_per_s W4:ev_per_s W5:ev_per_s W6:p50_us W6:p99_us W7:pass W8:pace_pct W8:le2ms_pct W8:p50_us W8:p999_us CU:ev_per_s"
rows="$rows W11:calls_per_s W11:p50_us W11:p99_us W11:p50_rtt"
# W12 (1,000 subscribers; --quick fewer) and W12_10K (--big), whichever ran.
for w in W12 W12_10K; do
  if awk -F'\t' -v w="$w" '$2 == w { f = 1 } END { exit !f }' "$out/results.tsv"; then
    rows="$rows $w:p50_us $w:p99_us $w:p999_us $w:pace_pct $w:delivered_pct $w:cpu_ms_per_sub $w:cpu_us_per_delivery"
    rows="$rows $w:mem_kb_per_sub $w:client_cpu_s"
  fi
done
{
  echo "Median of $runs run(s)$([ "$runs" -gt 1 ] && echo ", min–max in brackets"); $(date -u -r "$out/results.tsv" +%Y-%m-%d). factum and factumd durable"
  echo "(fdatasync before every acknowledgement), factum-relaxed not; PostgreSQL, SQLite, Redis durable per append;"
  echo "NATS JetStream NOT durable per append (periodic fsync). Blank: the system has no such workload here."
  echo "W11: calls/s loading a whole 10-event stream in one call (p50_rtt: factumd's p50 in loopback round trips)."
  echo "W12: live subscribers on \$all (1,000; --quick 100; W12_10K: 10,000), a writer at 1,000/s; latency over all"
  echo "deliveries; pace_pct: the writer's rate as a share of 1,000/s (it stops at twice the planned time);"
  echo "cpu_ms_per_sub, cpu_us_per_delivery, mem_kb_per_sub: the server's CPU time per subscriber and per delivery,"
  echo "its memory growth per subscriber (factum"
  echo "embedded: the whole process); client_cpu_s: the measuring program's own CPU time (the subscriber side)."
  echo
  printf "| workload |"; for s in $systems; do printf " %s |" "$s"; done; echo
  printf "|---|"; for s in $systems; do printf -- "---|"; done; echo
  for row in $rows; do
    w=${row%%:*} m=${row#*:}
    awk -F'\t' -v w="$w" -v m="$m" '$2 == w && $3 == m { f = 1 } END { exit !f }' "$out/results.tsv" || continue
    printf "| %s %s |" "$w" "$m"
    for s in $systems; do
      awk -F'\t' -v s="$s" -v w="$w" -v m="$m" -v runs="$runs" '
        $1 == s && $2 == w && $3 == m { v[n++] = $5 }
        END {
          if (!n) { printf " |"; exit }
          for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
          med = n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
          if (m == "pass") { printf " %s |", (v[0] == 1 ? "PASS" : "FAIL"); exit }
          fmt = med >= 100 ? "%.0f" : "%.2f"
          printf " " fmt, med
          if (n > 1) printf " [" fmt "–" fmt "]", v[0], v[n - 1]
          printf " |"
        }' "$out/results.tsv"
    done
    echo
  done
} >"$out/summary.md"
cat "$out/summary.md"

# ---- the plots ---------------------------------------------------------------------
if command -v gnuplot >/dev/null; then
  # Throughput: one group per workload, one bar per system (medians), log scale.
  for w in W1 W2 W3 W3_256 W4 W5; do
    printf "%s" "$w"
    for s in $systems; do
      awk -F'\t' -v s="$s" -v w="$w" '$1 == s && $2 == w && $3 == "ev_per_s" { v[n++] = $5 }
        END { if (!n) { printf "\t-"; exit } for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
              printf "\t%s", n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2 }' "$out/results.tsv"
    done
    echo
  done >"$work/tput.dat"
  # (Not with --only and no throughput workload among them.)
  awk -F'\t' '$3 == "ev_per_s" { f = 1 } END { exit !f }' "$out/results.tsv" && gnuplot <<EOF
set terminal pngcairo size 1200,600 noenhanced font ",10"
set output "$out/throughput.png"
set title "Throughput (events/s, median of $runs run(s), log scale)"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.8 border -1
set logscale y
set datafile missing "-"
set key outside right
set ylabel "events/s"
set grid ytics
plot for [i=2:$(($(wc -w <<<"$systems") + 1))] "$work/tput.dat" using i:xtic(1) title word("$systems", i - 1)
EOF
  # Latency distributions: latency (µs, log) at each percentile, the median
  # over the runs at each percentile.
  for w in W1 W6 W8 W11 W12 W12_10K; do
    cat "$out"/lat-run*.tsv 2>/dev/null | awk -F'\t' -v w="$w" '
      $2 == w { k = $1 "\t" $3; if (!(k in n)) order[m++] = k; v[k, n[k]++] = $4 }
      END {
        for (i = 0; i < m; i++) {
          k = order[i]; c = n[k]
          for (a = 0; a < c; a++) x[a] = v[k, a]
          for (a = 0; a < c; a++) for (b = a + 1; b < c; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
          split(k, f, "\t")
          printf "%s\t%s\t%s\t%s\n", f[1], w, f[2], c % 2 ? x[int(c / 2)] : (x[c / 2 - 1] + x[c / 2]) / 2
        }
      }' >"$work/lat-$w.dat" || true
    [ -s "$work/lat-$w.dat" ] || continue
    present=$(cut -f1 "$work/lat-$w.dat" | awk '!seen[$0]++' | tr '\n' ' ')
    gnuplot <<EOF
set terminal pngcairo size 1000,600 noenhanced font ",10"
set output "$out/latency-$w.png"
set title "$w latency distribution (median of $runs run(s) at each percentile)"
set xlabel "percentile"
set ylabel "latency (µs, log scale)"
set logscale y
set grid
set key left top
set xrange [0:100]
plot for [s in "$present"] "$work/lat-$w.dat" using (strcol(1) eq s ? \$3 : 1/0):4 with lines lw 2 title s
EOF
  done
  # One bar per system, from the medians: W11's calls/s, W12's p99 and its
  # server CPU and memory per subscriber.
  bars() { # workload metric file title
    for s in $systems; do
      awk -F'\t' -v s="$s" -v w="$1" -v m="$2" '$1 == s && $2 == w && $3 == m { v[n++] = $5 }
        END { if (!n) exit; for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
              printf "%s\t%s\n", s, n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2 }' "$out/results.tsv"
    done >"$work/bars.dat"
    [ -s "$work/bars.dat" ] || return 0
    gnuplot <<EOF
set terminal pngcairo size 900,500 noenhanced font ",10"
set output "$out/$3"
set title "$4 (median of $runs run(s))"
set style data histogram
set style fill solid 0.8 border -1
set boxwidth 0.7
set grid ytics
set yrange [0:*]
unset key
plot "$work/bars.dat" using 2:xtic(1)
EOF
  }
  bars W11 calls_per_s w11-calls.png "W11: loading a 10-event aggregate, calls/s"
  for w in W12 W12_10K; do
    lw=$(tr A-Z a-z <<<"$w")
    bars "$w" p99_us "$lw-p99.png" "$w: delivery latency p99 (µs)"
    bars "$w" cpu_ms_per_sub "$lw-cpu.png" "$w: server CPU time per subscriber (ms)"
    bars "$w" mem_kb_per_sub "$lw-mem.png" "$w: server memory growth per subscriber (KiB)"
  done
  ls "$out"/*.png
fi

# Every system ran and W7 passed everywhere?
status=0
for s in $systems; do
  if [ -n "$only" ]; then # the first workload named that the system has
    case $s in sqlite) w=$(tr ',' '\n' <<<"$only" | grep -vx 'W12.*' | head -1) ;; *) w=${only%%,*} ;; esac
  else
    w=W1
  fi
  [ -z "$w" ] || grep -q "^$s	$w	" "$out/results.tsv" || { echo "MISSING: $s did not run $w"; status=1; }
done
if awk -F'\t' '$3 == "pass" && $5 != 1 { bad = 1 } END { exit !bad }' "$out/results.tsv"; then
  echo "W7 FAILED for: $(awk -F'\t' '$3 == "pass" && $5 != 1 {print $1}' "$out/results.tsv" | sort -u | tr '\n' ' ')"
  status=1
fi
grep -q "^FAILED" "$out"/raw-run*.txt && { grep "^FAILED" "$out"/raw-run*.txt; status=1; }
exit $status
