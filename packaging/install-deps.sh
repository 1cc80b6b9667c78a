#!/bin/sh
# Installs what building, testing and running stallwatch needs on Debian 12.
# Idempotent: apt-get skips what is already there. Needs root (or sudo).
set -eu
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# For tests/run-all.sh: libclang-rt-14-dev, clang's sanitizer and libFuzzer
# runtimes (only recommended by clang, so --no-install-recommends leaves it
# out); llvm, for llvm-symbolizer (readable sanitizer stacks); lintian, for
# tests/package/package-test.sh; syslog-ng-core, for the log pipeline tests
# (tests/pipeline/), which start their own daemons: the system services are
# never started here (policy-rc.d below) nor enabled. rsyslog, the other
# daemon those tests run, conflicts with syslog-ng-core (both provide
# system-log-daemon), so it is unpacked below, not installed; its libraries
# are installed here. redis-server, redis-tools, nginx-light, python3-dbg
# (the interpreter's debug symbols), nodejs and memcached: the real programs
# that tests/preload/ runs under libstallwatch-preload.so, unmodified; their
# services are not started either. librust-tokio-dev, librust-hyper-dev and
# librust-libc-dev: the crates the Rust binding (bindings/rust) builds from,
# offline; cargo itself is Debian's only where the machine has none (rustup's
# in ~/.cargo/bin is used when present). libboost-dev (Boost.Asio, header-only)
# and libuv1-dev: the adapters' fixtures (fixtures/adapters). tmux: the tests
# of `stallwatch top` run it in a real terminal (tests/integration/test_top.cpp).
# strace: a test records the monitor's own system calls to check what it does
# while a thread is stopped (tests/integration/test_attach.cpp).
PACKAGES="
  build-essential cmake pkg-config
  libunwind-dev libdw-dev elfutils
  libcli11-dev libfmt-dev doctest-dev libbenchmark-dev nlohmann-json3-dev
  binutils clang python3 python3-jsonschema
  libclang-rt-14-dev llvm lintian
  elfutils libc6-dbg memcached groff-base
  syslog-ng-core libestr0 libfastjson4 liblognorm5 libzstd1
  redis-server redis-tools nginx-light python3-dbg nodejs
  librust-tokio-dev librust-hyper-dev librust-libc-dev
  libboost-dev libuv1-dev
  tmux strace
"
if ! command -v cargo >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
  PACKAGES="$PACKAGES cargo"
fi
# Only touch apt when something is missing: a warm machine sets up in a second.
missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "install-deps: installing:$missing"
  $SUDO apt-get update -qq
  # Packages that ship a daemon (rsyslog, syslog-ng-core) must not start it:
  # policy-rc.d exit 101 tells invoke-rc.d "not now" while they install.
  policy=/usr/sbin/policy-rc.d
  own_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    own_policy=1
  fi
  # shellcheck disable=SC2086
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing || {
    rc=$?; [ -z "$own_policy" ] || $SUDO rm -f "$policy"; exit "$rc"; }
  [ -z "$own_policy" ] || $SUDO rm -f "$policy"
fi

# rsyslog for tests/pipeline: the Debian package unpacked (dpkg-deb -x) into
# its own directory, outside dpkg's database, so that it can sit beside
# syslog-ng-core. The test runs $RSYSLOG_ROOT/usr/sbin/rsyslogd with -M
# pointing at the modules there. Skipped where a real rsyslog is installed.
RSYSLOG_ROOT=/opt/stallwatch-test/rsyslog
if [ ! -x /usr/sbin/rsyslogd ] && [ ! -x "$RSYSLOG_ROOT/usr/sbin/rsyslogd" ]; then
  echo "install-deps: unpacking rsyslog into $RSYSLOG_ROOT"
  [ -n "$missing" ] || $SUDO apt-get update -qq  # the package lists may be stale or empty
  dl=$(mktemp -d)
  $SUDO chmod 777 "$dl"  # apt-get download fetches as the _apt user
  (cd "$dl" && $SUDO apt-get download -qq rsyslog)
  $SUDO mkdir -p "$RSYSLOG_ROOT"
  $SUDO dpkg-deb -x "$dl"/rsyslog_*.deb "$RSYSLOG_ROOT"
  $SUDO rm -rf "$dl"
fi
