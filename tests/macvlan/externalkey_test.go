package macvlan_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// A sandbox whose namespace a runtime makes (external key) joins before it
// has one: the driver makes the link in the host, the sandbox moves it in
// at SetKey; a second SetKey re-plumbs it into the new namespace; Leave
// and teardown leave no link anywhere.
func TestExternalKey(t *testing.T) {
	r := newRig(t, 1)
	hostBefore := testrig.LinkNames(t, r.host.Netlink)
	n := r.macvlanNet("lan", "lan0", 0, nil)
	sb, err := r.c.NewSandbox("rt", libnetwork.OptionUseExternalKey())
	if err != nil {
		t.Fatal(err)
	}
	ep, err := n.CreateEndpoint("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	// No namespace yet: the link waits in the host, tagged.
	waiting := 0
	for _, l := range mustLinks(t, r.host.Netlink) {
		if l.Type() == "macvlan" && l.Attrs().Alias == "opencnm:ep:"+ep.ID() {
			waiting++
		}
	}
	if waiting != 1 {
		t.Fatalf("%d tagged macvlans in the host before SetKey, want 1", waiting)
	}
	for _, name := range []string{"start1", "start2"} {
		path := filepath.Join(t.TempDir(), name)
		ns, err := netnsutil.New(path)
		if err != nil {
			t.Fatal(err)
		}
		h, err := netlink.NewHandleAt(ns.Handle())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close(); ns.Close(); _ = netnsutil.Remove(path) })
		if err := sb.SetKey(path); err != nil {
			t.Fatalf("SetKey %s: %v", name, err)
		}
		l, err := h.LinkByName("eth0")
		if err != nil || l.Type() != "macvlan" || l.Attrs().HardwareAddr.String() != ep.Info().Iface().MacAddress().String() {
			t.Fatalf("%s: eth0 %+v, %v", name, l, err)
		}
		testrig.Serve(t, ns, "tcp", addrOf(ep)+":7000", "srv")
		reach(t, r.lans[0].NS, addrOf(ep)+":7000", "srv", neighbour(0))
	}
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := ep.Delete(false); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	testrig.Eventually(t, "the host to hold only what it held before", func() bool {
		return slices.Equal(testrig.LinkNames(t, r.host.Netlink), hostBefore)
	})
}
