#!/usr/bin/env bash
# The whole test suite: install what is missing, build with warnings as
# errors, run every test through ctest and the command-line tools once under
# valgrind memcheck (tests/valgrind.sh); then the same suite once more under
# AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)

echo "== build (warnings as errors)"
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFM_WERROR=ON >/dev/null
cmake --build build-test -j"$jobs" >/dev/null
echo "== ctest"
ctest --test-dir build-test --output-on-failure -j"$jobs"

echo "== command-line tools under valgrind memcheck"
tests/valgrind.sh build-test

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFM_WERROR=ON -DFM_SANITIZE=ON \
  -DFM_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
echo "== ctest under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  FM_TEST_SCALE=sanitizer ctest --test-dir build-asan --output-on-failure -j"$jobs"

echo "== Python package (pytest, virtual environment reused)"
scripts/python-tests.sh
