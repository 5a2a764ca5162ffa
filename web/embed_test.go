package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestBundleIsFresh fails when the committed bundle (dist/) is older than
// its sources: the build records the SHA-256 of its sources in
// dist/sources.sha256 (see README.md), and this recomputes it. After a
// change under web/, run `make web` and commit dist/ with it.
func TestBundleIsFresh(t *testing.T) {
	paths := []string{"index.html", "package.json", "package-lock.json", "build.mjs"}
	err := filepath.WalkDir("src", func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, filepath.ToSlash(path))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(paths)
	h := sha256.New()
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(p))
		h.Write([]byte{0})
		h.Write(b)
	}
	want, err := os.ReadFile("dist/sources.sha256")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.TrimSpace(string(want)) {
		t.Errorf("dist/ was built from other sources (sources %s, dist/sources.sha256 %s): run make web and commit dist/",
			got, strings.TrimSpace(string(want)))
	}
}

// TestDistServed: the files the binary serves are in the bundle.
func TestDistServed(t *testing.T) {
	for _, name := range []string{"index.html", "app.js"} {
		b, err := fs.ReadFile(Dist, name)
		if err != nil || len(b) == 0 {
			t.Errorf("%s: %d bytes, %v", name, len(b), err)
		}
	}
}
