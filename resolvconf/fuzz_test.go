package resolvconf

import (
	"slices"
	"strings"
	"testing"
)

// FuzzBuild feeds arbitrary host files and overrides through Parse and Build.
// Properties: no panic; a successful build parses back to a file whose
// nameservers are exactly what Build promised (embedded address first in
// embedded mode, never a loopback taken from the host), and building from the
// result again is stable.
func FuzzBuild(f *testing.F) {
	f.Add(pommes, "", "", "", true, false)
	f.Add(pommes, "", "", "", true, true)
	f.Add("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n", "", ".", "", false, false)
	f.Add("nameserver 127.0.0.1\nnameserver ::1\n# c\n; d\ndomain x\n", "10.0.0.1 ::1", "a b", "ndots:3 rotate", true, true)
	f.Add("options ndots:x\nsortlist 1.2.3.4\n", "", "", "ndots:-1", true, false)
	f.Fuzz(func(t *testing.T, host, dns, search, opts string, embedded, ipv6 bool) {
		origin := Parse([]byte(host))
		o := Overrides{Nameservers: strings.Fields(dns), Search: strings.Fields(search), Options: strings.Fields(opts)}
		s := Settings{Embedded: embedded, IPv6: ipv6}
		content, ext, err := Build(origin, o, s)
		if err != nil {
			return
		}
		got := Parse(content)
		ns := got.Nameservers()
		if embedded {
			if len(ns) == 0 || ns[0].String() != EmbeddedNameserver {
				t.Fatalf("embedded file does not start with %s: %q", EmbeddedNameserver, content)
			}
			if !slices.ContainsFunc(got.Options(), func(o string) bool { return strings.HasPrefix(o, "ndots:") }) {
				t.Fatalf("embedded file without ndots: %q", content)
			}
			ns = ns[1:]
		}
		for _, a := range ns {
			if len(o.Nameservers) == 0 && isLoopback(a) {
				t.Fatalf("host loopback %s written to the sandbox: %q", a, content)
			}
			if !ipv6 && isIPv6(a) && (embedded || len(o.Nameservers) == 0) {
				t.Fatalf("IPv6 server %s written without IPv6: %q", a, content)
			}
		}
		for _, e := range ext {
			if e.HostLoopback != isLoopback(e.Addr) {
				t.Fatalf("ext server %+v flagged wrongly", e)
			}
		}
		// Rebuilding a non-embedded result with the same settings changes nothing.
		if !embedded && len(o.Nameservers) == 0 {
			again, _, err := Build(got, Overrides{}, s)
			if err != nil {
				t.Fatalf("rebuild: %v", err)
			}
			if string(again) != string(content) {
				t.Fatalf("rebuild not stable:\n%q\n%q", content, again)
			}
		}
	})
}
