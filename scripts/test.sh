#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/deps.sh test), builds factum twice
# (warnings as errors; then with AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs every CTest test in both builds, plus the fuzz targets' corpora; then the
# storage lifecycle's concurrency tests once more under ThreadSanitizer.
# Usage: scripts/test.sh [extra ctest args]   (e.g. -L unit, or FACTUM_SLOW=1 for the slow label)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
jobs=$(nproc 2>/dev/null || echo 2)
# Label cross (scripts/cross-arm64.sh: installs a cross compiler) is never
# part of the suite: ctest -L cross runs it.
exclude=(-LE 'slow|cross')
[ "${FACTUM_SLOW:-0}" = 1 ] && exclude=(-LE cross)

echo "== npm packages for the integration tests (official KurrentDB clients) =="
(cd tests/integration/node && npm ci --no-audit --no-fund >/dev/null)
(cd tests/browser && npm ci --no-audit --no-fund >/dev/null) # playwright-core (the admin UI's browser tests)

echo "== build (release, -Werror) =="
cmake -S . -B build/test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACTUM_WERROR=ON >/dev/null
cmake --build build/test -j"$jobs"
echo "== tests (release) =="
(cd build/test && ctest --output-on-failure -j"$jobs" "${exclude[@]}" "$@")

echo "== build (ASan + UBSan) =="
cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug -DFACTUM_WERROR=ON -DFACTUM_SANITIZE=ON -DFACTUM_BENCH=OFF >/dev/null
cmake --build build/asan -j"$jobs"
echo "== tests (ASan + UBSan) =="
(cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
   ctest --output-on-failure -j"$jobs" "${exclude[@]}" "$@")
echo "== build (ThreadSanitizer: the storage lifecycle's concurrency tests, the C client's multiplexing) =="
tsan_tests=(unit_archive unit_scavenge unit_compact unit_backup unit_shred integration_client_mux)
cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFACTUM_WERROR=ON -DFACTUM_TSAN=ON -DFACTUM_BENCH=OFF >/dev/null
# integration_client_mux runs against factumd, with factum's certificates and tls_proxy in front.
cmake --build build/tsan -j"$jobs" --target "${tsan_tests[@]}" factumd factum tls_proxy
echo "== tests (ThreadSanitizer) =="
(cd build/tsan && TSAN_OPTIONS=halt_on_error=1:exitcode=66 \
   ctest --output-on-failure -j"$jobs" -R "^($(IFS='|'; echo "${tsan_tests[*]}"))\$")
echo "== all tests passed =="
