// Package testutil holds helpers for privileged tests: they run as root
// inside throwaway network namespaces and never touch the machine's own.
package testutil

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// RequireRoot skips t when not running as root, except under CI=true where
// it fails: CI must never go green by skipping the real tests.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("privileged test needs root, and CI=true forbids skipping it")
	}
	t.Skip("privileged test: needs root (run `sudo make test`)")
}

// HostNS is a throwaway namespace a test uses as "the host".
type HostNS struct {
	*netnsutil.NS
	Netlink *netlink.Handle // netlink handle inside the namespace
}

// NewHostNS creates a network namespace bind-mounted under t.TempDir(),
// with lo up, and removes it when the test ends. Tests pass its Path() to
// config.OptionHostNetNS so the controller works inside it.
func NewHostNS(t testing.TB) *HostNS {
	t.Helper()
	RequireRoot(t)
	return NewNamedNS(t, "host")
}

// NewNamedNS creates another throwaway namespace (an "outside" peer, a
// plugin's namespace, ...) named for readability in failures.
func NewNamedNS(t testing.TB, name string) *HostNS {
	t.Helper()
	RequireRoot(t)
	path := filepath.Join(t.TempDir(), name+".netns")
	ns, err := netnsutil.New(path)
	if err != nil {
		t.Fatalf("creating %s namespace: %v", name, err)
	}
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		ns.Close()
		_ = netnsutil.Remove(path)
		t.Fatalf("netlink handle in %s namespace: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		ns.Close()
		if err := netnsutil.Remove(path); err != nil {
			t.Errorf("removing %s namespace: %v", name, err)
		}
	})
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("bringing lo up in %s namespace: %v", name, err)
	}
	return &HostNS{NS: ns, Netlink: h}
}
