package gossiproom

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// maxMethods is the project's rule: a type with more methods than this
// does more than one job and is to be split.
const maxMethods = 30

// Every type of the package keeps to maxMethods. Methods are counted per
// receiver base type, pointer and value receivers together, over the
// package's non-test files.
func TestMethodsPerType(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	count := map[string]int{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv != nil && len(fn.Recv.List) == 1 {
				count[receiverType(fn.Recv.List[0].Type)]++
			}
		}
	}
	if len(count) == 0 {
		t.Fatal("found no methods: is the test running in the package's directory?")
	}
	for typ, n := range count {
		if n > maxMethods {
			t.Errorf("type %s has %d methods, more than %d: split it by job", typ, n, maxMethods)
		}
	}
}

// receiverType returns the name of a receiver's base type: T for T, *T,
// T[K] and (*T).
func receiverType(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.ParenExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.IndexListExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return "?"
		}
	}
}
