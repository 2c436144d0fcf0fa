#!/usr/bin/env bash
# The two libraries (docs/adr/0018-client-library.md), as a user gets them:
#  1. libfactum.so needs neither nghttp2, protobuf-c, libssl nor
#     libfactum-client, and names no client function but the weak hook of
#     factum_strerror; libfactum-client.so needs neither libfactum, SQLite
#     nor libpq, and exports no store function.
#  2. `cmake --install` (the component `libraries`) into a fresh prefix gives factum.pc and
#     factum-client.pc; with them, cc builds a program of libfactum alone
#     (tests/libs/embedded.c and examples/bank, both run: no client library
#     loaded), one of libfactum-client alone (tests/libs/client.c, run
#     against factumd: no libfactum loaded) and one of both
#     (tests/libs/both.c: the remote decider across the two libraries).
# Usage: tests/libs/libs.sh BUILD_DIR FACTUMD
set -euo pipefail
build=$(realpath "$1")
factumd=$(realpath "$2")
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
. "$src/scripts/lib.sh"
work=$(mktemp -d "${FACTUM_TEST_TMP:-/tmp}/factum-libs.XXXXXX" 2>/dev/null || mktemp -d /tmp/factum-libs.XXXXXX)
pid=""
trap '[ -z "$pid" ] || kill -9 $pid 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
needed() { readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'; }

# 1. The shared libraries of the build tree.
lib=$build/libfactum.so client=$build/libfactum-client.so
[ -f "$lib" ] && [ -f "$client" ] || fail "build the libraries first ($lib, $client)"
echo "libfactum.so needs: $(needed "$lib" | tr '\n' ' ')"
echo "libfactum-client.so needs: $(needed "$client" | tr '\n' ' ')"
if needed "$lib" | grep -E 'nghttp2|protobuf-c|libssl|factum-client'; then fail "libfactum.so needs the above"; fi
if ldd "$lib" | grep -E 'nghttp2|protobuf-c|factum-client'; then fail "libfactum.so loads the above"; fi
if needed "$client" | grep -E 'libfactum\.so|sqlite|libpq'; then fail "libfactum-client.so needs the above"; fi
if ldd "$client" | grep -E 'libfactum\.so|sqlite|libpq'; then fail "libfactum-client.so loads the above"; fi
# Symbols: libfactum refers to the client only through the weak hook;
# libfactum-client exports no store function and none of the generated code.
und=$(nm -D "$lib" | awk '$NF ~ /^factum_client/ {print $1, $NF}')
[ "$und" = "w factum_client_strerror" ] || fail "libfactum.so and the client's symbols: '$und'"
if nm -D --defined-only "$lib" | awk '{print $NF}' | grep '^factum_client'; then fail "libfactum.so defines the above"; fi
if nm -D --defined-only "$client" | awk '{print $NF}' |
  grep -E '^(factum_store_|factum_append$|factum_read_|factum_decider_|factum_readmodel_|event_store__|base_|json_)'; then
  fail "libfactum-client.so exports the above"
fi
nm -D --defined-only "$client" | awk '{print $NF}' | grep -qx factum_client_connect || fail "no factum_client_connect"

# 2. Installed, and used through pkg-config.
cmake --install "$build" --component libraries --prefix "$work/prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install"; }
pcdir=$(dirname "$(find "$work/prefix" -name factum-client.pc | head -1)")
[ -f "$pcdir/factum.pc" ] && [ -f "$pcdir/factum-client.pc" ] || fail "factum.pc and factum-client.pc not installed"
export PKG_CONFIG_PATH=$pcdir
libdir=$(pkg-config --variable=libdir factum)
export LD_LIBRARY_PATH=$libdir
cflags=(-std=c11 -Wall -Wextra -Wno-unused-parameter -Werror -D_GNU_SOURCE)
if [ -n "${FACTUM_SANITIZED:-}" ]; then cflags+=("-fsanitize=address,undefined"); fi
build_prog() { # OUT PKGS SOURCES...
  local out=$1 pkgs=$2
  shift 2
  # shellcheck disable=SC2046,SC2086
  cc "${cflags[@]}" $(pkg-config --cflags $pkgs) "$@" -o "$work/$out" $(pkg-config --libs $pkgs) ||
    fail "cc $out with pkg-config $pkgs"
}
loads() { ldd "$work/$1" | awk '{print $1}'; }

build_prog embedded factum "$here/embedded.c"
if loads embedded | grep -E 'factum-client|nghttp2|protobuf-c'; then fail "the embedded program loads the above"; fi
"$work/embedded" "$work/db-embedded"
build_prog bank factum "$src"/examples/bank/*.c
if loads bank | grep -E 'factum-client|nghttp2|protobuf-c'; then fail "examples/bank loads the above"; fi
"$work/bank" "$work/db-bank" open acc-1 Ada >/dev/null
"$work/bank" "$work/db-bank" deposit acc-1 250 >/dev/null
"$work/bank" "$work/db-bank" balance acc-1 | tee "$work/balance" | grep -q 250 || { cat "$work/balance"; fail "examples/bank: balance"; }
echo "examples/bank built with pkg-config factum: balance 250"

build_prog client factum-client "$here/client.c"
if loads client | grep -E 'libfactum\.so|sqlite|libpq'; then fail "the client program loads the above"; fi
build_prog both "factum factum-client" "$here/both.c"

factumd_start "$work/factumd.log" "$factumd" --insecure --db "$work/db-server" --node-ip 127.0.0.1 --node-port 0
pid=$factumd_pid
url="kurrentdb://127.0.0.1:$factumd_port?tls=false"
"$work/client" "$url"
"$work/both" "$url"
kill -TERM "$pid"
wait "$pid" || true
pid=""
echo "libs: OK"
