#!/usr/bin/env bash
# Install, from Debian 12's archive, what the given purposes need and is
# missing, without Recommends (--no-install-recommends: only what the
# packages depend on; Recommends once pulled in cron and through it a mail
# server). Safe to run repeatedly: does nothing when all is present.
#
#   build     compile factum: libfactum, libfactum-client, factumd, the CLI, tests, benchmarks,
#             and factum-js, the JavaScript projections' worker, which needs
#             V8 from libnode-dev (Node 18; see js below for how it is
#             installed beside a Node.js from outside Debian); npm fetches
#             the admin UI's two libraries (ui/package-lock.json, ADR 0029)
#   demo      build, and curl (scripts/demo.sh shows the HTTP endpoints)
#   test      build, and what the suite (scripts/test.sh) runs: openssl (the
#             TLS tests make certificates with it), jq (cli
#             tests), curl (the read models' HTTP endpoints), Node.js and
#             npm (the official clients, integration), chromium (the admin
#             UI's browser tests, driven by playwright-core),
#             and everything of bench, since bench_all_quick runs
#             bench/run-all.sh --quick (the systems' C libraries must be
#             there when the test build is configured), and python3 for
#             node-gyp (bench/run-readmodels.sh builds better-sqlite3)
#   bench     build, the systems bench/run-all.sh compares with (postgres,
#             sqlite, redis, nats) and gnuplot for its plots (plots)
#   postgres, sqlite, redis, nats, plots   one of those (bench/run-*.sh)
#   readmodels  build, postgres, sqlite, Node.js and npm, and python3 (with
#             build-essential's make and g++, what node-gyp needs to build
#             better-sqlite3 from its source for bench/run-readmodels.sh)
#   fuzz      build, and clang with its libFuzzer runtime (-DFACTUM_FUZZ=ON)
#   js        build, and the JavaScript engines that bench/run-js.sh compares
#             (docs/adr/0006-javascript-engine.md): duktape-dev besides V8
#             from libnode-dev (Node 18). Debian's libnode108 conflicts with a
#             Node.js package from outside Debian (it Provides nodejs-legacy,
#             which libnode108 Conflicts with; apt would remove that Node):
#             then libnode108 and libnode-dev are unpacked, not installed,
#             into $FACTUM_LIBNODE_PREFIX (/opt/factum-libnode), where
#             bench/js/CMakeLists.txt looks, and only their library
#             dependencies are installed.
#
# Usage: scripts/deps.sh PURPOSE...        e.g. scripts/deps.sh build
#        scripts/deps.sh --list PURPOSE... print the packages, install nothing
# Cross-compiling for arm64 has its own script: scripts/cross-arm64.sh.
set -euo pipefail

build=(build-essential cmake pkg-config libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler libpcre2-dev libssl-dev libsqlite3-dev libpq-dev liburing-dev)
postgres=(postgresql-15 libpq-dev)
sqlite=(libsqlite3-dev)
redis=(redis-server libhiredis-dev)
nats=(nats-server libnats-dev)
plots=(gnuplot-nox)
js=(duktape-dev libduktape207)
# libnode108's own dependencies, for the unpacked copy (see js above).
libnode_deps=(libbrotli1 libc-ares2 libicu72 libuv1 libssl3 libnghttp2-14 zlib1g)

usage() {
  echo "usage: $0 [--list] {build|demo|test|bench|readmodels|postgres|sqlite|redis|nats|plots|fuzz|js}..." >&2
  exit 2
}
list=0
[ "${1:-}" = --list ] && { list=1; shift; }
[ $# -gt 0 ] || usage
want=()
node=0
libnode=0
for purpose in "$@"; do
  case "$purpose" in
    build) want+=("${build[@]}"); node=1; libnode=1 ;;
    demo) want+=("${build[@]}" curl); node=1; libnode=1 ;;
    bench) want+=("${build[@]}" "${postgres[@]}" "${sqlite[@]}" "${redis[@]}" "${nats[@]}" "${plots[@]}"); node=1; libnode=1 ;;
    test)
      want+=("${build[@]}" jq curl openssl python3 chromium "${postgres[@]}" "${sqlite[@]}" "${redis[@]}" "${nats[@]}" "${plots[@]}")
      node=1
      libnode=1
      ;;
    readmodels) want+=("${build[@]}" "${postgres[@]}" "${sqlite[@]}" python3); node=1; libnode=1 ;;
    postgres) want+=("${postgres[@]}") ;;
    sqlite) want+=("${sqlite[@]}") ;;
    redis) want+=("${redis[@]}") ;;
    nats) want+=("${nats[@]}") ;;
    plots) want+=("${plots[@]}") ;;
    fuzz) want+=("${build[@]}" clang libclang-rt-14-dev); node=1; libnode=1 ;;
    js) want+=("${build[@]}" "${js[@]}"); node=1; libnode=1 ;;
    *) usage ;;
  esac
done

need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for pkg in $(printf '%s\n' "${want[@]}" | awk '!seen[$0]++'); do
  [ $list = 1 ] || ! have "$pkg" || continue
  need+=("$pkg")
done
# Node.js and npm, unless a node and an npm are on the PATH already (from
# Debian or elsewhere: Debian 12's nodejs is 18, while @kurrent/kurrentdb-client
# 1.x declares node >= 20; npm only warns about that).
if [ $node = 1 ] && { [ $list = 1 ] || ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; }; then
  need+=(nodejs npm)
fi
# libnode-dev: installed normally unless apt would have to remove something
# for it (a Node.js from outside Debian); then unpacked (see js above).
libnode_prefix=${FACTUM_LIBNODE_PREFIX:-/opt/factum-libnode}
libnode_unpack=0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ $libnode = 1 ] && { [ $list = 1 ] || ! have libnode-dev; } \
   && [ ! -e "$libnode_prefix/usr/include/node/v8.h" ]; then
  # The simulation below needs the package lists (empty on a fresh machine:
  # then it would find no removal, and the real install would remove Node).
  if [ $list = 0 ] && ! apt-cache show libnode-dev >/dev/null 2>&1; then
    $SUDO apt-get update -qq
  fi
  # Unpacked too when apt cannot install it at all: a Node.js from outside
  # Debian that is held or pinned makes node-acorn's "nodejs:any"
  # unsatisfiable, and apt then refuses instead of planning a removal.
  sim=$(apt-get install -s --no-install-recommends libnode-dev 2>/dev/null) && sim_rc=0 || sim_rc=$?
  if [ "$sim_rc" != 0 ] || grep -q '^Remv ' <<<"$sim"; then
    libnode_unpack=1
    for pkg in "${libnode_deps[@]}"; do
      [ $list = 1 ] || ! have "$pkg" || continue
      need+=("$pkg")
    done
  else
    need+=(libnode-dev)
  fi
fi
if [ $list = 1 ]; then
  echo "${need[*]}"
  [ $libnode_unpack = 0 ] || echo "(and libnode108 libnode-dev unpacked into $libnode_prefix)"
  exit 0
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing (without Recommends): ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ $libnode_unpack = 1 ]; then
  echo "unpacking libnode108 and libnode-dev into $libnode_prefix (apt cannot install them beside $(dpkg-query -W -f='${Package} ${Version}' nodejs 2>/dev/null || echo a package))"
  tmp=$(mktemp -d)
  chmod 777 "$tmp" # apt-get download writes as the _apt user where it can
  (cd "$tmp" && apt-get download -qq libnode108 libnode-dev)
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO mkdir -p "$libnode_prefix"
  for deb in "$tmp"/*.deb; do $SUDO dpkg -x "$deb" "$libnode_prefix"; done
  rm -rf "$tmp"
fi
if [ $node = 1 ]; then
  v=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  [ "$v" -ge 20 ] || echo "note: node $(node --version 2>/dev/null) is older than the 20 that @kurrent/kurrentdb-client asks for" >&2
fi
exit 0
