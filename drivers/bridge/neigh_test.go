package bridge

import (
	"net"
	"testing"

	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// permanentNeighbours lists the host's permanent neighbour entries on
// link index as "ip=mac".
func permanentNeighbours(t *testing.T, h *netlink.Handle, index int) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := h.NeighList(index, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range list {
			if n.State&netlink.NUD_PERMANENT != 0 {
				out[n.IP.String()] = n.HardwareAddr.String()
			}
		}
	}
	return out
}

// A join programs the port (proxy ARP, a static FDB entry) and the
// container's neighbour entry on the bridge; Leave removes the entry and
// garbage collection removes one a crash left.
func TestJoinProgramsNeighbours(t *testing.T) {
	d, host := newTestDriver(t, nil)
	if err := d.CreateNetwork(netReq(t, joinNID, "10.14.0.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	br, err := host.Netlink.LinkByName("br-" + joinNID[:12])
	if err != nil {
		t.Fatal(err)
	}
	sb := testutil.NewNamedNS(t, "sb")
	joinEP(t, d, "ep1", "10.14.0.2/24", sb)
	if got := permanentNeighbours(t, host.Netlink, br.Attrs().Index); got["10.14.0.2"] != "02:42:0a:0e:00:02" || len(got) != 1 {
		t.Fatalf("neighbours on the bridge after join = %v", got)
	}
	d.mu.Lock()
	port := d.networks[joinNID].endpoints["ep1"].hostIfIndex
	d.mu.Unlock()
	l, err := host.Netlink.LinkByIndex(port)
	if err != nil {
		t.Fatal(err)
	}
	if pi, err := host.Netlink.LinkGetProtinfo(l); err != nil || !pi.ProxyArp || !pi.Hairpin {
		t.Errorf("port flags = %+v, want proxy ARP and hairpin", pi)
	}
	fdb, err := host.Netlink.NeighList(port, unix.AF_BRIDGE)
	if err != nil {
		t.Fatal(err)
	}
	static := false
	for _, f := range fdb {
		static = static || f.HardwareAddr.String() == "02:42:0a:0e:00:02" && f.State&netlink.NUD_NOARP != 0
	}
	if !static {
		t.Errorf("no static fdb entry of the container's mac on its port: %v", fdb)
	}

	if err := d.Leave(joinNID, "ep1"); err != nil {
		t.Fatal(err)
	}
	if got := permanentNeighbours(t, host.Netlink, br.Attrs().Index); len(got) != 0 {
		t.Fatalf("neighbours on the bridge after leave = %v", got)
	}

	// What a crash between a join's entries and its record leaves: an
	// entry in the subnet that no joined endpoint owns. One outside the
	// subnet is not the driver's.
	for _, ip := range []string{"10.14.0.9", "192.0.2.9"} {
		if err := host.Netlink.NeighSet(&netlink.Neigh{LinkIndex: br.Attrs().Index, IP: net.ParseIP(ip),
			HardwareAddr: net.HardwareAddr{2, 0x42, 1, 2, 3, 4}, State: netlink.NUD_PERMANENT}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.CollectGarbage(map[string]bool{joinNID: true}, nil); err != nil {
		t.Fatal(err)
	}
	if got := permanentNeighbours(t, host.Netlink, br.Attrs().Index); len(got) != 1 || got["192.0.2.9"] == "" {
		t.Fatalf("neighbours on the bridge after garbage collection = %v, want only 192.0.2.9", got)
	}
}
