package osl

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// newTestSandbox makes a sandbox keyed under t.TempDir(), destroyed at the
// end of the test.
func newTestSandbox(t testing.TB, name string) *Sandbox {
	t.Helper()
	testutil.RequireRoot(t)
	key := filepath.Join(t.TempDir(), "netns", name)
	s, err := New(key)
	if err != nil {
		t.Fatalf("New(%s): %v", key, err)
	}
	t.Cleanup(func() {
		if err := s.Destroy(); err != nil {
			t.Errorf("Destroy: %v", err)
		}
	})
	return s
}

// addHostVeth creates a veth pair name/peer in the test's host namespace,
// host end up.
func addHostVeth(t testing.TB, host *testutil.HostNS, name, peer string) {
	t.Helper()
	if err := host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
		t.Fatalf("creating veth %s/%s: %v", name, peer, err)
	}
	upHost(t, host, name)
}

// addInsideVeth creates a veth whose host end (name) is in host and whose
// peer (inside) is created directly in the sandbox, as a driver would.
func addInsideVeth(t testing.TB, host *testutil.HostNS, s *Sandbox, name, inside string) {
	t.Helper()
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: inside, PeerNamespace: netlink.NsFd(s.NS().Fd())}
	if err := host.Netlink.LinkAdd(v); err != nil {
		t.Fatalf("creating veth %s with peer %s in sandbox: %v", name, inside, err)
	}
	upHost(t, host, name)
}

func upHost(t testing.TB, host *testutil.HostNS, name string) {
	t.Helper()
	l, err := host.Netlink.LinkByName(name)
	if err == nil {
		err = host.Netlink.LinkSetUp(l)
	}
	if err != nil {
		t.Fatalf("setting %s up: %v", name, err)
	}
}

func mustCIDR(t testing.TB, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	if v4 := ip.To4(); v4 != nil {
		n.IP = v4
	}
	return n
}

// isMounted reports whether path is a mount point in this mount namespace.
func isMounted(t testing.TB, path string) bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && fields[4] == path {
			return true
		}
	}
	return false
}

// linkNames lists the links in the sandbox, lo included.
func linkNames(t testing.TB, h *netlink.Handle) []string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		out = append(out, l.Attrs().Name)
	}
	return out
}

// readSysctl reads a /proc/sys file inside the sandbox.
func readSysctl(t testing.TB, s *Sandbox, rel string) string {
	t.Helper()
	var v string
	err := s.Do(func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", rel))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatalf("reading %s: %v", rel, err)
	}
	return v
}
