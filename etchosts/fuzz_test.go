package etchosts

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzAddDelete: for any starting file and any record, Add then Delete never
// panics and restores the original content (up to the newline Add puts after
// a last line that lacked one).
func FuzzAddDelete(f *testing.F) {
	f.Add(defaults, "172.18.0.2", "c1.example.com c1", "172.18.0.3", "barfoo")
	f.Add("10.0.0.1\tfoo\n10.0.0.1\tfoo", "10.0.0.1", "foo", "10.0.0.1", "foo")
	f.Add("", "::1", "localhost", "fe80::1%eth0", "x")
	f.Add("\r\n\n#c\n", "1.2.3.4", "a\tb", "1.2.3.4", "a")
	f.Fuzz(func(t *testing.T, orig, ip1, names1, ip2, names2 string) {
		p := filepath.Join(t.TempDir(), "hosts")
		if err := os.WriteFile(p, []byte(orig), 0o644); err != nil {
			t.Fatal(err)
		}
		var recs []Record
		for _, in := range [][2]string{{ip1, names1}, {ip2, names2}} {
			a, err := netip.ParseAddr(in[0])
			if err != nil {
				continue
			}
			recs = append(recs, Record{IP: a, Names: strings.Split(in[1], " ")})
		}
		h := New(p)
		if err := h.Add(recs...); err != nil {
			// Rejected input must leave the file alone.
			if got, _ := os.ReadFile(p); string(got) != orig {
				t.Fatalf("rejected Add changed the file: %v", err)
			}
			return
		}
		if err := h.Delete(recs...); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		want := orig
		if len(recs) > 0 && want != "" && !strings.HasSuffix(want, "\n") {
			want += "\n"
		}
		if string(got) != want {
			t.Fatalf("Add+Delete of %q changed\n%q\ninto\n%q", recs, orig, got)
		}
	})
}
