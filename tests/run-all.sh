#!/usr/bin/env bash
# Sets up and passes the tests on Debian 12. This is what CI runs (.ci/run).
#
#   1. g++ build, warnings as errors; the whole suite. The Debian packages,
#      built, linted and used (tests/package/package-test.sh).
#   2. clang build with AddressSanitizer + UndefinedBehaviorSanitizer on the
#      monitor and the tests (never on the shim or the fixtures); the whole
#      suite again, and the libFuzzer targets, which this build also makes.
#   3. A small ThreadSanitizer build: the shim's concurrency test only.
#   4. Each fuzzer for STALLWATCH_FUZZ_SECONDS over its seeds.
#
#   tests/run-all.sh            (as root, or with sudo available)
#   BUILD_DIR=...               to build elsewhere (default: build/ at the top
#                               of the tree; the other builds go next to it,
#                               in BUILD_DIR-pkg, BUILD_DIR-asan, BUILD_DIR-tsan)
#   STALLWATCH_FUZZ_SECONDS=N   seconds per fuzzer (default 15; four fuzzers,
#                               two at a time)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
jobs=$(nproc)
fuzz_seconds=${STALLWATCH_FUZZ_SECONDS:-15}

section() { printf '\n==> %s   [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }
# ctest over one build directory, with the suite's common options; the
# counts add up to the closing line.
total_passed=0 total_failed=0
run_ctest() {
    local dir=$1 log rc=0
    shift
    log=$(mktemp)
    (cd "$dir" && ctest --output-on-failure -j"$jobs" --timeout 300 "$@") 2>&1 | tee "$log" || rc=$?
    local line failed total
    line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
    rm -f "$log"
    failed=$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")
    total=$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")
    total_passed=$((total_passed + ${total:-0} - ${failed:-0}))
    total_failed=$((total_failed + ${failed:-0}))
    return "$rc"
}

section "dependencies (packaging/install-deps.sh)"
"$top/packaging/install-deps.sh"
export DEBUGINFOD_URLS=""   # tests never touch the network

# ---- 1. g++ ---------------------------------------------------------------
section "g++ build in $build"
cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALLWATCH_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs"

section "g++: the whole suite"
run_ctest "$build"

section "package: .debs built for /usr in $build-pkg, lintian, used from the unpacked files"
"$top/tests/package/package-test.sh" "$build-pkg"

# ---- 2. clang, ASan + UBSan -------------------------------------------------
# The fixtures are built by clang here too, without .debug_aranges (clang's
# default): the symbolizer must find their file:line all the same.
asan=$build-asan
section "clang + ASan/UBSan build in $asan (monitor, tests, fuzz targets)"
cmake -S "$top" -B "$asan" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALLWATCH_WERROR=ON \
    -DSTALLWATCH_SANITIZE=address,undefined \
    -DSTALLWATCH_BUILD_FUZZ=ON -DSTALLWATCH_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
cmake --build "$asan" -j"$jobs"

section "ASan/UBSan build: the shim and the fixtures carry no sanitizer runtime"
# Counts sanitizer symbols (static and dynamic tables) in each file.
sanitizer_symbols() { { nm "$1"; nm -D "$1"; } 2>/dev/null | grep -cE '__(asan|ubsan|lsan|tsan)_' || true; }
[ "$(sanitizer_symbols "$asan/src/stallwatch")" -gt 0 ] ||
    { echo "FAIL: the monitor in $asan is not instrumented: the check below would prove nothing"; exit 1; }
clean=1
for f in "$asan"/src/libstallwatch.so "$asan"/src/libstallwatch.a \
         $(find "$asan/fixtures" -type f -perm -u+x ! -path '*/CMakeFiles/*' ! -name '*.debug'); do
    n=$(sanitizer_symbols "$f")
    printf '  %-70s %s sanitizer symbols\n' "${f#"$asan"/}" "$n"
    [ "$n" -eq 0 ] || clean=0
done
[ "$clean" -eq 1 ] || { echo "FAIL: sanitizers leaked into the shim or a fixture (they are injected into applications)"; exit 1; }

section "ASan/UBSan: the whole suite"
# halt_on_error: the first error fails the test. detect_leaks: LeakSanitizer
# at exit (it stops the process's own threads with ptrace; the monitor's own
# ptrace use of its targets does not conflict).
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_ctest "$asan" -LE fuzz

# ---- 3. TSan: the shim's concurrency -----------------------------------------
# Only the test target is built here: the shim and the table reader compiled
# into one instrumented test (tests/tsan/).
tsan=$build-tsan
section "clang + TSan build in $tsan (shim concurrency test only)"
cmake -S "$top" -B "$tsan" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALLWATCH_WERROR=ON \
    -DSTALLWATCH_SANITIZE=thread -DSTALLWATCH_BUILD_BENCH=OFF >/dev/null
cmake --build "$tsan" -j"$jobs" --target stallwatch_tsan_tests

section "TSan: the shim under concurrent register, tick, park, exit and read"
run_ctest "$tsan" -L tsan

# ---- 4. Fuzzing ---------------------------------------------------------------
section "fuzz: each fuzzer ${fuzz_seconds}s over a copy of fuzz/corpus/ (ASan + UBSan)"
run_ctest "$asan" -L fuzz
cat "$asan"/fuzz/work/*/summary.txt

section "all passed (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "tests: $total_passed passed, $total_failed failed"
