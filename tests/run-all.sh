#!/usr/bin/env bash
# Sets up and passes the tests on Debian 12. This is what CI runs (.ci/run).
#
#   1. g++ build, warnings as errors, test hooks on, with the Rust crate
#      (bindings/rust, built by cargo from Debian's crates); the whole suite. A
#      one-minute soak with bounds (bench/soak.sh). The Debian packages,
#      built without test hooks, linted and used (tests/package/package-test.sh).
#   2. clang build with AddressSanitizer + UndefinedBehaviorSanitizer on the
#      monitor and the tests (never on the shim or the fixtures); the whole
#      suite again (but the adapters' tests, whose code is all in their
#      uninstrumented fixtures), and the libFuzzer targets, which this build
#      also makes.
#   3. A small ThreadSanitizer build: the shim's concurrency test only.
#   4. Each fuzzer for STALLWATCH_FUZZ_SECONDS over its seeds.
#
# Every step runs, whatever an earlier one did (a step whose build failed
# fails its tests too); the closing lines count the tests that passed, failed
# and were skipped, from CTest's own records, and name every failed step. The
# exit status is 1 if anything failed, or if any test was skipped while
# running as root, as CI does: there every test can run, so a skip hides one.
#
#   tests/run-all.sh            (as root, or with sudo available)
#   BUILD_DIR=...               to build elsewhere (default: build/ at the top
#                               of the tree; the other builds go next to it,
#                               in BUILD_DIR-pkg, BUILD_DIR-asan, BUILD_DIR-tsan)
#   STALLWATCH_FUZZ_SECONDS=N   seconds per fuzzer (default 15; four fuzzers,
#                               two at a time)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$top/build}
jobs=$(nproc)
fuzz_seconds=${STALLWATCH_FUZZ_SECONDS:-15}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
failed_steps=()

section() { printf '\n==> %s   [%dm%02ds]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

# step NAME COMMAND...: runs COMMAND in a subshell with errexit (outside any
# `if`, where bash would ignore it), records a failure and goes on.
step() {
    local name=$1 rc
    shift
    section "$name"
    ( set -e; "$@" )
    rc=$?
    if [ "$rc" -ne 0 ]; then
        echo "FAILED: $name (exit $rc)"
        failed_steps+=("$name (exit $rc)")
    fi
    return 0
}

# ctest over one build directory, with the suite's common options; each run
# leaves a JUnit file of its own (steps run in subshells: no counter survives
# them) that the closing count reads.
run_ctest() {
    local dir=$1 junit
    shift
    junit=$(mktemp -p "$results" ctest-XXXXXX)
    cd "$dir"
    ctest --output-on-failure -j"$jobs" --timeout 300 --output-junit "$junit" "$@"
}

# The closing count: "PASSED FAILED SKIPPED" over every JUnit file, and the
# names of the skipped tests on the following lines.
count_tests() {
    python3 - "$results" <<'EOF'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
skips = []
for path in sorted(glob.glob(sys.argv[1] + "/ctest-*")):
    for case in ET.parse(path).getroot().iter("testcase"):
        skip = case.find("skipped")
        status = case.get("status")
        if status == "run" and skip is None and case.find("failure") is None:
            passed += 1
        elif skip is not None and "SKIP_" in (skip.get("message") or ""):
            # SKIP_REGULAR_EXPRESSION_MATCHED (SW_SKIP) or SKIP_RETURN_CODE
            skipped += 1
            skips.append(case.get("name"))
        else:
            failed += 1  # failed, or not run (not built, missing): never a pass
print(passed, failed, skipped)
for name in skips:
    print(name)
EOF
}

step "dependencies (packaging/install-deps.sh)" "$top/packaging/install-deps.sh"
export DEBUGINFOD_URLS=""   # tests never touch the network

# Sanitizer reports exit with 86, a status stallwatch never uses, so that a
# test expecting stallwatch's exit 1 cannot pass on a sanitizer's report.
export ASAN_OPTIONS=exitcode=86:detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:strict_init_order=1
export LSAN_OPTIONS=exitcode=86:suppressions=$top/tests/lsan.supp
export UBSAN_OPTIONS=exitcode=86:print_stacktrace=1:halt_on_error=1

# ---- 1. g++ ---------------------------------------------------------------
gcc_build() {
    cmake -S "$top" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALLWATCH_WERROR=ON \
        -DSTALLWATCH_TEST_HOOKS=ON -DSTALLWATCH_BUILD_RUST=ON >/dev/null
    cmake --build "$build" -j"$jobs"
}
step "g++ build in $build (and the Rust crate, with cargo)" gcc_build
step "g++: the whole suite" run_ctest "$build"
step "soak: one minute of attach on a target that stalls every second, with bounds" \
    env SOAK_SECONDS=60 SOAK_CHECK=1 BUILD_DIR="$build" "$top/bench/soak.sh"
step "package: .debs built for /usr in $build-pkg, lintian, used from the unpacked files" \
    "$top/tests/package/package-test.sh" "$build-pkg"

# ---- 2. clang, ASan + UBSan -------------------------------------------------
# The fixtures are built by clang here too, without .debug_aranges (clang's
# default): the symbolizer must find their file:line all the same.
asan=$build-asan
asan_build() {
    cmake -S "$top" -B "$asan" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALLWATCH_WERROR=ON -DSTALLWATCH_TEST_HOOKS=ON \
        -DSTALLWATCH_SANITIZE=address,undefined -DSTALLWATCH_BUILD_BENCH=OFF \
        -DSTALLWATCH_BUILD_FUZZ=ON -DSTALLWATCH_FUZZ_SECONDS="$fuzz_seconds" >/dev/null
    cmake --build "$asan" -j"$jobs"
}
step "clang + ASan/UBSan build in $asan (monitor, tests, fuzz targets)" asan_build

# Counts sanitizer symbols (static and dynamic tables) in each file.
sanitizer_symbols() { { nm "$1"; nm -D "$1"; } 2>/dev/null | grep -cE '__(asan|ubsan|lsan|tsan)_' || true; }
no_sanitizer_in_shim() {
    [ "$(sanitizer_symbols "$asan/src/stallwatch")" -gt 0 ] ||
        { echo "FAIL: the monitor in $asan is not instrumented: the check below would prove nothing"; return 1; }
    local clean=1 f n
    for f in "$asan"/src/libstallwatch.so "$asan"/src/libstallwatch.a \
             $(find "$asan/fixtures" -type f -perm -u+x ! -path '*/CMakeFiles/*' ! -name '*.debug'); do
        n=$(sanitizer_symbols "$f")
        printf '  %-70s %s sanitizer symbols\n' "${f#"$asan"/}" "$n"
        [ "$n" -eq 0 ] || clean=0
    done
    [ "$clean" -eq 1 ] || { echo "FAIL: sanitizers leaked into the shim or a fixture (they are injected into applications)"; return 1; }
}
step "ASan/UBSan build: the shim and the fixtures carry no sanitizer runtime" no_sanitizer_in_shim

# halt_on_error: the first error fails the test. detect_leaks: LeakSanitizer
# at exit (it stops the process's own threads with ptrace; the monitor's own
# ptrace use of its targets does not conflict).
# The adapters' tests (label "adapters") ran in the g++ suite: what they test
# is compiled into their fixtures, which this build does not instrument.
step "ASan/UBSan: the whole suite (but the adapters')" run_ctest "$asan" -LE 'fuzz|adapters'

# ---- 3. TSan: the shim's concurrency -----------------------------------------
# Only the test target is built here: the shim and the table reader compiled
# into one instrumented test (tests/tsan/).
tsan=$build-tsan
tsan_build() {
    cmake -S "$top" -B "$tsan" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTALLWATCH_WERROR=ON \
        -DSTALLWATCH_SANITIZE=thread -DSTALLWATCH_BUILD_BENCH=OFF >/dev/null
    cmake --build "$tsan" -j"$jobs" --target stallwatch_tsan_tests
}
step "clang + TSan build in $tsan (shim concurrency test only)" tsan_build
step "TSan: the shim under concurrent register, tick, park, exit and read" run_ctest "$tsan" -L tsan

# ---- 4. Fuzzing ---------------------------------------------------------------
fuzz() {
    run_ctest "$asan" -L fuzz
    cat "$asan"/fuzz/work/*/summary.txt
}
step "fuzz: each fuzzer ${fuzz_seconds}s over a copy of fuzz/corpus/ (ASan + UBSan)" fuzz

# ---- The count ------------------------------------------------------------------
section "results (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
counts=$(count_tests) || { echo "cannot read CTest's results"; failed_steps+=("counting the results"); counts="0 0 0"; }
read -r passed failed skipped <<<"$(head -1 <<<"$counts")"
if [ "$skipped" -gt 0 ]; then
    echo "skipped tests:"
    tail -n +2 <<<"$counts" | sed 's/^/  /'
    if [ "$(id -u)" -eq 0 ]; then
        failed_steps+=("$skipped test(s) skipped while running as root, where every test can run")
    fi
fi
for s in "${failed_steps[@]}"; do echo "failed step: $s"; done
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ "${#failed_steps[@]}" -gt 0 ] || [ "$failed" -gt 0 ]; then
    echo "run-all: FAILED"
    exit 1
fi
echo "run-all: all passed"
