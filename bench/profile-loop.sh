#!/usr/bin/env bash
# bench/profile-loop.sh [W1|W4]...: the instructions factumd's event loop
# spends per operation, counted by callgrind (valgrind), so that a change to
# the network path can be compared before and after on a noisy machine:
# instruction counts do not depend on what else the machine runs.
#   W1: factum-bench-network --quick --only W1 (5,000 single-event appends);
#       per append: the loop thread (net_server_run) and its parts.
#   W4: --quick --only W4 (a 10,000-event stream read 20 times: 200,000
#       events sent); per event: the read calls (read_pump) and their parts.
#   W12: --quick --only W12 (100 live $all subscribers, single appends at
#       1,000/s for 2 s); per delivery (one event to one subscriber): the
#       loop thread and its parts (the shared tail, ADR 0021, against
#       each subscriber reading and packing for itself).
# FACTUM_FACTUMD_ARGS adds arguments to factumd's (e.g. "--cold-reads never").
# FACTUM_BENCH_BUILD=DIR profiles an existing build (RelWithDebInfo shows
# the functions by name); otherwise build/profile is configured and built.
# Installs valgrind if missing. docs/PERFORMANCE.md, "The network path".
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
if [ -n "${FACTUM_BENCH_BUILD:-}" ]; then
  b=$FACTUM_BENCH_BUILD
else
  scripts/deps.sh build
  cmake -S . -B build/profile -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
  cmake --build build/profile -j"$(nproc)" --target factumd factum-bench-network >/dev/null
  b=build/profile
fi
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq --no-install-recommends valgrind >/dev/null; }
workloads=("$@")
[ ${#workloads[@]} -gt 0 ] || workloads=(W1 W4)
dir=$(mktemp -d "${FACTUM_BENCH_TMP:-/tmp}"/factum-profile.XXXXXX)
trap 'rm -rf "$dir"' EXIT

# inclusive instructions of the functions matching a pattern, summed
incl() { { grep -E "$2" "$1" || true; } | awk '{gsub(",","",$1); s+=$1} END {print s+0}'; }

for w in "${workloads[@]}"; do
  port=$((22000 + RANDOM % 2000))
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$dir/cg.$w" \
    "$b"/factumd --mem-db --insecure --node-ip 127.0.0.1 --node-port "$port" --log-level error \
    ${FACTUM_FACTUMD_ARGS:-} >"$dir/log.$w" 2>&1 &
  pid=$!
  wait_ready factumd "$pid" "$dir/log.$w" bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"
  "$b"/bench/factum-bench-network "kurrentdb://127.0.0.1:$port?tls=false" --quick --only "$w" >"$dir/out.$w"
  kill -TERM "$pid"
  wait "$pid" || true
  ann="$dir/ann.$w"
  callgrind_annotate --inclusive=yes --threshold=100 "$dir/cg.$w"-01 2>/dev/null | grep -E '^ *[0-9,]+ \(' >"$ann"
  case $w in
    W1) ops=5000; what="append"; root='net_server_run \[' ;;
    W4) ops=200000; what="event sent"; root='streams.c:read_pump \[' ;;
    W12) ops=$(sed -n 's/.* \([0-9][0-9]*\) of [0-9][0-9]* deliveries.*/\1/p' "$dir/out.$w" | head -1)
         [ "${ops:-0}" -gt 0 ] || { echo "W12: no deliveries counted" >&2; exit 1; }
         what="delivery ($ops deliveries)"; root='net_server_run \[' ;;
    *) echo "unknown workload $w" >&2; exit 2 ;;
  esac
  total=$(incl "$ann" "$root")
  printf '%s: %d instructions per %s on the loop thread\n' "$w" $((total / ops)) "$what"
  for part in 'nghttp2_session_mem_recv \[' 'nghttp2_session_mem_send \[' 'rpc_unpack \[' 'rpc_wire_append_req \[' \
    'rpc_take_event \[' 'append_done_loop \[' 'rpc_send \[' 'rpc_send_event \[' 'rpc_event_fill \[' \
    'protobuf_c_message_pack \[' 'factum_read_stream \[' 'rpc_sub_wake_all \[' 'factum_sub_poll \[' \
    'factum_read_all \[' 'rpc_tail_event \[' 'rpc_tail_frame \[' 'net_call_send \['; do
    n=$(incl "$ann" "[:/]$part")
    [ "$n" -gt 0 ] && printf '  %-28s %8d\n' "${part% \\[}" $((n / ops))
  done
done
