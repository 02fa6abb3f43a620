package bridge

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
)

// nonDefault returns a valid value for the option at ptr (of a freshly
// parsed default config) that differs from the default, as a label string.
func nonDefault(t *testing.T, name string, ptr any) string {
	t.Helper()
	switch p := ptr.(type) {
	case *bool:
		return strconv.FormatBool(!*p)
	case *int:
		return "1400"
	case *string:
		switch {
		case strings.Contains(name, "Prefix") || strings.HasSuffix(name, "prefix"):
			return "ctr"
		case strings.Contains(name, "GatewayMode") || strings.Contains(name, "gateway_mode"):
			return "nat-unprotected"
		case strings.Contains(name, "Trusted") || strings.Contains(name, "trusted"):
			return "eth3"
		}
		return "walkbr"
	case *net.IP:
		return "192.0.2.9"
	}
	t.Fatalf("option %s: no value for %T", name, ptr)
	return ""
}

// Every network option of the bridge, by label and by field name, and
// every driver option, changes the parsed configuration when set; every
// exported option key of the package is one of them, or a key checked
// elsewhere (named here). A new key without that fails.
func TestEveryBridgeOptionParsed(t *testing.T) {
	base := func() map[string]any { return map[string]any{netlabel.EnableIPv6: true} } // so EnableIPv4=false is valid
	defV6, err := parseNetworkOptions(testNID, base())
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]bool{}
	for _, s := range networkOptSpecs {
		labels[s.label] = true
		v := nonDefault(t, s.field, s.ptr(defV6))
		for _, key := range []string{s.label, s.field} {
			opts := base()
			opts[netlabel.GenericData] = map[string]string{key: v}
			if key == s.field {
				opts[netlabel.GenericData] = options.Generic{key: v}
			}
			got, err := parseNetworkOptions(testNID, opts)
			if err != nil {
				t.Fatalf("%s=%s: %v", key, v, err)
			}
			if reflect.DeepEqual(got, defV6) {
				t.Errorf("%s=%s leaves the parsed network config unchanged", key, v)
			}
		}
	}

	dc, err := parseDriverConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	rv := reflect.ValueOf(&dc).Elem()
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Type().Field(i)
		v := nonDefault(t, f.Name, rv.Field(i).Addr().Interface())
		for _, cfg := range []map[string]any{
			{netlabel.GenericData: map[string]string{f.Name: v}},
			{LabelPrefix + f.Name: v},
		} {
			got, err := parseDriverConfig(cfg)
			if err != nil {
				t.Fatalf("driver option %s=%s: %v", f.Name, v, err)
			}
			if got == dc {
				t.Errorf("driver option %s=%s (%v) leaves the parsed driver config unchanged", f.Name, v, cfg)
			}
		}
	}

	// Exported string constants of the package that are option keys.
	checkedElsewhere := map[string]string{
		"LabelPrefix":     "driver options by daemon label: the loop above",
		"ParentEndpoints": "link option: TestLinkOptions, and TestLegacyLinksICCOff in the kernel",
		"ChildEndpoints":  "link option: TestLinkOptions, and TestLegacyLinksICCOff in the kernel",
		"NetworkType":     "the driver's name, no option",
		"TriggerEvent":    "a log field value of firewall repairs, no option",
		"TriggerPeriodic": "a log field value of firewall repairs, no option",
		"TriggerFallback": "a log field value of firewall repairs, no option",
		"TriggerDemand":   "a log field value of firewall repairs, no option",
		"TriggerRetry":    "a log field value of firewall repairs, no option",
	}
	values := map[string]string{
		"BridgeName": BridgeName, "EnableIPMasquerade": EnableIPMasquerade, "EnableICC": EnableICC,
		"InhibitIPv4": InhibitIPv4, "DefaultBindingIP": DefaultBindingIP, "DefaultBridge": DefaultBridge,
		"GatewayModeIPv4": GatewayModeIPv4, "GatewayModeIPv6": GatewayModeIPv6, "TrustedHostInterfaces": TrustedHostInterfaces,
	}
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi fs.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, s := range g.Specs {
					vs := s.(*ast.ValueSpec)
					for i, n := range vs.Names {
						if !n.IsExported() || i >= len(vs.Values) || !isStringConst(vs.Values[i]) {
							continue
						}
						if _, ok := checkedElsewhere[n.Name]; ok {
							continue
						}
						v, ok := values[n.Name]
						if !ok {
							t.Errorf("bridge.%s: an exported key with no check", n.Name)
						} else if !labels[v] {
							t.Errorf("bridge.%s (%s) is not a parsed network option", n.Name, v)
						}
					}
				}
			}
		}
	}
}

// isStringConst reports a string literal, a netlabel constant, or a + of
// them and identifiers (the shapes of label keys); numeric constants are
// not option keys.
func isStringConst(e ast.Expr) bool {
	switch x := e.(type) {
	case *ast.BasicLit:
		return x.Kind == token.STRING
	case *ast.SelectorExpr:
		pkg, ok := x.X.(*ast.Ident)
		return ok && pkg.Name == "netlabel"
	case *ast.BinaryExpr:
		return isStringConst(x.X) || isStringConst(x.Y)
	}
	return false
}

// The link options are read from a join's GenericData, as options.Generic
// or map[string]any; a wrong type is a BadRequest.
func TestLinkOptions(t *testing.T) {
	for _, g := range []any{
		options.Generic{ParentEndpoints: []string{"p"}, ChildEndpoints: []string{"c"}},
		map[string]any{ParentEndpoints: []string{"p"}, ChildEndpoints: []string{"c"}},
	} {
		p, c, err := linkOptions("join", map[string]any{netlabel.GenericData: g})
		if err != nil || len(p) != 1 || p[0] != "p" || len(c) != 1 || c[0] != "c" {
			t.Fatalf("%T: parents %v children %v err %v", g, p, c, err)
		}
	}
	if _, _, err := linkOptions("join", map[string]any{netlabel.GenericData: options.Generic{ChildEndpoints: "c"}}); err == nil {
		t.Fatal("a string for ChildEndpoints was accepted")
	}
}
