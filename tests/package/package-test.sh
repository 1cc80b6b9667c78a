#!/usr/bin/env bash
# Builds the Debian packages, checks them with lintian, unpacks them into a
# throwaway root with dpkg -x, and from outside the source tree builds a
# program against the installed shim (pkg-config, and CMake's
# find_package) whose worker blocks; the installed `stallwatch run` must
# catch it, naming the function and its file:line. Only installed files
# are used: nothing from the build tree.
#
#   tests/package/package-test.sh BUILD_DIR      (BUILD_DIR is configured here)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: package-test.sh BUILD_DIR}
step() { printf '==> package: %s\n' "$*"; }
fail() { printf 'FAIL [package]: %s\n' "$*" >&2; exit 1; }

step "configure and build for /usr (monitor and shim only)"
cmake -S "$top" -B "$build" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSTALLWATCH_BUILD_TESTS=OFF -DSTALLWATCH_BUILD_BENCH=OFF -DSTALLWATCH_TEST_HOOKS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
rm -f "$build"/*.deb
(cd "$build" && cpack -G DEB >/dev/null)
debs=("$build"/stallwatch_*.deb "$build"/libstallwatch-dev_*.deb)
for d in "${debs[@]}"; do [ -f "$d" ] || fail "no package $d"; done
ls -l "${debs[@]}"

step "lintian (no error allowed)"
lintian --fail-on error --suppress-tags-from-file /dev/null "${debs[@]}" 2>&1 | grep -v 'root privileges' || true
lintian --fail-on error "${debs[@]}" >/dev/null 2>&1 || fail "lintian reports errors"
dpkg-deb -f "$build"/stallwatch_*.deb Depends | grep -q 'libunwind8' || fail "stallwatch does not depend on libunwind8"
dpkg-deb -f "$build"/stallwatch_*.deb Depends | grep -q 'libdw1' || fail "stallwatch does not depend on libdw1"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root="$work/root"
step "dpkg -x into $root"
for d in "${debs[@]}"; do dpkg -x "$d" "$root"; done
multiarch=$(gcc -print-multiarch)
libdir="$root/usr/lib/$multiarch"
[ -x "$root/usr/bin/stallwatch" ] || fail "no /usr/bin/stallwatch in the package"
[ -f "$root/usr/share/man/man1/stallwatch.1.gz" ] || fail "no man page in the package"
[ -f "$root/usr/share/bash-completion/completions/stallwatch" ] || fail "no bash completion in the package"
unit="$root/lib/systemd/system/stallwatch-agent.service"
[ -f "$unit" ] || fail "no /lib/systemd/system/stallwatch-agent.service in the package"
grep -qx 'ExecStart=/usr/bin/stallwatch attach --all --format json' "$unit" ||
    fail "the agent's unit does not run 'stallwatch attach --all --format json'"
# Installed, never enabled or started: no maintainer script at all.
for script in postinst prerm postrm preinst; do
    if dpkg-deb -I "$build"/stallwatch_*.deb "$script" >/dev/null 2>&1; then
        fail "the stallwatch package has a $script (the agent's unit must not be enabled)"
    fi
done
if command -v systemd-analyze >/dev/null; then
    step "systemd-analyze verify the agent's unit"
    # Verified with the unpacked stallwatch in place of /usr/bin/stallwatch
    # (it checks that the command exists); --man=no: the page is not installed.
    mkdir -p "$work/unit"
    sed "s|/usr/bin/stallwatch|$root/usr/bin/stallwatch|" "$unit" >"$work/unit/stallwatch-agent.service"
    systemd-analyze verify --man=no "$work/unit/stallwatch-agent.service" ||
        fail "systemd-analyze verify rejects the agent's unit"
fi
version=$("$root/usr/bin/stallwatch" --version)
echo "$version"
grep -q "reads table format versions: 1" <<<"$version" || fail "--version does not say the table format"
if grep -q "test hooks" <<<"$version"; then fail "the packaged stallwatch was built with test hooks"; fi

# Outside the source tree: a copy of the consumer sources only.
cp "$top/tests/package/blocker.c" "$top/tests/package/CMakeLists.txt" "$work/"
line=$(grep -n 'LINE:blocked' "$work/blocker.c" | cut -d: -f1)

step "build with pkg-config against the unpacked shim"
PKG_CONFIG_PATH="$libdir/pkgconfig" PKG_CONFIG_LIBDIR="$libdir/pkgconfig" pkg-config --cflags --libs stallwatch
cc -O2 -g -o "$work/blocker_pc" "$work/blocker.c" \
    $(PKG_CONFIG_PATH="$libdir/pkgconfig" PKG_CONFIG_LIBDIR="$libdir/pkgconfig" pkg-config --cflags --libs stallwatch)

step "build with find_package(stallwatch) against the unpacked shim"
cmake -S "$work" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$root/usr" >/dev/null
cmake --build "$work/cmake-build" >/dev/null

for prog in "$work/blocker_pc" "$work/cmake-build/blocker_cmake"; do
    step "catch $(basename "$prog")'s blocked worker with the installed stallwatch run"
    # The packaged stallwatch; the program finds the packaged libstallwatch.so.0.
    # The test-only hold knob must do nothing in a packaged binary: with it,
    # every stop would last 3 s.
    STALLWATCH_TEST_HOLD_STOP_US=3000000 LD_LIBRARY_PATH="$libdir" \
        timeout 60 "$root/usr/bin/stallwatch" run --threshold 200ms -- "$prog" \
        >"$work/out" 2>"$work/err" || fail "stallwatch run failed: $(cat "$work/err")"
    grep -q "blocker: done" "$work/out" || fail "the program did not finish"
    grep -q 'STALL #1: worker "pkg-worker"' "$work/err" || fail "no stall report: $(cat "$work/err")"
    grep -q "blocked_in_package_test at .*blocker.c:$line" "$work/err" ||
        fail "the report does not name blocked_in_package_test at blocker.c:$line: $(cat "$work/err")"
    ldd "$prog" | grep -q "$libdir/libstallwatch.so.0" ||
        { LD_LIBRARY_PATH="$libdir" ldd "$prog" | grep -q "$libdir/libstallwatch.so.0" || fail "not linked to the packaged shim"; }
    grep -qE 'stopped [0-9.]+(us|ms) to sample' "$work/err" ||
        fail "the packaged stallwatch held the stop (test knob honoured?): $(grep 'to sample' "$work/err")"
    sed -n '/STALL #1/,/first frame/p' "$work/err"
done
step "run --preload with the packaged libstallwatch-preload.so, found from the unpacked binary"
[ -f "$libdir/stallwatch/libstallwatch-preload.so" ] || fail "no $libdir/stallwatch/libstallwatch-preload.so in the package"
# python3 parks in select (a timeout), then blocks in time.sleep for 0.6 s.
timeout 60 "$root/usr/bin/stallwatch" run --preload --threshold 200ms -- /usr/bin/python3 -c \
    'import select, time; select.select([], [], [], 0.1); time.sleep(0.6); select.select([], [], [], 0.1)' \
    >"$work/out" 2>"$work/err" || fail "stallwatch run --preload failed: $(cat "$work/err")"
grep -q "STALL #1: worker \"python3\"" "$work/err" || fail "no stall report under the preload: $(cat "$work/err")"
grep -q "clock_nanosleep" "$work/err" || fail "the report does not show the sleep: $(cat "$work/err")"
sed -n '/STALL #1/,/first frame/p' "$work/err" | head -8
step "passed"
