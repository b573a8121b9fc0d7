// Package sprout stands in for github.com/go-sprout/sprout v0.4, the function library jitsi/tpl
// imports, which Debian does not package. sprout v0.4 is the maintained fork of sprig v3 and keeps
// sprig's function names and signatures; Debian packages sprig v3
// (golang-github-masterminds-sprig-dev), so this forwards to it. Every function
// docker-jitsi-meet's Prosody templates call (default, toBool from tpl itself, splitList, compact,
// join, split, splitn, trimPrefix, trimSuffix, add, eq/ne/and/or/not/index built into
// text/template) has the same behaviour in both.
package sprout

import (
	"text/template"

	// Debian installs sprig v3 at its GOPATH import path, without /v3.
	sprig "github.com/Masterminds/sprig"
)

// TxtFuncMap returns the text/template function map, as sprout.TxtFuncMap does.
func TxtFuncMap() template.FuncMap {
	return sprig.TxtFuncMap()
}
