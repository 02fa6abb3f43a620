package resolvconf

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork/types"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		ns      []netip.Addr
		search  []string
		options []string
	}{
		{name: "empty"},
		{
			name: "basic",
			in:   "nameserver 1.2.3.4\nnameserver 2001:db8::1\nsearch a.example b.example\noptions ndots:2 rotate\n",
			ns:   addrs("1.2.3.4", "2001:db8::1"), search: []string{"a.example", "b.example"}, options: []string{"ndots:2", "rotate"},
		},
		{
			name: "comments hash and semicolon, whole line and trailing",
			in:   "# nameserver 9.9.9.9\n; nameserver 8.8.8.8\nnameserver 1.1.1.1 # trailing\nsearch x.example ; y.example\n",
			ns:   addrs("1.1.1.1"), search: []string{"x.example"},
		},
		{
			name: "last search and options line wins, nameservers accumulate",
			in:   "search a\noptions rotate\nnameserver 1.1.1.1\nsearch b c\noptions ndots:3\nnameserver 2.2.2.2\n",
			ns:   addrs("1.1.1.1", "2.2.2.2"), search: []string{"b", "c"}, options: []string{"ndots:3"},
		},
		{
			name:   "domain counts as search, last one wins",
			in:     "search a b\ndomain c\n",
			search: []string{"c"},
		},
		{
			name: "tabs, CRLF, blank lines, bad addresses skipped",
			in:   "\r\n\tnameserver\t10.0.0.1\r\nnameserver\nnameserver not-an-ip\nnameserver fe80::1%eth0\n",
			ns:   addrs("10.0.0.1", "fe80::1%eth0"),
		},
		{
			name: "no trailing newline",
			in:   "nameserver 10.0.0.1",
			ns:   addrs("10.0.0.1"),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Parse([]byte(tc.in))
			if got := f.Nameservers(); !slices.Equal(got, tc.ns) {
				t.Errorf("Nameservers() = %v, want %v", got, tc.ns)
			}
			if got := f.Search(); !slices.Equal(got, tc.search) {
				t.Errorf("Search() = %q, want %q", got, tc.search)
			}
			if got := f.Options(); !slices.Equal(got, tc.options) {
				t.Errorf("Options() = %q, want %q", got, tc.options)
			}
		})
	}
}

func TestParseAccessorsReturnCopies(t *testing.T) {
	f := Parse([]byte("search a\nnameserver 1.1.1.1\noptions x\n"))
	f.Search()[0] = "changed"
	f.Options()[0] = "changed"
	f.Nameservers()[0] = netip.MustParseAddr("9.9.9.9")
	if f.Search()[0] != "a" || f.Options()[0] != "x" || f.Nameservers()[0].String() != "1.1.1.1" {
		t.Fatal("accessors let a caller change the parsed file")
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(p, []byte("nameserver 10.1.2.3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Nameservers(); !slices.Equal(got, addrs("10.1.2.3")) {
		t.Fatalf("Nameservers() = %v", got)
	}

	_, err = Load(filepath.Join(dir, "missing"))
	if !types.IsNotFound(err) || !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) error = %v, want NotFound wrapping fs.ErrNotExist", err)
	}
}

func TestPath(t *testing.T) {
	tests := []struct {
		name       string
		host       string // "" = no host file
		systemd    bool   // systemd-resolved's file exists
		wantSystem bool
	}{
		{name: "stub only -> systemd file", host: "nameserver 127.0.0.53\nsearch lan\noptions edns0 trust-ad\n", systemd: true, wantSystem: true},
		{name: "stub only but no systemd file", host: "nameserver 127.0.0.53\n", wantSystem: false},
		{name: "stub plus another server", host: "nameserver 127.0.0.53\nnameserver 10.0.0.1\n", systemd: true},
		{name: "other loopback", host: "nameserver 127.0.0.1\n", systemd: true},
		{name: "commented stub", host: "# nameserver 127.0.0.53\nnameserver 10.0.0.1\n", systemd: true},
		{name: "no host file", systemd: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			host := filepath.Join(dir, "etc-resolv.conf")
			sysd := filepath.Join(dir, "run-resolv.conf")
			if tc.host != "" {
				if err := os.WriteFile(host, []byte(tc.host), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.systemd {
				if err := os.WriteFile(sysd, []byte("nameserver 192.0.2.1\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := host
			if tc.wantSystem {
				want = sysd
			}
			if got := Path(host, sysd); got != want {
				t.Fatalf("Path() = %q, want %q", got, want)
			}
		})
	}
}

func TestPathDefaults(t *testing.T) {
	// Only the choice of defaults is checked: the result must be one of the
	// two documented paths, whatever the machine's own file says.
	got := Path("", "")
	if got != DefaultPath && got != DefaultSystemdPath {
		t.Fatalf("Path(\"\", \"\") = %q", got)
	}
}

func TestWriteFileAndUserModified(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "resolv.conf")

	// Never written by us: the file is the user's.
	if err := os.WriteFile(p, []byte("nameserver 10.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if mod, err := UserModified(p); err != nil || !mod {
		t.Fatalf("UserModified(no sidecar) = %v, %v; want true", mod, err)
	}

	content := []byte("nameserver 10.0.0.2\n")
	h, err := WriteFile(p, content)
	if err != nil {
		t.Fatal(err)
	}
	if h != Hash(content) || len(h) != len("sha256:")+64 {
		t.Fatalf("hash = %q, want %q", h, Hash(content))
	}
	got, err := os.ReadFile(p)
	if err != nil || string(got) != string(content) {
		t.Fatalf("file = %q, %v", got, err)
	}
	for _, f := range []string{p, p + HashSuffix} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o644 {
			t.Errorf("%s mode = %v, want 0644", f, st.Mode().Perm())
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries, want the file and its sidecar only (temp files left?)", len(ents))
	}

	if mod, err := UserModified(p); err != nil || mod {
		t.Fatalf("UserModified(fresh) = %v, %v; want false", mod, err)
	}

	// Rewrite by us: still ours.
	if _, err := WriteFile(p, []byte("nameserver 10.0.0.3\n")); err != nil {
		t.Fatal(err)
	}
	if mod, _ := UserModified(p); mod {
		t.Fatal("UserModified after our own rewrite = true")
	}

	// A user edit is detected.
	if err := os.WriteFile(p, []byte("nameserver 10.0.0.3\nnameserver 10.9.9.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if mod, err := UserModified(p); err != nil || !mod {
		t.Fatalf("UserModified(edited) = %v, %v; want true", mod, err)
	}

	// A removed file counts as modified (left alone) rather than an error.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if mod, err := UserModified(p); err != nil || !mod {
		t.Fatalf("UserModified(removed) = %v, %v; want true", mod, err)
	}
}

func TestWriteFileErrors(t *testing.T) {
	_, err := WriteFile(filepath.Join(t.TempDir(), "no-such-dir", "resolv.conf"), []byte("x"))
	if !types.IsInternal(err) {
		t.Fatalf("WriteFile into a missing directory: error = %v, want Internal", err)
	}
}

// WriteFile keeps the inode (a bind mount sees the new content), and a
// write interrupted after its pending sidecar leaves the file, old or
// emptied, still ours; a partial or foreign content is the user's.
func TestWriteFileInPlaceAndPending(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if _, err := WriteFile(p, []byte("nameserver 10.0.0.1\n")); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if _, err := WriteFile(p, []byte("nameserver 10.0.0.2\n")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100)
	n, _ := held.ReadAt(b, 0)
	if string(b[:n]) != "nameserver 10.0.0.2\n" {
		t.Fatalf("fd opened before the write reads %q", b[:n])
	}

	old, next := []byte("nameserver 10.0.0.2\n"), []byte("nameserver 10.0.0.3\n")
	pending := Hash(next) + "\n" + Hash(old) + "\n"
	if err := os.WriteFile(p+HashSuffix, []byte(pending), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		content string
		mod     bool
	}{{string(old), false}, {"", false}, {string(next), false}, {"nameserver 10.0.0.3", true}, {"nameserver 10.9.9.9\n", true}} {
		if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if mod, err := UserModified(p); err != nil || mod != tc.mod {
			t.Errorf("UserModified(pending, %q) = %v, %v; want %v", tc.content, mod, err, tc.mod)
		}
	}
	// Once a write completes, an empty file is an edit again.
	if _, err := WriteFile(p, next); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if mod, _ := UserModified(p); !mod {
		t.Error("UserModified(empty after a completed write) = false")
	}
}
