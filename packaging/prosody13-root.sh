#!/bin/sh
# Makes (once) a Debian 13 root holding Prosody 13 on Lua 5.4, for the e2e suite's second
# Prosody (`make test-prosody13`). Prosody 13 needs Debian 13's libc, so it runs chrooted;
# lib/prosody.js starts it there (PROSODY_ROOT). Usage: prosody13-root.sh DIR
set -eu
root=${1:?usage: $0 DIR}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Prosody, and the Lua libraries the upstream modules need for the differential tests; the
# docker-jitsi-meet test (make test-docker-config) adds what that image installs besides:
# lua-unbound (its DNS resolver) and ca-certificates (the CA store HTTPS calls trust).
packages="prosody lua-cjson lua-basexx lua-inspect lua-luaossl lua-sec lua-unbound ca-certificates"
if [ -x "$root/usr/bin/prosody" ] && [ -f "$root/.gatehouse-ready" ]; then
	# A root made before a package joined the list gets it added.
	chroot "$root" dpkg-query -W $packages >/dev/null 2>&1 && exit 0
	echo "prosody13-root: adding packages to $root"
	chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends $packages >>"$root.log" 2>&1 || {
		chroot "$root" apt-get update -qq >>"$root.log" 2>&1 &&
		chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends $packages >>"$root.log" 2>&1; } || {
		tail -20 "$root.log" >&2; exit 1; }
	chroot "$root" apt-get clean
	exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
}
rm -rf "$root.tmp"
mkdir -p "$(dirname "$root")"
echo "prosody13-root: debootstrap trixie into $root (once; reused afterwards)"
debootstrap --variant=minbase trixie "$root.tmp" "$mirror" >"$root.log" 2>&1 || {
	tail -20 "$root.log" >&2; exit 1; }
# Packages install without starting services (there is no init in a chroot anyway).
printf '#!/bin/sh\nexit 101\n' >"$root.tmp/usr/sbin/policy-rc.d"
chmod 0755 "$root.tmp/usr/sbin/policy-rc.d"
chroot "$root.tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	--no-install-recommends $packages >>"$root.log" 2>&1 || {
	tail -20 "$root.log" >&2; exit 1; }
chroot "$root.tmp" apt-get clean
rm -rf "$root"
mv "$root.tmp" "$root"
chroot "$root" dpkg-query -W -f='prosody13-root: prosody ${Version}\n' prosody
touch "$root/.gatehouse-ready"
