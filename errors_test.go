package communication_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSentinelsListed: every exported sentinel error of the package, in
// whatever file it is declared, is listed in the doc of errors.go's
// sentinel block, so that the doc stays the one place to find them.
func TestSentinelsListed(t *testing.T) {
	t.Parallel()
	var sentinels []string
	var doc string
	for name, f := range packageFiles(t) {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, spec := range g.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if n.IsExported() && strings.HasPrefix(n.Name, "Err") {
						sentinels = append(sentinels, n.Name)
						if name == "errors.go" && g.Doc != nil {
							doc = g.Doc.Text()
						}
					}
				}
			}
		}
	}
	require.NotEmpty(t, sentinels)
	require.NotEmpty(t, doc, "the sentinels of errors.go have no block doc")
	for _, s := range sentinels {
		require.Contains(t, doc, "["+s+"]", "%s is not listed in the doc of errors.go's sentinels", s)
	}
}

// packageFiles parses the package's own (non-test) Go files, with their
// comments, by file name, for the tests that check the source itself.
func packageFiles(t *testing.T) map[string]*ast.File {
	t.Helper()
	names, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	files := make(map[string]*ast.File)
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		require.NoError(t, err)
		files[name] = f
	}
	return files
}
