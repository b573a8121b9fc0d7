#!/bin/sh
# Builds jitsi/tpl, the renderer docker-jitsi-meet's images run on their config templates, from
# its unmodified source in ../shared/upstream/tpl, offline: Debian's golang-go and
# golang-github-masterminds-sprig-dev (GOPATH mode over /usr/share/gocode), with sprout/ here
# standing in for the one dependency Debian lacks (see sprout/sprout.go).
# Usage: build-tpl.sh OUT (the binary to write)
set -eu
out=${1:?usage: $0 OUT}
here=$(cd "$(dirname "$0")" && pwd)
upstream=$(cd "$here/../../../../shared/upstream/tpl" && pwd)
command -v go >/dev/null 2>&1 || { echo "build-tpl: go not found (apt-get install golang-go)" >&2; exit 1; }
test -d /usr/share/gocode/src/github.com/Masterminds/sprig || {
	echo "build-tpl: sprig not found (apt-get install golang-github-masterminds-sprig-dev)" >&2; exit 1; }

gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/github.com/jitsi/tpl" "$gopath/src/github.com/go-sprout"
# tpl's own files are linked, not copied: what builds is exactly upstream's main.go and func.go.
ln -s "$upstream/main.go" "$upstream/func.go" "$gopath/src/github.com/jitsi/tpl/"
ln -s "$here/sprout" "$gopath/src/github.com/go-sprout/sprout"
mkdir -p "$(dirname "$out")"
out=$(cd "$(dirname "$out")" && pwd)/$(basename "$out")
cd "$gopath/src/github.com/jitsi/tpl"
# GOPATH mode: no module proxy, no network (sprig's own /v3 imports resolve to Debian's directories
# through Go's minimal module compatibility). GOCACHE stays in the scratch dir: nothing is left.
GO111MODULE=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" GOCACHE="$gopath/cache" \
	go build -o "$out" .
echo "$out"
