#!/bin/sh
# Points cargo at Debian's packaged crates (/usr/share/cargo/registry, from
# the librust-*-dev packages) instead of crates.io, which is not reachable
# here. Idempotent.
#
#   bindings/rust/setup-offline.sh          writes bindings/rust/.cargo/config.toml:
#                                           plain `cargo build` then works here
#   bindings/rust/setup-offline.sh FILE     writes FILE instead, for
#                                           `cargo --config FILE` (the CMake build)
#   STALLWATCH_CARGO_REGISTRY=DIR           another directory of vendored crates
set -eu
here=$(cd "$(dirname "$0")" && pwd)
registry=${STALLWATCH_CARGO_REGISTRY:-/usr/share/cargo/registry}
out=${1:-$here/.cargo/config.toml}
if [ ! -d "$registry/tokio-1.24.2" ] && ! ls -d "$registry"/tokio-1.* >/dev/null 2>&1; then
    echo "setup-offline: no tokio crate in $registry (apt-get install librust-tokio-dev librust-hyper-dev librust-libc-dev)" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
cat >"$out.tmp" <<CONF
# Written by bindings/rust/setup-offline.sh: Debian's crates, never the network.
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"

[net]
offline = true
CONF
mv "$out.tmp" "$out"
echo "setup-offline: cargo uses $registry ($out)"
