#!/usr/bin/env bash
# Cross-compile factum for arm64 (aarch64) with Debian's cross compiler, so
# that code only x86-64 accepts is caught: compile and link everything
# (library, factumd, CLI, tests, benchmarks) with -Werror; nothing runs.
# Installs what is missing, without Recommends: the native build tools
# (scripts/deps.sh build: CMake, protoc-c), crossbuild-essential-arm64, and
# through Debian multiarch (dpkg --add-architecture arm64) the arm64 -dev
# libraries: nghttp2, protobuf-c, PCRE2. Then builds in BUILD_DIR (default
# build/cross-arm64) with cmake/aarch64-linux-gnu.cmake and checks that
# every program is an AArch64 ELF file.
# Usage: scripts/cross-arm64.sh [BUILD_DIR]      (CTest: label cross, not in the normal suite)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/cross-arm64}
scripts/deps.sh build

arm64_dev=(libnghttp2-dev:arm64 libprotobuf-c-dev:arm64 libpcre2-dev:arm64 libssl-dev:arm64)
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
need=()
for pkg in crossbuild-essential-arm64 "${arm64_dev[@]}"; do
  have "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    echo "adding the arm64 architecture to dpkg (multiarch)"
    $SUDO dpkg --add-architecture arm64
  fi
  echo "installing (without Recommends): ${need[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACTUM_WERROR=ON >/dev/null
cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)"

# Every program and library built is for AArch64.
n=0 bad=0
while IFS= read -r f; do
  n=$((n + 1))
  machine=$(aarch64-linux-gnu-readelf -h "$f" | sed -n 's/^ *Machine: *//p')
  [ "$machine" = AArch64 ] || { echo "not AArch64 ($machine): $f"; bad=1; }
done < <(find "$dir" -type f \( -perm -u+x -o -name '*.so*' \) ! -name '*.sh' ! -path '*/CMakeFiles/*' \
  -exec sh -c 'head -c 4 "$1" | grep -q ELF' _ {} \; -print)
[ $n -gt 0 ] || { echo "no ELF files found in $dir"; exit 1; }
[ $bad = 0 ] || exit 1
echo "cross-arm64: $n ELF files in $dir, all AArch64"
