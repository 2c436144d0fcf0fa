#!/usr/bin/env bash
# Copy the screenshots the admin UI's browser tests took (tests/browser, CTest
# browser_ui: build/test/tests/ui-shots/) into docs/img/ui-*.png, where
# docs/ui.md shows them. Run the tests first (scripts/test.sh, or
# `ctest -R browser_ui` in build/test).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-build/test/tests/ui-shots}
[ -d "$src" ] || { echo "no screenshots in $src: run ctest -R browser_ui in build/test first" >&2; exit 1; }
for f in "$src"/*.png; do
  cp "$f" "docs/img/ui-$(basename "$f")"
  echo "docs/img/ui-$(basename "$f")"
done
