#!/bin/sh
# Builds gatehouse_<version>_<arch>.deb from a `make build` tree with plain dpkg-deb (no extra
# tools to install). Usage: build-deb.sh DIST OUTDIR
#   /usr/share/jitsi-meet/prosody-plugins/   every mod_*.lua, gatehouse.lib.lua, gatehouse.so
#   /usr/share/doc/gatehouse/                README.md, copyright, examples/gatehouse.cfg.lua
set -eu
dist=${1:?usage: $0 DIST OUTDIR}
out=${2:?usage: $0 DIST OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
test -f "$dist/gatehouse.so" || { echo "build-deb: no $dist/gatehouse.so; run 'make build' first" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -1)
arch=$(dpkg --print-architecture)
plugins=/usr/share/jitsi-meet/prosody-plugins
doc=/usr/share/doc/gatehouse
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT

install -d "$stage/DEBIAN" "$stage$plugins" "$stage$doc/examples"
install -m 0644 "$dist"/*.lua "$stage$plugins/"
install -m 0644 "$dist/gatehouse.so" "$stage$plugins/"
install -m 0644 "$repo/README.md" "$stage$doc/README.md"
install -m 0644 "$here/gatehouse.cfg.lua" "$stage$doc/examples/gatehouse.cfg.lua"
cat >"$stage$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: gatehouse

Files: *
License: Apache-2.0
 On Debian systems the full text of the Apache License 2.0 is in
 /usr/share/common-licenses/Apache-2.0.
COPYRIGHT

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: gatehouse
Version: $version
Architecture: $arch
Maintainer: gatehouse developers <gatehouse@localhost>
Installed-Size: $size
Depends: prosody (>= 0.12), libc6 (>= 2.34), libgcc-s1
Recommends: ca-certificates
Suggests: jitsi-meet-prosody
Section: net
Priority: optional
Description: native access control modules for Jitsi Meet's Prosody
 JWT authentication, room checks, security on demand, token moderation,
 Matrix user verification and a token issuer for Jitsi Meet, as Prosody
 modules backed by one native library (gatehouse.so, built for Lua 5.4:
 Prosody 0.12 and 13 as Debian ships them). Installs into
 /usr/share/jitsi-meet/prosody-plugins next to jitsi-meet-prosody's modules.
CONTROL

mkdir -p "$out"
deb="$out/gatehouse_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$stage" "$deb" >/dev/null
echo "$deb"
