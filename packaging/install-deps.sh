#!/bin/sh
# Installs what building, testing and running stallwatch needs on Debian 12.
# Idempotent: apt-get skips what is already there. Needs root (or sudo).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# For tests/run-all.sh: libclang-rt-14-dev, clang's sanitizer and libFuzzer
# runtimes (only recommended by clang, so --no-install-recommends leaves it
# out); llvm, for llvm-symbolizer (readable sanitizer stacks); lintian, for
# tests/package/package-test.sh.
PACKAGES="
  build-essential cmake pkg-config
  libunwind-dev libdw-dev elfutils
  libcli11-dev libfmt-dev doctest-dev libbenchmark-dev nlohmann-json3-dev
  binutils clang python3 python3-jsonschema
  libclang-rt-14-dev llvm lintian
  elfutils libc6-dbg memcached groff-base
"
# Only touch apt when something is missing: a warm machine sets up in a second.
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing:$missing"
  $SUDO apt-get update -qq
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
