package names

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/opencnm/libnetwork/types"
)

// hostile are values that must never pass as an ID or an interface name.
var hostile = []string{
	"", "+", "br-+", "eth+", "a+b", "br%d", "%", "a\x00b", "a\"b", "a'b", "a`b", `a\b`,
	"a#b", "a b", " a", "a ", "a\tb", "a\nb", "a\rb", "a\x7fb", "a\u0085b", "a\u200bb",
	"a\xffb", "\xc3", "a/b", "/", "../x", ".", "..", ".a", "-a", "a!b", "!a", "a:b",
	"a*b", "a;b", "a$b", "a|b", "a&b", "a>b", "a,b", "a=b", "a@b", "a~b", "a(b)",
	"a{b}", "a[b]", "café", "ａ", "a\u00a0b",
	// What iptables would read as an option or a target in an -i/-o match.
	"-j", "--goto", "-", "..x",
}

func TestHostileNames(t *testing.T) {
	for _, v := range hostile {
		if err := ID(v); !types.IsBadRequest(err) {
			t.Errorf("ID(%q) = %v, want BadRequest", v, err)
		}
		if err := Iface(v); !types.IsBadRequest(err) {
			t.Errorf("Iface(%q) = %v, want BadRequest", v, err)
		}
		if err := IfacePrefix(v); !types.IsBadRequest(err) {
			t.Errorf("IfacePrefix(%q) = %v, want BadRequest", v, err)
		}
	}
	long := strings.Repeat("a", MaxIDLen+1)
	if err := ID(long); !types.IsBadRequest(err) {
		t.Errorf("ID of %d bytes = %v, want BadRequest", len(long), err)
	}
	if err := Iface("abcdefghijklmnop"); !types.IsBadRequest(err) {
		t.Errorf("Iface of 16 bytes = %v, want BadRequest", err)
	}
	if err := IfacePrefix("abcdefghijkl0"); !types.IsBadRequest(err) {
		t.Errorf("IfacePrefix of 13 bytes = %v, want BadRequest", err)
	}
}

func TestGoodNames(t *testing.T) {
	for _, v := range []string{"a", "0", "a.b", "a_b", "a-b", "network1", strings.Repeat("ab", 32), "A.B_C-D"} {
		if err := ID(v); err != nil {
			t.Errorf("ID(%q) = %v", v, err)
		}
	}
	for _, v := range []string{"docker0", "br-0123456789ab", "eth", "_x", "br.100", "a_b-c.d", "abcdefghijklmno"} {
		if err := Iface(v); err != nil {
			t.Errorf("Iface(%q) = %v", v, err)
		}
	}
	if err := IfacePrefix("abcdefghijkl"); err != nil {
		t.Errorf("IfacePrefix of 12 bytes: %v", err)
	}
}

func TestTag(t *testing.T) {
	hex := strings.Repeat("0123456789abcdef", 4)
	for id, want := range map[string]string{
		hex: hex, "a-b": "a-b", "a.b": "a_2eb", "a_b": "a_5fb", "a_2eb": "a_5f2eb", "A": "A",
	} {
		if got := Tag(id); got != want {
			t.Errorf("Tag(%q) = %q, want %q", id, got, want)
		}
	}
	worst := strings.Repeat("_", MaxIDLen)
	if n := len(Tag(worst)); n != 3*MaxIDLen {
		t.Errorf("worst-case tag is %d bytes, want %d", n, 3*MaxIDLen)
	}
}

// untag inverts Tag, proving it loses nothing: ok is false for a string
// Tag never makes.
func untag(tag string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		switch {
		case alnum(c) || c == '-':
			b.WriteByte(c)
		case c == '_' && i+2 < len(tag):
			v, err := strconv.ParseUint(tag[i+1:i+3], 16, 8)
			if err != nil || strings.ToLower(tag[i+1:i+3]) != tag[i+1:i+3] || alnum(byte(v)) || v == '-' {
				return "", false
			}
			b.WriteByte(byte(v))
			i += 2
		default:
			return "", false
		}
	}
	return b.String(), true
}

// FuzzNames: whatever the input, the validators never panic, whatever
// they accept is made only of the allowed bytes and within its length,
// and Tag is reversible (so injective) and carries only characters
// iptables prints unquoted. The seed corpus runs as part of go test.
func FuzzNames(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	for _, s := range []string{"a.b", "a_b", "a-b", "a_2eb", "docker0", strings.Repeat("f", 64), strings.Repeat("f", 65), "br-+", "eth%d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		check := func(what string, err error, max int, first func(byte) bool) {
			if err != nil {
				if !types.IsBadRequest(err) {
					t.Fatalf("%s(%q): error %v is not BadRequest", what, s, err)
				}
				return
			}
			if len(s) == 0 || len(s) > max || !first(s[0]) || !utf8.ValidString(s) {
				t.Fatalf("%s accepted %q", what, s)
			}
			for _, r := range s {
				if !nameChar(r) {
					t.Fatalf("%s accepted %q with %q", what, s, r)
				}
			}
		}
		check("ID", ID(s), MaxIDLen, alnum)
		ifaceFirst := func(c byte) bool { return alnum(c) || c == '_' }
		check("Iface", Iface(s), MaxIfaceLen, ifaceFirst)
		check("IfacePrefix", IfacePrefix(s), MaxIfaceLen-3, ifaceFirst)

		tag := Tag(s)
		if back, ok := untag(tag); !ok || back != s {
			t.Fatalf("Tag(%q) = %q decodes to %q, %v", s, tag, back, ok)
		}
		for i := 0; i < len(tag); i++ {
			if c := tag[i]; !alnum(c) && c != '-' && c != '_' {
				t.Fatalf("Tag(%q) = %q has %q, which iptables would quote", s, tag, c)
			}
		}
		if ID(s) == nil && len(tag) > 3*MaxIDLen {
			t.Fatalf("Tag of valid ID %q is %d bytes", s, len(tag))
		}
	})
}
