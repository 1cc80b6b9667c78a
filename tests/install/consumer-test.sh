#!/bin/sh
# Installs stallwatch into a scratch prefix and proves that programs OUTSIDE
# the build tree compile and link against the *installed* shim, and that the
# *installed* `stallwatch status` sees their workers:
#
#   a) C,   plain cc + `pkg-config --cflags --libs stallwatch`   (shared)
#   b) C++, find_package(stallwatch) + stallwatch::shim          (shared)
#   c) C++, find_package(stallwatch) + stallwatch::shim_static   (static)
#      C,   `pkg-config --static` flags + libstallwatch.a         (static)
#
# For each consumer: wait for its "ready" line, check `status` names the app
# and the worker, check the installed libstallwatch (or none, when static) is
# the one mapped, ask it to unregister the worker and check `status` no
# longer shows it (so the grep really discriminates), then end it by closing
# its stdin and require exit status 0.
#
# usage: consumer-test.sh BUILD_DIR SOURCE_DIR SCRATCH_DIR [VERSION]
# Environment (optional): CC, CXX (compilers), CMAKE (cmake executable).
# Writes only inside SCRATCH_DIR (and the build's install_manifest.txt).
set -eu

if [ $# -lt 3 ]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR SCRATCH_DIR [VERSION]" >&2
    exit 2
fi
build_dir=$1
source_dir=$2
scratch=$3
version=${4:-}
CC=${CC:-cc}
CXX=${CXX:-c++}
CMAKE=${CMAKE:-cmake}

here=$source_dir/tests/install
step="setup"

fail() {
    echo "FAIL [$step]: $*" >&2
    exit 1
}
note() {
    echo "-- [$step] $*"
}
# show FILE...: print files that exist, to explain a failure.
show() {
    for f in "$@"; do
        if [ -s "$f" ]; then
            echo "---- $f:" >&2
            sed 's/^/    /' "$f" >&2
        fi
    done
}

# ---- Scratch area, and cleanup that always runs -----------------------------
case $scratch in
    /*) ;;
    *) scratch=$(pwd)/$scratch ;;
esac
[ -d "$build_dir" ] || fail "build directory '$build_dir' does not exist"
[ -f "$here/consumer/consumer.c" ] || fail "source directory '$source_dir' has no tests/install/consumer"
# Everything is written below SCRATCH_DIR, which is wiped first: it must lie
# strictly inside the build directory.
build_real=$(cd -P "$build_dir" && pwd)
mkdir -p "$scratch"
scratch=$(cd -P "$scratch" && pwd) # real path: /proc/PID/maps shows real paths
case $scratch in
    "$build_real"/?*) ;;
    *) fail "scratch directory '$scratch' is not inside the build directory '$build_real'" ;;
esac
rm -rf "$scratch"
mkdir -p "$scratch"
prefix=$scratch/prefix

runner_pid=""    # the `timeout` process that runs the current consumer
consumer_pid=""  # the consumer itself, from its ready line
cleanup() {
    exec 3>&-  # the consumer sees end of input and leaves by itself
    if [ -n "$runner_pid" ]; then
        # timeout(1) forwards TERM to the consumer and, with -k, KILLs it 5 s
        # later; waiting for it reaps both, so nothing is left behind.
        kill -TERM "$runner_pid" 2>/dev/null || true
        wait "$runner_pid" 2>/dev/null || true
    fi
    runner_pid=""
    consumer_pid=""
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 129' HUP

for tool in timeout mkfifo "$CC" "$CXX" "$CMAKE" pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || fail "required tool '$tool' not found"
done

# ---- Install into the scratch prefix ------------------------------------------
step="install"
# DESTDIR would redirect the install outside the build tree: never honour it.
unset DESTDIR
timeout 120 "$CMAKE" --install "$build_dir" --prefix "$prefix" >"$scratch/install.log" 2>&1 ||
    { show "$scratch/install.log"; fail "cmake --install $build_dir --prefix $prefix failed (status $?)"; }
if grep -v "^-- Install configuration" "$scratch/install.log" | grep -E "^-- (Installing|Up-to-date): " |
    grep -v -F -- "$prefix/" >"$scratch/outside.log"; then
    show "$scratch/outside.log"
    fail "cmake --install wrote files outside the prefix $prefix"
fi

stallwatch=$prefix/bin/stallwatch
[ -x "$stallwatch" ] || fail "installed monitor $stallwatch is missing"
for h in stallwatch.h stallwatch.hpp table_abi.h; do
    [ -f "$prefix/include/stallwatch/$h" ] || fail "installed header include/stallwatch/$h is missing"
done
pc_file=$(find "$prefix" -name stallwatch.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc_file" ] || fail "no pkgconfig/stallwatch.pc under $prefix"
pc_dir=$(dirname "$pc_file")
lib_dir=$(dirname "$pc_dir") # <prefix>/lib or <prefix>/lib/<multiarch>
[ -f "$lib_dir/libstallwatch.a" ] || fail "libstallwatch.a is not next to pkgconfig/ in $lib_dir"
ls "$lib_dir"/libstallwatch.so.* >/dev/null 2>&1 || fail "libstallwatch.so.* is not in $lib_dir"
note "installed into $prefix (libdir ${lib_dir#"$prefix"/})"

# ---- Running a consumer ---------------------------------------------------------
# start_consumer TAG PROGRAM ARGS...: runs it with stdin from a fifo held open
# on fd 3, stdout/stderr to files, and waits (bounded) for its ready line.
start_consumer() {
    tag=$1
    shift
    run=$scratch/run-$tag
    rm -rf "$run"
    mkdir -p "$run"
    mkfifo "$run/stdin"
    # Read-write open of a fifo does not block (Linux), so nothing can hang here;
    # the consumer sees end of input once fd 3 is closed (by us, or by our death).
    exec 3<>"$run/stdin"
    LD_LIBRARY_PATH=$lib_dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
        timeout -k 5 30 "$@" <"$run/stdin" >"$run/stdout" 2>"$run/stderr" 3>&- &
    runner_pid=$!
    wait_for_line "^ready " "its ready line"
    ready=$(grep -m 1 "^ready " "$run/stdout")
    consumer_pid=$(echo "$ready" | sed -n 's/^ready pid=\([0-9][0-9]*\) .*/\1/p')
    [ -n "$consumer_pid" ] || { show "$run/stdout"; fail "malformed ready line: $ready"; }
    echo "$ready" | grep -q " init=0 " ||
        fail "stallwatch_init did not return 0 in the consumer: $ready"
    echo "$ready" | grep -q " live=1\$" ||
        fail "the consumer's worker did not get a live slot: $ready"
    note "consumer running: $ready"
}

# wait_for_line REGEX WHAT: polls the consumer's stdout, at most 15 s.
wait_for_line() {
    i=0
    while ! grep -q "$1" "$run/stdout" 2>/dev/null; do
        if ! runner_alive; then
            show "$run/stdout" "$run/stderr"
            fail "the consumer exited before printing $2"
        fi
        i=$((i + 1))
        if [ "$i" -gt 300 ]; then
            show "$run/stdout" "$run/stderr"
            fail "the consumer did not print $2 within 15 s"
        fi
        sleep 0.05
    done
}

# runner_alive: the timeout process still runs (exists and is not a zombie).
runner_alive() {
    [ -r "/proc/$runner_pid/stat" ] || return 1
    state=$(sed 's/^.*) //' "/proc/$runner_pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# check_status APP WORKER: the installed monitor lists the worker by name.
check_status() {
    out=$run/status.out
    timeout 30 env DEBUGINFOD_URLS= "$stallwatch" status "$consumer_pid" >"$out" 2>"$run/status.err" ||
        { show "$out" "$run/status.err"; fail "'$stallwatch status $consumer_pid' failed (status $?)"; }
    grep -q "^pid $consumer_pid " "$out" ||
        { show "$out"; fail "status output does not describe pid $consumer_pid"; }
    grep -q -F "app \"$1\"" "$out" ||
        { show "$out"; fail "status output does not name app \"$1\""; }
    # The NAME column is last: the exact worker name ends a line.
    grep -q -E "[[:space:]]$2\$" "$out" ||
        { show "$out"; fail "status output does not list worker '$2'"; }
    note "status lists app \"$1\" and worker '$2'"
}

# check_gone APP WORKER: after "unregister", the worker is no longer listed.
check_gone() {
    out=$run/status-after.out
    timeout 30 env DEBUGINFOD_URLS= "$stallwatch" status "$consumer_pid" >"$out" 2>"$run/status-after.err" ||
        { show "$out" "$run/status-after.err"; fail "'$stallwatch status $consumer_pid' failed after unregister (status $?)"; }
    grep -q -F "app \"$1\"" "$out" ||
        { show "$out"; fail "status output after unregister does not name app \"$1\""; }
    if grep -q -E "[[:space:]]$2\$" "$out"; then
        show "$out"
        fail "worker '$2' is still listed after it unregistered"
    fi
    note "status no longer lists '$2' after it unregistered"
}

# check_library shared|static: which libstallwatch the consumer has mapped.
check_library() {
    maps=$run/maps
    cp "/proc/$consumer_pid/maps" "$maps" 2>/dev/null || fail "cannot read /proc/$consumer_pid/maps"
    case $1 in
        shared)
            grep -q -F "$lib_dir/libstallwatch.so" "$maps" ||
                { grep libstallwatch "$maps" >&2 || true; fail "the consumer did not load the installed $lib_dir/libstallwatch.so"; }
            ;;
        static)
            if grep -q "libstallwatch\.so" "$maps"; then
                grep libstallwatch "$maps" >&2
                fail "the static consumer loaded a shared libstallwatch"
            fi
            ;;
    esac
    note "libstallwatch is linked $1 as expected"
}

# finish_consumer: unregister, check, end by closing stdin, require status 0.
finish_consumer() {
    app=$1
    worker=$2
    echo unregister >&3
    wait_for_line "^unregistered\$" "'unregistered'"
    check_gone "$app" "$worker"
    exec 3>&-
    rc=0
    wait "$runner_pid" || rc=$?
    runner_pid=""
    consumer_pid=""
    case $rc in
        0) note "consumer ended cleanly" ;;
        124 | 137) show "$run/stderr"; fail "the consumer did not exit after its stdin closed (killed by timeout)" ;;
        *) show "$run/stderr"; fail "the consumer exited with status $rc" ;;
    esac
}

# exercise TAG LINKAGE PROGRAM WORKER
exercise() {
    step=$1
    start_consumer "$1" "$3" install-consumer "$4"
    check_status install-consumer "$4"
    check_library "$2"
    finish_consumer install-consumer "$4"
}

# ---- a) C with pkg-config, shared ---------------------------------------------
step="pkg-config"
# Only the installed .pc may be found (PKG_CONFIG_LIBDIR replaces the system path).
PKG_CONFIG_PATH=$pc_dir
PKG_CONFIG_LIBDIR=$pc_dir
export PKG_CONFIG_PATH PKG_CONFIG_LIBDIR
pc_flags=$(timeout 30 pkg-config --cflags --libs stallwatch 2>"$scratch/pkg-config.err") ||
    { show "$scratch/pkg-config.err"; fail "pkg-config --cflags --libs stallwatch failed"; }
pc_static=$(timeout 30 pkg-config --static --libs-only-other stallwatch 2>"$scratch/pkg-config.err") ||
    { show "$scratch/pkg-config.err"; fail "pkg-config --static --libs-only-other stallwatch failed"; }
pc_cflags=$(timeout 30 pkg-config --cflags stallwatch)
pc_version=$(timeout 30 pkg-config --modversion stallwatch)
note "pkg-config stallwatch $pc_version: $pc_flags"
if [ -n "$version" ] && [ "$pc_version" != "$version" ]; then
    fail "pkg-config reports version '$pc_version', the build is $version"
fi
# The flags must point into the prefix (the .pc computes it from its own place).
pc_incdir=$(timeout 30 pkg-config --variable=includedir stallwatch)
pc_libdir=$(timeout 30 pkg-config --variable=libdir stallwatch)
[ "$(cd -P "$pc_incdir" 2>/dev/null && pwd)" = "$prefix/include" ] ||
    fail "pkg-config includedir '$pc_incdir' is not $prefix/include"
[ "$(cd -P "$pc_libdir" 2>/dev/null && pwd)" = "$lib_dir" ] ||
    fail "pkg-config libdir '$pc_libdir' is not $lib_dir"

step="c-pkgconfig-build"
mkdir -p "$scratch/c"
# shellcheck disable=SC2086 # pkg-config flags are meant to be split
timeout 120 "$CC" -std=c11 -Wall -Wextra -Werror -o "$scratch/c/consumer" \
    "$here/consumer/consumer.c" $pc_flags >"$scratch/c/build.log" 2>&1 ||
    { show "$scratch/c/build.log"; fail "cc with \`pkg-config --cflags --libs stallwatch\` failed"; }
exercise c-pkgconfig shared "$scratch/c/consumer" pkgconfig-worker

# ---- c) C with pkg-config --static and libstallwatch.a ----------------------------
step="c-static-build"
# shellcheck disable=SC2086
timeout 120 "$CC" -std=c11 -Wall -Wextra -Werror -o "$scratch/c/consumer-static" \
    "$here/consumer/consumer.c" $pc_cflags "$lib_dir/libstallwatch.a" $pc_static \
    >"$scratch/c/build-static.log" 2>&1 ||
    { show "$scratch/c/build-static.log"; fail "cc with libstallwatch.a and \`pkg-config --static\` flags failed"; }
exercise c-static static "$scratch/c/consumer-static" pkgconfig-static-worker

# ---- b) C++ with find_package(stallwatch), shared and static ------------------
step="cmake-configure"
cpp_build=$scratch/cpp-build
timeout 180 "$CMAKE" -S "$here/consumer" -B "$cpp_build" \
    -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_CXX_COMPILER="$CXX" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
    -DSW_EXPECTED_VERSION="$version" >"$scratch/cpp-configure.log" 2>&1 ||
    { show "$scratch/cpp-configure.log"; fail "configuring the consumer project with find_package(stallwatch) failed"; }
found_dir=$(sed -n 's/^stallwatch_DIR:PATH=//p' "$cpp_build/CMakeCache.txt")
[ "$(cd -P "$found_dir" 2>/dev/null && pwd)" = "$lib_dir/cmake/stallwatch" ] ||
    fail "find_package(stallwatch) used '$found_dir', not the installed $lib_dir/cmake/stallwatch"
note "find_package(stallwatch) found $found_dir"

step="cmake-build"
timeout 240 "$CMAKE" --build "$cpp_build" >"$scratch/cpp-build.log" 2>&1 ||
    { show "$scratch/cpp-build.log"; fail "building the consumer project failed"; }

exercise cmake-shared shared "$cpp_build/consumer_cpp" cmake-worker
exercise cmake-static static "$cpp_build/consumer_cpp_static" cmake-static-worker

step="done"
note "all consumers built against the installed shim and were seen by the installed stallwatch"
