#!/bin/sh
# Points cargo at Debian's packaged crates (/usr/share/cargo/registry, from
# the librust-*-dev packages) instead of crates.io, which is not reachable
# here: writes bindings/rust/.cargo/config.toml. Idempotent.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
registry=${STALLWATCH_CARGO_REGISTRY:-/usr/share/cargo/registry}
[ -d "$registry" ] || { echo "setup-offline: $registry is missing (apt-get install librust-tokio-dev librust-hyper-dev librust-libc-dev)" >&2; exit 1; }
mkdir -p "$here/.cargo"
cat >"$here/.cargo/config.toml" <<CONF
# Written by setup-offline.sh: Debian's crates, never the network.
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "$registry"

[net]
offline = true
CONF
echo "setup-offline: cargo uses $registry"
