package etchosts

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork/types"
)

const defaults = "127.0.0.1\tlocalhost\n" +
	"::1\tlocalhost ip6-localhost ip6-loopback\n" +
	"fe00::0\tip6-localnet\n" +
	"ff00::0\tip6-mcastprefix\n" +
	"ff02::1\tip6-allnodes\n" +
	"ff02::2\tip6-allrouters\n"

func rec(ip string, names ...string) Record {
	return Record{IP: netip.MustParseAddr(ip), Names: names}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func checkMode(t *testing.T, p string) {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != FileMode {
		t.Errorf("%s mode = %v, want %v", p, st.Mode().Perm(), FileMode)
	}
}

func TestBuild(t *testing.T) {
	tests := []struct {
		name       string
		extra, own []Record
		want       string
	}{
		{name: "defaults only", want: defaults},
		{
			name:  "extra and own",
			extra: []Record{rec("192.0.2.10", "db.example"), rec("2001:db8::1", "v6host")},
			own:   []Record{rec("172.18.0.2", "c1.example.com", "c1"), rec("fd00::2", "c1.example.com", "c1")},
			want: defaults + "192.0.2.10\tdb.example\n2001:db8::1\tv6host\n" +
				"172.18.0.2\tc1.example.com c1\nfd00::2\tc1.example.com c1\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "hosts")
			if err := New(p).Build(tc.extra, tc.own); err != nil {
				t.Fatal(err)
			}
			if got := read(t, p); got != tc.want {
				t.Errorf("hosts:\n%q\nwant:\n%q", got, tc.want)
			}
			checkMode(t, p)
		})
	}
}

func TestBuildReplacesAndValidates(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	if err := os.WriteFile(p, []byte("old junk\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f := New(p)
	if err := f.Build(nil, []Record{{IP: netip.MustParseAddr("10.0.0.1")}}); !types.IsBadRequest(err) {
		t.Fatalf("Build with a nameless record: %v, want BadRequest", err)
	}
	if got := read(t, p); got != "old junk\n" {
		t.Fatalf("failed Build changed the file: %q", got)
	}
	if err := f.Build(nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != defaults {
		t.Fatalf("Build did not replace the file: %q", got)
	}
	checkMode(t, p)
}

func TestAddDelete(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	f := New(p)
	if err := f.Build(nil, nil); err != nil {
		t.Fatal(err)
	}
	c1 := rec("172.18.0.2", "c1.example.com", "c1")
	c1v6 := rec("fd00::2", "c1.example.com", "c1")
	if err := f.Add(c1, c1v6); err != nil {
		t.Fatal(err)
	}
	want := defaults + "172.18.0.2\tc1.example.com c1\nfd00::2\tc1.example.com c1\n"
	if got := read(t, p); got != want {
		t.Fatalf("after Add:\n%q\nwant:\n%q", got, want)
	}
	checkMode(t, p)
	if err := f.Delete(c1, c1v6); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != defaults {
		t.Fatalf("after Delete:\n%q", got)
	}
}

// Upstream deleted every line ending in "\t<name>", so removing "foo" also
// removed "barfoo"'s line and user lines. Delete here matches whole records.
func TestDeleteIsExact(t *testing.T) {
	user := defaults +
		"10.0.0.9\tfoo\n" + // user's own line for foo, different address
		"172.18.0.2 foo\n" + // user's line, same record but space-separated
		"172.18.0.2\tfoo # pinned\n" + // user's line with a comment
		"172.18.0.2\tfoo.example foo\n" // same address, more names
	tests := []struct {
		name string
		add  []Record
		del  []Record
		want string // content after Delete, appended to user
	}{
		{name: "suffix name", add: []Record{rec("172.18.0.2", "foo"), rec("172.18.0.3", "barfoo")}, del: []Record{rec("172.18.0.2", "foo")}, want: "172.18.0.3\tbarfoo\n"},
		{name: "prefix name", add: []Record{rec("172.18.0.2", "foo"), rec("172.18.0.3", "foobar")}, del: []Record{rec("172.18.0.2", "foo")}, want: "172.18.0.3\tfoobar\n"},
		{name: "same names other ip", add: []Record{rec("172.18.0.2", "foo"), rec("172.18.0.4", "foo")}, del: []Record{rec("172.18.0.4", "foo")}, want: "172.18.0.2\tfoo\n"},
		{name: "ip prefix", add: []Record{rec("172.18.0.2", "foo"), rec("172.18.0.22", "foo")}, del: []Record{rec("172.18.0.2", "foo")}, want: "172.18.0.22\tfoo\n"},
		{name: "subset of names", add: []Record{rec("172.18.0.5", "a.example", "a")}, del: []Record{rec("172.18.0.5", "a")}, want: "172.18.0.5\ta.example a\n"},
		{name: "names in other order", add: []Record{rec("172.18.0.5", "a.example", "a")}, del: []Record{rec("172.18.0.5", "a", "a.example")}, want: "172.18.0.5\ta.example a\n"},
		{name: "not present", del: []Record{rec("172.18.0.7", "nobody")}},
		{name: "duplicate add, one delete", add: []Record{rec("172.18.0.2", "foo"), rec("172.18.0.2", "foo")}, del: []Record{rec("172.18.0.2", "foo")}, want: "172.18.0.2\tfoo\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "hosts")
			if err := os.WriteFile(p, []byte(user), 0o644); err != nil {
				t.Fatal(err)
			}
			f := New(p)
			if err := f.Add(tc.add...); err != nil {
				t.Fatal(err)
			}
			if err := f.Delete(tc.del...); err != nil {
				t.Fatal(err)
			}
			if got := read(t, p); got != user+tc.want {
				t.Errorf("hosts:\n%q\nwant:\n%q", got, user+tc.want)
			}
		})
	}
}

// Delete takes the last matching line: when the user already had the exact
// line, the one Add appended goes and the user's stays where it was.
func TestDeleteKeepsUsersIdenticalLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	orig := "172.18.0.2\tfoo\n# user comment\n"
	if err := os.WriteFile(p, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	f := New(p)
	r := rec("172.18.0.2", "foo")
	if err := f.Add(r); err != nil {
		t.Fatal(err)
	}
	if err := f.Delete(r); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != orig {
		t.Fatalf("got %q, want %q", got, orig)
	}
}

func TestAddMissingFileAndNoTrailingNewline(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hosts")
	f := New(p)
	// Deleting from a missing file is "already gone".
	if err := f.Delete(rec("10.0.0.1", "a")); err != nil {
		t.Fatalf("Delete on a missing file: %v", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("Delete created the file: %v", err)
	}
	if err := f.Add(rec("10.0.0.1", "a")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "10.0.0.1\ta\n" {
		t.Fatalf("got %q", got)
	}
	checkMode(t, p)

	if err := os.WriteFile(p, []byte("10.0.0.9\tuser"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(rec("10.0.0.1", "a")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, p); got != "10.0.0.9\tuser\n10.0.0.1\ta\n" {
		t.Fatalf("got %q", got)
	}
}

func TestInvalidRecords(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hosts")
	f := New(p)
	bad := []Record{
		{Names: []string{"a"}}, // zero address
		{IP: netip.MustParseAddr("10.0.0.1")},
		rec("10.0.0.1", ""),
		rec("10.0.0.1", "a b"),
		rec("10.0.0.1", "a\nb"),
		rec("10.0.0.1", "a#b"),
		rec("10.0.0.1", "a\tb"),
		rec("10.0.0.1", "\xff"),
		{IP: netip.MustParseAddr("fe80::1").WithZone("eth0 x"), Names: []string{"a"}},
	}
	for _, r := range bad {
		if err := f.Add(r); !types.IsBadRequest(err) {
			t.Errorf("Add(%q) error = %v, want BadRequest", r.String(), err)
		}
		if err := f.Add(rec("10.0.0.1", "ok"), r); !types.IsBadRequest(err) {
			t.Errorf("Add(ok, %q) error = %v, want BadRequest", r.String(), err)
		}
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatalf("a rejected Add wrote the file: %v", err)
	}
}

func TestWriteErrors(t *testing.T) {
	f := New(filepath.Join(t.TempDir(), "missing-dir", "hosts"))
	if err := f.Add(rec("10.0.0.1", "a")); !types.IsInternal(err) {
		t.Fatalf("Add into a missing directory: %v, want Internal", err)
	}
	if err := f.Build(nil, nil); !types.IsInternal(err) {
		t.Fatalf("Build into a missing directory: %v, want Internal", err)
	}
}

// Concurrent Add/Delete on one File must lose nothing; run under -race.
func TestConcurrentAddDelete(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "hosts")
	f := New(p)
	if err := f.Build(nil, nil); err != nil {
		t.Fatal(err)
	}
	const n = 40
	recs := make([]Record, n)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("10.1.%d.%d", i/250, i%250+1), fmt.Sprintf("c%d.example", i), fmt.Sprintf("c%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range recs {
		wg.Go(func() {
			if err := f.Add(recs[i]); err != nil {
				errs <- err
				return
			}
			// Every even record is removed again by its own goroutine.
			if i%2 == 0 {
				if err := f.Delete(recs[i]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(read(t, p), "\n"), "\n")
	var want []string
	for _, l := range strings.Split(strings.TrimSuffix(defaults, "\n"), "\n") {
		want = append(want, l)
	}
	for i := 1; i < n; i += 2 {
		want = append(want, recs[i].String())
	}
	if !slices.Equal(got[:len(defaultLines)], want[:len(defaultLines)]) {
		t.Fatalf("default lines changed: %q", got)
	}
	gotRecs, wantRecs := slices.Sorted(slices.Values(got[len(defaultLines):])), slices.Sorted(slices.Values(want[len(defaultLines):]))
	if !slices.Equal(gotRecs, wantRecs) {
		t.Fatalf("records:\n%q\nwant:\n%q", gotRecs, wantRecs)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("directory holds %d entries (temp files left?), %v", len(ents), err)
	}
	checkMode(t, p)
}

// Build, Add and Delete write the same inode: a holder of the file opened
// before (a runtime's bind mount) reads every change.
func TestChangesKeepInode(t *testing.T) {
	f := New(filepath.Join(t.TempDir(), "hosts"))
	if err := f.Build(nil, nil); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(f.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	read := func() string {
		b := make([]byte, 4096)
		n, _ := held.ReadAt(b, 0)
		return string(b[:n])
	}
	r := Record{IP: netip.MustParseAddr("10.0.0.5"), Names: []string{"web"}}
	if err := f.Add(r); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != defaults+"10.0.0.5\tweb\n" {
		t.Fatalf("after Add the held file reads %q", got)
	}
	if err := f.Delete(r); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != defaults {
		t.Fatalf("after Delete the held file reads %q", got)
	}
	if err := f.Build([]Record{r}, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != defaults+"10.0.0.5\tweb\n" {
		t.Fatalf("after Build the held file reads %q", got)
	}
}

// A container's own line carries its fully qualified name and the short name
// before the first dot, whether the domain came separately or inside the
// hostname.
func TestNames(t *testing.T) {
	for _, tc := range []struct {
		host, domain string
		want         []string
	}{
		{"box", "", []string{"box"}},
		{"box", "example.com", []string{"box.example.com", "box"}},
		{"box", ".example.com", []string{"box.example.com", "box"}},
		{"somehost.example.com", "", []string{"somehost.example.com", "somehost"}},
		{"a.b", "example.com", []string{"a.b.example.com", "a"}},
	} {
		if got := Names(tc.host, tc.domain); !slices.Equal(got, tc.want) {
			t.Errorf("Names(%q, %q) = %q, want %q", tc.host, tc.domain, got, tc.want)
		}
	}
}
