package netnsutil_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

func TestNewDoRemove(t *testing.T) {
	testutil.RequireRoot(t)
	path := filepath.Join(t.TempDir(), "ns")
	ns, err := netnsutil.New(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	t.Cleanup(func() { _ = netnsutil.Remove(path) })

	cur, err := netnsutil.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if ns.Handle().Equal(cur.Handle()) {
		t.Fatal("new namespace is the current one")
	}

	// A veth pair made inside Do lives in the new namespace only.
	err = ns.Do(func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "probe0"}, PeerName: "probe1"}); err != nil {
			return err
		}
		h, err := netns.Get()
		if err != nil {
			return err
		}
		defer h.Close()
		if !h.Equal(ns.Handle()) {
			t.Error("Do did not run in the namespace")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("probe0"); err == nil {
		t.Fatal("probe0 leaked into the test's namespace")
	}
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, err := h.LinkByName("probe0"); err != nil {
		t.Fatalf("probe0 not in the new namespace: %v", err)
	}

	if err := netnsutil.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("namespace file still there: %v", err)
	}
	// Removing again is "already gone", not an error.
	if err := netnsutil.Remove(path); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
}
