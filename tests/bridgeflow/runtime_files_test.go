package bridgeflow

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// boundFile is a sandbox file as a runtime's bind mount sees it: an fd
// opened once, read again after every change, which shows the file's
// current content only while the library keeps writing the same inode.
type boundFile struct {
	path string
	f    *os.File
	ino  uint64
}

func bindFile(t *testing.T, path string) *boundFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &boundFile{path: path, f: f, ino: inode(t, path)}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// read returns what the holder of the old fd sees, failing if the path
// now names another file or shows something else.
func (b *boundFile) read(t *testing.T, step string) string {
	t.Helper()
	if ino := inode(t, b.path); ino != b.ino {
		t.Fatalf("%s: %s was replaced (inode %d, bound %d)", step, b.path, ino, b.ino)
	}
	got, err := io.ReadAll(io.NewSectionReader(b.f, 0, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if want := testrig.ReadFile(t, b.path); string(got) != want {
		t.Fatalf("%s: bound %s reads\n%s\nthe path reads\n%s", step, b.path, got, want)
	}
	return string(got)
}

// Every update of a sandbox's hosts and resolv.conf (Join, SetKey, Leave,
// Refresh, Rename, SetKey again) reaches a holder of the file opened before it, as a
// bind mount into a running container is; the files are in a directory
// that did not exist when the sandbox was made.
func TestDNSFilesUpdatedInPlace(t *testing.T) {
	t.Parallel()
	c, _ := testrig.NewPrivController(t)
	n := testrig.BridgeNet(t, c, "inplace", "cnminpl0", "10.79.0.0/24")
	origin := testrig.WriteTemp(t, "resolv.conf", "nameserver 192.0.2.53\n")
	dir := filepath.Join(t.TempDir(), "not", "yet")
	opts := []libnetwork.SandboxOption{
		libnetwork.OptionUseExternalKey(), libnetwork.OptionHostname("web"),
		libnetwork.OptionOriginResolvConfPath(origin),
		libnetwork.OptionHostsPath(filepath.Join(dir, "hosts")),
		libnetwork.OptionResolvConfPath(filepath.Join(dir, "resolv.conf")),
	}
	sb := testrig.KernelSandbox(t, c, "c-inplace", opts...)
	hosts := bindFile(t, filepath.Join(dir, "hosts"))
	resolv := bindFile(t, filepath.Join(dir, "resolv.conf"))
	if got := resolv.read(t, "NewSandbox"); !strings.Contains(got, "nameserver 192.0.2.53") {
		t.Fatalf("resolv.conf at creation:\n%s", got)
	}

	ep := testrig.Joined(t, n, sb, "web")
	line := testrig.EpIP(ep) + "\tweb"
	if got := hosts.read(t, "Join"); !strings.Contains(got, line) {
		t.Fatalf("hosts after Join lacks %q:\n%s", line, got)
	}
	ns := testutil.NewNamedNS(t, "cnm-inplace")
	if err := sb.SetKey(ns.Path()); err != nil {
		t.Fatal(err)
	}
	if got := resolv.read(t, "SetKey"); !strings.Contains(got, "nameserver 127.0.0.11") {
		t.Fatalf("resolv.conf after SetKey does not name the embedded resolver:\n%s", got)
	}
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if got := hosts.read(t, "Leave"); strings.Contains(got, line) {
		t.Fatalf("hosts after Leave still has %q:\n%s", line, got)
	}
	if got := resolv.read(t, "Leave"); strings.Contains(got, "127.0.0.11") || !strings.Contains(got, "192.0.2.53") {
		t.Fatalf("resolv.conf after Leave:\n%s", got)
	}
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	if got := resolv.read(t, "second Join"); !strings.Contains(got, "nameserver 127.0.0.11") {
		t.Fatalf("resolv.conf after the second Join:\n%s", got)
	}
	if err := sb.Refresh(append(opts, libnetwork.OptionExtraHost("extra", "192.0.2.9"))...); err != nil {
		t.Fatal(err)
	}
	if got := hosts.read(t, "Refresh"); !strings.Contains(got, "192.0.2.9\textra") || !strings.Contains(got, line) {
		t.Fatalf("hosts after Refresh:\n%s", got)
	}
	if got := resolv.read(t, "Refresh"); !strings.Contains(got, "nameserver 127.0.0.11") {
		t.Fatalf("resolv.conf after Refresh:\n%s", got)
	}
	if err := sb.Rename("web2"); err != nil {
		t.Fatal(err)
	}
	hosts.read(t, "Rename")
	resolv.read(t, "Rename")
	// The runtime restarts the container in a fresh namespace.
	if err := sb.SetKey(testutil.NewNamedNS(t, "cnm-inplace2").Path()); err != nil {
		t.Fatal(err)
	}
	if got := resolv.read(t, "second SetKey"); !strings.Contains(got, "nameserver 127.0.0.11") {
		t.Fatalf("resolv.conf after the second SetKey:\n%s", got)
	}
	if got := hosts.read(t, "second SetKey"); !strings.Contains(got, line) {
		t.Fatalf("hosts after the second SetKey:\n%s", got)
	}

	// A user edit is still the user's: a later rebuild leaves it alone.
	edited := "nameserver 192.0.2.99\n"
	if err := os.WriteFile(resolv.path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if got := resolv.read(t, "Leave after a user edit"); got != edited {
		t.Fatalf("resolv.conf edited by the user was rewritten:\n%s", got)
	}
}

// User-named DNS file paths may be in a directory that does not exist yet:
// NewSandbox creates it, as upstream does.
func TestSandboxFilePathsInNewDirectory(t *testing.T) {
	t.Parallel()
	c := testrig.NewController(t)
	base := t.TempDir()
	hostsPath := filepath.Join(base, "a", "b", "hosts")
	resolvPath := filepath.Join(base, "c", "resolv.conf")
	sb, err := c.NewSandbox("c-newdir", libnetwork.OptionUseExternalKey(),
		libnetwork.OptionHostsPath(hostsPath), libnetwork.OptionResolvConfPath(resolvPath))
	if err != nil {
		t.Fatalf("NewSandbox with paths in missing directories: %v", err)
	}
	defer sb.Delete()
	for _, p := range []string{hostsPath, resolvPath} {
		if _, err := os.Stat(p); err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(filepath.Dir(p))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Fatalf("directory of %s: %v, %v", p, st.Mode(), err)
		}
	}
}
