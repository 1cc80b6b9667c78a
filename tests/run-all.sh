#!/usr/bin/env bash
# Sets up and passes the tests on Debian 12: installs missing packages,
# builds with g++ (warnings as errors) and runs the whole suite with ctest,
# then builds with clang and runs the unit tests there too.
#
#   tests/run-all.sh            (as root, or with sudo available)
#   BUILD_DIR=... to build elsewhere (default: build/ at the top of the tree)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
jobs=$(nproc)

"$top/packaging/install-deps.sh"

echo "==> g++ build in $build"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALLWATCH_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"

echo "==> tests"
export DEBUGINFOD_URLS=""   # tests never touch the network
(cd "$build" && ctest --output-on-failure -j"$jobs" --timeout 300)

echo "==> clang build in $build-clang"
cmake -S "$top" -B "$build-clang" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALLWATCH_WERROR=ON >/dev/null
cmake --build "$build-clang" -j"$jobs"
(cd "$build-clang" && ctest --output-on-failure -j"$jobs" --timeout 300 -R '^(unit|asm):')
