#!/usr/bin/env bash
# SQL read models (issue 13) beside the hand-written way, in one run:
#   factum      build/bench/bench/factum-bench-readmodels (bench/readmodels.c),
#               libfactum embedded, durable: RM1 (catch-up into SQLite), RM2
#               (into PostgreSQL), RYOW, RMINL, RMLAG (SQLite) and RMLAGPG
#   factumd     bench/readmodels/factumd.js: factumd's own read model, driven
#               by the same Node client as the baseline (RYOW: append, then
#               GET /readmodels/balances/wait; RMINL: inline or none)
#   baseline    bench/readmodels/baseline.js: the official Node client's
#               catch-up subscription on $all from a checkpoint, updating the
#               same tables through better-sqlite3 / pg with its checkpoint
#               in each batch's transaction, against factumd (--insecure,
#               durable) on a copy of the same store
# The events (1,000,000; --quick 100,000) are written once by
# factum-bench-readmodels (FILL, relaxed durability: setup); factumd opens a
# copy of that store. PostgreSQL 15 is private, as bench/run-postgres.sh's:
# fsync=on, synchronous_commit=on, wal_sync_method=fdatasync,
# shared_buffers=1GB; a database for each side. Both sides commit to their
# targets as factum's targets do (src/rm): SQLite journal_mode=WAL,
# synchronous=NORMAL; PostgreSQL synchronous_commit=off on the applying
# connection (the checkpoint is in every transaction: a crash loses
# batches with their checkpoint, applied again from the log).
# RM_SQLITE_SYNC=FULL / RM_PG_SYNC=on make the baseline's commits durable.
# Prints every row, then the table factum / baseline (docs/PERFORMANCE.md):
# with --runs N, the median of the runs and their min-max; the two sides
# take turns going first. OUT (default a temporary directory) keeps raw.txt
# (every row), results.tsv (system, workload, metric, run, value) and
# summary.md.
#
# Usage: bench/run-readmodels.sh [--quick] [--runs N] [--events N] [--out DIR]
#   --quick: 100,000 events and short loops, one run (about a minute)
# FACTUM_BENCH_BUILD=DIR uses an existing build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 events="" out="" runs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --runs) runs=$2; shift ;;
    --events) events=$2; shift ;;
    --out) out=$2; shift ;;
    *) echo "usage: $0 [--quick] [--runs N] [--events N] [--out DIR]" >&2; exit 2 ;;
  esac
  shift
done
q=(); [ $quick = 1 ] && q=(--quick)
ev=(); [ -n "$events" ] && ev=(--events "$events")
sync=${RM_SQLITE_SYNC:-NORMAL} pgsync=${RM_PG_SYNC:-off}

scripts/deps.sh readmodels
. bench/lib.sh
. scripts/lib.sh
bench_build factumd factum-bench-readmodels factum-bench-embedded # FACTUM_BENCH_BUILD=DIR: an existing build

# The Node packages: the official client (tests/integration/node) and
# better-sqlite3 (a native module, built here from its source: node-gyp
# with Node's own headers, nothing downloaded but the npm packages) and pg.
if [ ! -d tests/integration/node/node_modules/@kurrent/kurrentdb-client ]; then
  (cd tests/integration/node && npm ci --no-audit --no-fund >/dev/null)
fi
if [ ! -e bench/readmodels/node_modules/better-sqlite3/build/Release/better_sqlite3.node ] ||
  [ ! -d bench/readmodels/node_modules/pg ]; then
  nodedir=/usr
  major=$(node -p 'process.versions.node.split(".")[0]')
  if ! grep -q "define NODE_MAJOR_VERSION $major\$" $nodedir/include/node/node_version.h 2>/dev/null; then
    echo "$0: better-sqlite3 must be built against node $major's headers, not found in $nodedir/include/node" >&2
    exit 1
  fi
  echo "building better-sqlite3 from its source (node-gyp, --nodedir=$nodedir; about a minute)"
  (cd bench/readmodels && npm_config_build_from_source=true npm_config_nodedir=$nodedir \
    npm ci --no-audit --no-fund >/dev/null)
fi

dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-rmbench.XXXXXX)
chmod 755 "$dir" # PostgreSQL's user reaches its directory inside
[ -n "$out" ] || out=$dir/out
mkdir -p "$out"
out=$(cd "$out" && pwd)
raw=$out/raw.txt
: >"$raw"

# ---- PostgreSQL -------------------------------------------------------------------
pgbin=/usr/lib/postgresql/15/bin
pgport=${PGPORT_RMBENCH:-25433} # below the ephemeral range; not run-postgres.sh's
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
mkdir -p "$dir/pg"
chown -R postgres "$dir/pg" 2>/dev/null || true
as_pg "$pgbin/initdb -D $dir/pg/data -U bench -A trust >/dev/null"
as_pg "$pgbin/pg_ctl -D $dir/pg/data -l $dir/pg/log -w -o \"-p $pgport -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c wal_sync_method=fdatasync -c shared_buffers=1GB\" start >/dev/null"
fpid=""
cleanup() {
  [ -z "$fpid" ] || { kill -TERM "$fpid" 2>/dev/null || true; wait "$fpid" 2>/dev/null || true; }
  as_pg "$pgbin/pg_ctl -D $dir/pg/data -m fast -w stop >/dev/null" || true
  # Everything but the results (OUT may be inside, by default).
  find "$dir" -mindepth 1 -maxdepth 1 ! -name out -exec rm -rf {} + 2>/dev/null || true
  rmdir "$dir" 2>/dev/null || true
}
trap cleanup EXIT
pg="host=127.0.0.1 port=$pgport user=bench"

# ---- the machine, the events ----------------------------------------------------------
{
  echo "| machine | $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(uname -sr), $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD) |"
  "$b"/bench/factum-bench-embedded --dir "$dir/probe" --only PACED --quick | grep machine | head -2
  rm -rf "$dir/probe"
  echo "| settings | PostgreSQL 15 fsync=on, synchronous_commit=on (server), off on the applying connections (factum; baseline: $pgsync); SQLite WAL, synchronous=NORMAL (factum; baseline: $sync); factum's store and factumd durable |"
} | tee -a "$raw"
"$b"/bench/factum-bench-readmodels --only FILL "${q[@]}" "${ev[@]}" "$dir/w" | grep '^| FILL' | tee -a "$raw"
head=$(cat "$dir/w/head")
n_ryow=$([ $quick = 1 ] && echo 1000 || echo 5000)
n_w3=$([ $quick = 1 ] && echo 20000 || echo 200000)

# ---- the baseline: factumd on a copy of the store ------------------------------------------
baseline() { # run
  rm -rf "$dir/db" "$dir/base.db"*
  cp -a "$dir/w/source" "$dir/db"
  factumd_start "$dir/factumd.log" "$b"/factumd --insecure --db "$dir/db" --node-ip 127.0.0.1 --node-port 0
  fpid=$factumd_pid
  local url="kurrentdb://127.0.0.1:$factumd_port?tls=false" pgdb="$pg dbname=baseline$1"
  as_pg "$pgbin/createdb -h 127.0.0.1 -p $pgport -U bench baseline$1"
  base() { node bench/readmodels/baseline.js "$@" --url "$url" --sync "$sync" --pgsync "$pgsync" | tee -a "$raw" | { grep -v '^@' || true; }; }
  echo "-- baseline, run $1 (the official Node client against factumd $url)" | tee -a "$raw"
  base catchup --target none --head "$head"
  base catchup --target sqlite --sqlite "$dir/base.db" --fresh --head "$head" --expect "$dir/w/expect.json"
  base catchup --target postgres --pg "$pgdb" --fresh --head "$head" --expect "$dir/w/expect.json"
  base ryow --target sqlite --sqlite "$dir/base.db" --n "$n_ryow"
  base lag --target sqlite --sqlite "$dir/base.db" --n "$n_w3"
  base lag --target postgres --pg "$pgdb" --n "$n_w3"
  echo "-- factumd, run $1: its read model driven by the same Node client (RYOW, RMINL)" | tee -a "$raw"
  node bench/readmodels/factumd.js --url "$url" --def "$dir/w/balances.json" --n "$n_ryow" | tee -a "$raw" |
    { grep -v '^@' || true; }
  kill -TERM "$fpid"
  wait "$fpid" 2>/dev/null || true
  fpid=""
  as_pg "$pgbin/dropdb -h 127.0.0.1 -p $pgport -U bench baseline$1"
  rm -rf "$dir/db" "$dir/base.db"*
}

# ---- factum ------------------------------------------------------------------------------------
factum() { # run
  as_pg "$pgbin/createdb -h 127.0.0.1 -p $pgport -U bench factum$1"
  echo "-- factum (embedded), run $1" | tee -a "$raw"
  "$b"/bench/factum-bench-readmodels --only RM1,RM2,RYOW,RMINL,RMLAG,RMLAGPG --pg "$pg dbname=factum$1" "${q[@]}" \
    "${ev[@]}" "$dir/w" | tee -a "$raw" | { grep -v '^@\|^| workload\|^|---' || true; }
  as_pg "$pgbin/dropdb -h 127.0.0.1 -p $pgport -U bench factum$1"
}

: >"$out/results.tsv"
for r in $(seq 1 "$runs"); do
  mark=$(wc -l <"$raw")
  if [ $((r % 2)) = 1 ]; then baseline "$r"; factum "$r"; else factum "$r"; baseline "$r"; fi
  tail -n +"$((mark + 1))" "$raw" | grep '^@ ' | awk -v r="$r" '{print $2 "\t" $3 "\t" $4 "\t" r "\t" $5}' >>"$out/results.tsv"
done

# ---- the table: medians (min-max), factum / baseline ---------------------------------------
{
  echo
  echo "Median of $runs run(s)$([ "$runs" -gt 1 ] && echo ", min–max in brackets"). factum embedded; the hand-written side the official Node"
  echo "client over loopback to factumd. Lag and latency: lower is better."
  echo
  echo "| figure | factum | hand-written (Node client) | factum / hand-written | target |"
  echo "|---|---|---|---|---|"
  row() { # label workload metric baseline-system target | label workload metric baseline-system factumd
    local sys=factum target=$5
    [ "${5:-}" = factumd ] && { sys=factumd; target=""; }
    awk -F'\t' -v w="$2" -v m="$3" -v bs="$4" -v label="$1" -v target="$target" -v sys="$sys" '
      function med(v, n,   i, j, t) {
        for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n % 2 ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
      }
      function fmt(v) { return v >= 100 ? sprintf("%.0f", v) : sprintf("%.2f", v) }
      function cell(v, n,   m) {
        if (!n) return ""
        m = med(v, n)
        return n > 1 ? fmt(m) " [" fmt(v[0]) "–" fmt(v[n - 1]) "]" : fmt(m)
      }
      $2 == w && $3 == m && $1 == sys { f[nf++] = $5 }
      $2 == w && $3 == m && $1 == bs { g[ng++] = $5 }
      END {
        cf = cell(f, nf); cg = cell(g, ng)
        mf = nf ? med(f, nf) : 0; mg = ng ? med(g, ng) : 0
        r = (nf && ng && mg != 0) ? sprintf("%.2f", mf / mg) : ""
        if (sys == "factumd") printf "| %s | %s | %s | %s |\n", label, cf, cg, r
        else printf "| %s | %s | %s | %s | %s |\n", label, cf, cg, r, target
      }' "$out/results.tsv"
  }
  row "RM1 catch-up into SQLite, ev/s" RM1 ev_per_s baseline-sqlite "≥ 200,000"
  row "RM2 catch-up into PostgreSQL, ev/s" RM2 ev_per_s baseline-postgres "≥ 50,000"
  row "(the Node client's subscription alone, no SQL, ev/s)" SUB ev_per_s baseline-sqlite ""
  row "RMLAG (SQLite) lag p50, ms" RMLAG lag_ms_p50 baseline-sqlite ""
  row "RMLAG (SQLite) lag p99, ms" RMLAG lag_ms_p99 baseline-sqlite ""
  row "RMLAG (SQLite) lag p50, events" RMLAG lag_events_p50 baseline-sqlite ""
  row "RMLAG (SQLite) lag p99, events" RMLAG lag_events_p99 baseline-sqlite ""
  row "RMLAG (SQLite): W3 meanwhile, ev/s" RMLAG w3_ev_per_s baseline-sqlite ""
  row "RMLAGPG (PostgreSQL) lag p50, ms" RMLAGPG lag_ms_p50 baseline-postgres ""
  row "RMLAGPG (PostgreSQL) lag p99, ms" RMLAGPG lag_ms_p99 baseline-postgres ""
  row "RMLAGPG (PostgreSQL) lag p50, events" RMLAGPG lag_events_p50 baseline-postgres ""
  row "RMLAGPG (PostgreSQL) lag p99, events" RMLAGPG lag_events_p99 baseline-postgres ""
  row "RMLAGPG (PostgreSQL): W3 meanwhile, ev/s" RMLAGPG w3_ev_per_s baseline-postgres ""
  row "RMINL W1 inline / none (baseline: waiting for its subscription / not)" RMINL W1_ratio baseline-sqlite ""
  row "RMINL W3 inline / none" RMINL W3_ratio baseline-sqlite ""
  row "RYOW append -> applied, p50 µs" RYOW p50_us baseline-sqlite ""
  row "RYOW append -> applied, p99 µs" RYOW p99_us baseline-sqlite ""
  echo
  echo "Over the same network with the same Node client: factumd's read model (inline, or async + GET .../wait)"
  echo "beside the hand-written subscription."
  echo
  echo "| figure | factumd | hand-written (Node client) | factumd / hand-written |"
  echo "|---|---|---|---|"
  row "RMINL W1 inline / none" RMINL W1_ratio baseline-sqlite factumd
  row "RMINL W3 inline / none" RMINL W3_ratio baseline-sqlite factumd
  row "RYOW append -> applied, p50 µs" RYOW p50_us baseline-sqlite factumd
  row "RYOW append -> applied, p99 µs" RYOW p99_us baseline-sqlite factumd
} | tee "$out/summary.md"
echo "(raw rows in $out)"
