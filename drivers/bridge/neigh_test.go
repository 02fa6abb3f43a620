package bridge

import (
	"net"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
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

// On a network with IPv6 the bridge also proxies the container's IPv6
// address (proxy NDP), and the proxy entry goes with Leave and GC.
func TestJoinProgramsNeighboursIPv6(t *testing.T) {
	d, host := newTestDriver(t, nil)
	req := netReq(t, joinNID, "10.15.0.1/24", nil)
	req.Options[netlabel.EnableIPv6] = true
	req.IPv6Data = []driverapi.IPAMData{{Pool: mustCIDR(t, "fd00:15::/64"), Gateway: mustCIDR(t, "fd00:15::1/64")}}
	if err := d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	brName := "br-" + joinNID[:12]
	br, err := host.Netlink.LinkByName(brName)
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"net/ipv6/conf/" + brName + "/proxy_ndp": "1",
		"net/ipv6/neigh/" + brName + "/proxy_delay": "0", "net/ipv6/conf/" + brName + "/forwarding": "1"} {
		var got []byte
		if err := host.Do(func() (err error) { got, err = os.ReadFile("/proc/sys/" + path); return err }); err != nil || strings.TrimSpace(string(got)) != want {
			t.Errorf("%s = %q (%v), want %s", path, got, err, want)
		}
	}
	proxies := func() []string {
		t.Helper()
		list, err := host.Netlink.NeighProxyList(br.Attrs().Index, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range list {
			out = append(out, n.IP.String())
		}
		return out
	}
	sb := testutil.NewNamedNS(t, "sb")
	chosen, _ := joinEP(t, d, "ep1", "10.15.0.2/24", sb)
	v6 := chosen.AddressIPv6.IP.String()
	if got := permanentNeighbours(t, host.Netlink, br.Attrs().Index); got[v6] != "02:42:0a:0f:00:02" || len(got) != 2 {
		t.Errorf("neighbours on the bridge after join = %v", got)
	}
	if got := proxies(); len(got) != 1 || got[0] != v6 {
		t.Errorf("proxy entries after join = %v, want [%s]", got, v6)
	}
	if err := d.Leave(joinNID, "ep1"); err != nil {
		t.Fatal(err)
	}
	if got := proxies(); len(got) != 0 {
		t.Errorf("proxy entries after leave = %v", got)
	}
	// A crash's leftover in the subnet goes with garbage collection.
	if err := host.Netlink.NeighSet(&netlink.Neigh{LinkIndex: br.Attrs().Index, IP: net.ParseIP("fd00:15::9"), Flags: netlink.NTF_PROXY}); err != nil {
		t.Fatal(err)
	}
	if err := d.CollectGarbage(map[string]bool{joinNID: true}, nil); err != nil {
		t.Fatal(err)
	}
	if got := proxies(); len(got) != 0 {
		t.Errorf("proxy entries after garbage collection = %v", got)
	}
}

// A restarted driver taking a join back programs its neighbour entries
// again, whatever a crash left of them, and counts its port.
func TestRestoreJoinReprogramsNeighbours(t *testing.T) {
	d, host := newTestDriver(t, nil)
	req := netReq(t, joinNID, "10.16.0.1/24", nil)
	if err := d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	sb := testutil.NewNamedNS(t, "sb")
	_, res := joinEP(t, d, "ep1", "10.16.0.2/24", sb)
	br, err := host.Netlink.LinkByName("br-" + joinNID[:12])
	if err != nil {
		t.Fatal(err)
	}
	// The crash came between the veth and its entries.
	if err := host.Netlink.NeighDel(&netlink.Neigh{LinkIndex: br.Attrs().Index, IP: net.ParseIP("10.16.0.2")}); err != nil {
		t.Fatal(err)
	}

	d2, err := New(host.NS, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	if err := d2.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "ep1",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.16.0.2/24")}}); err != nil {
		t.Fatal(err)
	}
	jr := driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "ep1", SandboxKey: sb.Path(), IfaceName: ifname0}
	if err := d2.RestoreJoin(jr, *res); err != nil {
		t.Fatal(err)
	}
	if got := permanentNeighbours(t, host.Netlink, br.Attrs().Index); got["10.16.0.2"] != "02:42:0a:10:00:02" {
		t.Errorf("neighbours on the bridge after restore = %v", got)
	}
	d2.mu.Lock()
	inUse := d2.networks[joinNID].ports.inUse
	d2.mu.Unlock()
	if inUse != 1 {
		t.Errorf("restored driver counts %d ports in use, want 1", inUse)
	}
	if err := d2.Leave(joinNID, "ep1"); err != nil {
		t.Fatal(err)
	}
	if err := d2.DeleteNetwork(joinNID); err != nil {
		t.Fatal(err)
	}
}
