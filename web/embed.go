// Package web holds the room's page (-web): its sources (src/, index.html,
// built with esbuild by `make web`) and the built files in dist/, which
// are committed and embedded in the binary, so that neither `make run` nor
// `make test` needs Node. See README.md.
package web

import (
	"embed"
	"io/fs"
)

//go:embed dist/index.html dist/app.js dist/sources.sha256
var dist embed.FS

// Dist is the built page: index.html and app.js.
var Dist = func() fs.FS {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		panic(err) // the embed above names the files: it cannot fail
	}
	return sub
}()
