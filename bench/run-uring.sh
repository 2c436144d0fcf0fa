#!/usr/bin/env bash
# The loop-led group commit (docs/adr/0020) against the writer thread, in one
# run: factumd with --io-uring true and with --io-uring false (and, with
# --before DIR, the factumd of another Release build, e.g. the commit before
# the change), each on its own fresh database under --tmp (default /tmp: this
# machine's disk; /dev/shm: the "fast disk" limit, fdatasync ~ 0), and
# PostgreSQL 15 (durable, as bench/run-postgres.sh) with its data there too.
# The workloads (default W1,W3) run --rounds times (default 3) against each,
# rotating the order; every result line is printed with its system.
#
# Usage: bench/run-uring.sh [--quick] [--tmp DIR] [--before BUILD_DIR] [--rounds N] [--only W1,W3] [--no-pg]
# FACTUM_BENCH_BUILD=DIR: use an existing Release build (factumd,
# factum-bench-network, factum-bench-systems).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=/tmp; before=""; rounds=3; only=W1,W3; quick=(); pg=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=(--quick) ;;
    --tmp) tmp=$2; shift ;;
    --before) before=$2; shift ;;
    --rounds) rounds=$2; shift ;;
    --only) only=$2; shift ;;
    --no-pg) pg=0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
. bench/lib.sh
. scripts/lib.sh
bench_build factumd factum-bench-network factum-bench-systems factum-bench-embedded
dir=$(mktemp -d "$tmp/factum-uring.XXXXXX")
chmod 755 "$dir"
pids=()
pgbin=/usr/lib/postgresql/15/bin
pgport=${PGPORT_BENCH:-25433}
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ $pg = 1 ] && [ -d "$dir/pg" ] && { as_pg "$pgbin/pg_ctl -D $dir/pg -m fast stop >/dev/null" || true; }
  rm -rf "$dir"
}
trap cleanup EXIT
"$b"/bench/factum-bench-embedded --dir "$dir" --only PACED | grep machine | head -1

systems=()
start() { # NAME BIN ARGS...
  local name=$1 bin=$2
  shift 2
  factumd_start "$dir/log-$name" "$bin" --insecure --db "$dir/db-$name" --node-ip 127.0.0.1 --node-port 0 "$@"
  pids+=("$factumd_pid")
  systems+=("$name kurrentdb://127.0.0.1:$factumd_port?tls=false")
  grep -h "appends:" "$dir/log-$name" | sed "s/^[^ ]* [A-Z]* */$name: /" || echo "$name: (no appends line: before the change)"
}
start uring "$b"/factumd --io-uring
start writer "$b"/factumd --io-uring=false
[ -n "$before" ] && start before "$before"/factumd
if [ $pg = 1 ]; then
  scripts/deps.sh postgres >/dev/null
  mkdir -p "$dir/pg"
  chown postgres "$dir/pg" 2>/dev/null || true
  as_pg "$pgbin/initdb -D $dir/pg -U bench -A trust >/dev/null"
  as_pg "$pgbin/pg_ctl -D $dir/pg -l $dir/pg/log -w -o \"-p $pgport -k $dir/pg -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c wal_sync_method=fdatasync -c shared_buffers=256MB -c max_connections=300\" start >/dev/null"
  as_pg "$pgbin/createdb -h 127.0.0.1 -p $pgport -U bench bench" 2>/dev/null || true
  systems+=("postgres host=127.0.0.1 port=$pgport user=bench dbname=bench")
fi
echo "data under $dir ($(df -h "$dir" | awk 'NR==2 {print $1}')), $(nproc) CPUs, ${rounds} rounds of $only ${quick[*]}"
n=${#systems[@]}
for ((r = 0; r < rounds; r++)); do
  for ((i = 0; i < n; i++)); do
    s=${systems[$(((i + r) % n))]}
    name=${s%% *}
    target=${s#* }
    if [ "$name" = postgres ]; then
      "$b"/bench/factum-bench-systems postgres "$target" "${quick[@]}" --only "$only" 2>&1 |
        grep -E '^\| W' | sed "s/^/round $((r + 1)) $name /"
    else
      "$b"/bench/factum-bench-network "$target" "${quick[@]}" --only "$only" 2>&1 |
        grep -E '^\| W' | sed "s/^/round $((r + 1)) $name /"
    fi
  done
done
