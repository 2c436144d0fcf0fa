# Shared by bench/run-*.sh (sourced from the repository root): building, waiting for servers.
# wait_ready NAME PID LOG CMD...: wait up to 60 s until CMD succeeds; if the
# server exits first or never gets ready, show its log and exit 1.
wait_ready() {
  local name=$1 pid=$2 log=$3; shift 3
  for _ in $(seq 1 600); do
    "$@" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before it was ready; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "$name was not ready after 60 s; its log:" >&2
  cat "$log" >&2
  exit 1
}

# bench_build [TARGET...]: set b to the build directory: $FACTUM_BENCH_BUILD
# if set (an existing build), else build/bench, configured (Release) and
# built here (the given targets, or everything; what building needs is
# installed first if missing: scripts/deps.sh build).
bench_build() {
  if [ -n "${FACTUM_BENCH_BUILD:-}" ]; then
    b=$FACTUM_BENCH_BUILD
    return
  fi
  scripts/deps.sh build
  cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
  if [ $# -gt 0 ]; then
    cmake --build build/bench -j"$(nproc)" --target "$@" >/dev/null
  else
    cmake --build build/bench -j"$(nproc)" >/dev/null
  fi
  b=build/bench
}
