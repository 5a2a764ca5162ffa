package main

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The shape of the program, checked so that it cannot drift: a type with
// more than maxMethods methods is two types; package main is the terminal
// side, and stays small; the README is a front door; every event code is
// documented.
const (
	maxMethods       = 30
	maxMainLines     = 2000
	maxReadmeBytes   = 25000
	jsonEventsDoc    = "docs/json-events.md"
	eventCodesSource = "internal/event/codes.go"
)

// goFiles returns the module's non-test Go files, by directory.
func goFiles(t *testing.T) map[string][]string {
	t.Helper()
	files := map[string][]string{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "node_modules") && path != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			files[filepath.Dir(path)] = append(files[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestMethodsPerType: no type in any package has more than maxMethods
// methods.
func TestMethodsPerType(t *testing.T) {
	fset := token.NewFileSet()
	for dir, paths := range goFiles(t) {
		count := map[string]int{}
		for _, path := range paths {
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Recv == nil || len(fd.Recv.List) == 0 {
					continue
				}
				typ := fd.Recv.List[0].Type
				if star, ok := typ.(*ast.StarExpr); ok {
					typ = star.X
				}
				switch x := typ.(type) {
				case *ast.IndexExpr:
					typ = x.X
				case *ast.IndexListExpr:
					typ = x.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					count[id.Name]++
				}
			}
		}
		for typ, n := range count {
			if n > maxMethods {
				t.Errorf("%s: type %s has %d methods, more than %d: it is two types", dir, typ, n, maxMethods)
			}
		}
	}
}

// TestMainIsSmall: package main, the terminal side, has at most
// maxMainLines lines outside its tests.
func TestMainIsSmall(t *testing.T) {
	lines := 0
	for _, path := range goFiles(t)["."] {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines += strings.Count(string(data), "\n")
	}
	t.Logf("package main: %d lines", lines)
	if lines > maxMainLines {
		t.Errorf("package main has %d lines outside its tests, more than %d: move a job into a package of its own", lines, maxMainLines)
	}
}

// TestReadmeIsAFrontDoor: the README stays short enough to read; the rest
// lives in docs/.
func TestReadmeIsAFrontDoor(t *testing.T) {
	fi, err := os.Stat("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > maxReadmeBytes {
		t.Errorf("README.md is %d bytes, more than %d: move the details to docs/", fi.Size(), maxReadmeBytes)
	}
}

// TestEveryCodeDocumented: docs/json-events.md lists every event code, and
// no code that does not exist.
func TestEveryCodeDocumented(t *testing.T) {
	src, err := os.ReadFile(eventCodesSource)
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+\w+\s+Code = "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		codes[m[1]] = true
	}
	if len(codes) == 0 {
		t.Fatalf("no codes found in %s", eventCodesSource)
	}
	doc, err := os.Open(jsonEventsDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer doc.Close()
	documented := map[string]bool{}
	row := regexp.MustCompile("^\\|\\s*`([a-z_]+)`\\s*\\|")
	sc := bufio.NewScanner(doc)
	inCodes := false
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "## ") {
			inCodes = sc.Text() == "## Codes"
		}
		if m := row.FindStringSubmatch(sc.Text()); inCodes && m != nil && m[1] != "code" {
			documented[m[1]] = true
		}
	}
	for c := range codes {
		if !documented[c] {
			t.Errorf("code %s is not in the table of %s", c, jsonEventsDoc)
		}
	}
	for c := range documented {
		if !codes[c] {
			t.Errorf("%s lists %s, which is not a code", jsonEventsDoc, c)
		}
	}
}
