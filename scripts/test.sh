#!/usr/bin/env bash
# The test command: installs dependencies, builds with warnings as errors and
# hardening, runs the whole suite (unit, integration, fuzz corpora), then
# builds again with ASan+UBSan and runs the suite once more.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

bash scripts/setup.sh

status=0
run_suite() {
  local dir=$1; shift
  echo "=== build: $dir $*"
  BUILD_DIR="$dir" bash scripts/build.sh "$@"
  echo "=== ctest: $dir"
  if ! ctest --test-dir "$dir" --output-on-failure -j2 --timeout 600; then
    status=1
  fi
}

run_suite "$ROOT/build" -DSIGIL_SANITIZE=OFF
if [ "${SIGIL_SKIP_ASAN:-0}" != 1 ]; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CC=clang run_suite "$ROOT/build-asan" -DSIGIL_SANITIZE=ON -DCMAKE_C_COMPILER=clang
fi
if [ $status -ne 0 ]; then
  echo "test.sh: FAILED"
else
  echo "test.sh: all suites passed"
fi
exit $status
