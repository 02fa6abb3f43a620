package options

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The option walk: every label the library defines (the exported
// constants of netlabel) and every option function (network, endpoint,
// sandbox and config options) must have a check here that shows it is
// read: setting it changes what a driver or IPAM driver is given, what
// the controller reports or does, or fails as a BadRequest when invalid.
// A few options are checked by a named test instead (optionTests); the
// walk verifies that test exists and uses the option, which is only as
// good as that test failing when the option is ignored. A
// new label or option without a check fails the walk. The bridge driver's
// own option keys are walked in drivers/bridge (TestEveryBridgeOptionParsed).

// declared lists the exported top-level names in the non-test Go files of
// dir: constants (funcs false) or functions whose name starts with one of
// prefixes.
func declared(t *testing.T, dir string, funcs bool, prefixes ...string) []string {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), dir, func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if funcs && d.Recv == nil && d.Name.IsExported() && slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(d.Name.Name, p) }) {
						out = append(out, d.Name.Name)
					}
				case *ast.GenDecl:
					if funcs || d.Tok != token.CONST {
						continue
					}
					for _, s := range d.Specs {
						for _, n := range s.(*ast.ValueSpec).Names {
							if n.IsExported() {
								out = append(out, n.Name)
							}
						}
					}
				}
			}
		}
	}
	if len(out) == 0 {
		// An empty walk would make every check over it pass.
		t.Fatalf("no declarations found under %s", dir)
	}
	sort.Strings(out)
	return out
}

// moduleRoot is the module's top directory, seen from this package's.
const moduleRoot = "../.."

// testFiles parses the root package's tests and the area tests under
// tests/, where the tests that check an option by name live.
func testFiles(t *testing.T) []*ast.File {
	t.Helper()
	var out []*ast.File
	fset := token.NewFileSet()
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == moduleRoot || path == filepath.Join(moduleRoot, "tests") || filepath.Dir(path) == filepath.Join(moduleRoot, "tests") {
				return nil
			}
			return filepath.SkipDir
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		out = append(out, f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testBodies returns, per test function of the root package and the area
// tests, the package-qualified identifiers its body names.
func testBodies(t *testing.T) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, f := range testFiles(t) {
		{
			for _, d := range f.Decls {
				fd, ok := d.(*ast.FuncDecl)
				if !ok || fd.Recv != nil || fd.Body == nil {
					continue
				}
				ids := map[string]bool{}
				ast.Inspect(fd.Body, func(n ast.Node) bool {
					switch x := n.(type) {
					case *ast.SelectorExpr:
						if pkg, ok := x.X.(*ast.Ident); ok {
							ids[pkg.Name+"."+x.Sel.Name] = true
						}
					}
					return true
				})
				if out[fd.Name.Name] == nil {
					out[fd.Name.Name] = ids
				}
			}
		}
	}
	return out
}

// referencesOutside reports the non-test files outside netlabel naming
// netlabel.name.
func referencesOutside(t *testing.T, name string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "netlabel" || d.Name() == "testdata" || d.Name() == "testrig" || d.Name() == "tests" || strings.HasPrefix(d.Name(), ".")) && path != moduleRoot {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), "netlabel."+name) {
			hits = append(hits, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

func TestEveryLabelIsRead(t *testing.T) {
	w := newWalkRig(t)
	for _, name := range declared(t, filepath.Join(moduleRoot, "netlabel"), false) {
		check, ok := labelChecks[name]
		reason, skip := notOptions[name]
		switch {
		case ok && skip:
			t.Errorf("netlabel.%s is both checked and listed as no option", name)
		case skip:
			if hits := referencesOutside(t, name); len(hits) > 0 {
				t.Errorf("netlabel.%s is listed as no option (%s) but %v use it: give it a check", name, reason, hits)
			}
		case !ok:
			t.Errorf("netlabel.%s has no check that it is read", name)
		default:
			t.Run(name, func(t *testing.T) { check(t, w) })
		}
	}
}

func TestEveryOptionIsRead(t *testing.T) {
	w := newWalkRig(t)
	bodies := testBodies(t)
	names := declared(t, moduleRoot, true, "NetworkOption", "EndpointOption", "CreateOption", "JoinOption", "Option")
	for _, n := range declared(t, filepath.Join(moduleRoot, "config"), true, "Option") {
		names = append(names, "config."+n)
	}
	for _, name := range names {
		check, ok := optionChecks[name]
		ref, byTest := optionTests[name]
		switch {
		case ok && byTest:
			t.Errorf("%s is both checked here and by %s", name, ref)
		case byTest:
			qual := name
			if !strings.Contains(qual, ".") {
				qual = "libnetwork." + qual
			}
			if ids, found := bodies[ref]; !found {
				t.Errorf("%s: checking test %s does not exist", name, ref)
			} else if !ids[qual] {
				t.Errorf("%s: checking test %s does not use it", name, ref)
			}
		case !ok:
			t.Errorf("%s has no check that it is read", name)
		default:
			t.Run(name, func(t *testing.T) { check(t, w) })
		}
	}
}
