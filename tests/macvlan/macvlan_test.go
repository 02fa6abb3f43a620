package macvlan_test

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/macvlan"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Containers sit on the LAN: the neighbour reaches a container at its own
// address and learns its MAC, containers reach each other, and a container
// reaches beyond the LAN through the router as its default gateway.
func TestOnTheLAN(t *testing.T) {
	r := newRig(t, 1)
	n := r.macvlanNet("lan", "lan0", 0, nil)
	sbA, epA := r.container(n, "a")
	sbB, epB := r.container(n, "b")
	nsA, hA := testrig.SandboxNS(t, sbA)
	nsB, _ := testrig.SandboxNS(t, sbB)
	testrig.Serve(t, nsA, "tcp", addrOf(epA)+":7000", "srv")
	testrig.Serve(t, r.lans[0].NS, "tcp", beyond+":7000", "router")

	reach(t, r.lans[0].NS, addrOf(epA)+":7000", "srv", neighbour(0))
	neighs, err := r.lans[0].Netlink.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	mac := epA.Info().Iface().MacAddress().String()
	found := false
	for _, nb := range neighs {
		if nb.IP.String() == addrOf(epA) {
			found = nb.HardwareAddr.String() == mac
			if !found {
				t.Fatalf("the neighbour sees %s at %s, want the container's own %s", addrOf(epA), nb.HardwareAddr, mac)
			}
		}
	}
	if !found {
		t.Fatalf("the neighbour has no entry for %s: %v", addrOf(epA), neighs)
	}
	l, err := hA.LinkByName("eth0")
	if err != nil || l.Attrs().HardwareAddr.String() != mac || l.Type() != "macvlan" {
		t.Fatalf("container eth0: %v, %v", l, err)
	}

	reach(t, nsB, addrOf(epA)+":7000", "srv", addrOf(epB))
	routes, err := hA.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	gw := ""
	for _, rt := range routes {
		if rt.Dst == nil || rt.Dst.String() == "0.0.0.0/0" {
			gw = rt.Gw.String()
		}
	}
	if gw != routerV4(0) {
		t.Fatalf("default gateway %q, want the router %s", gw, routerV4(0))
	}
	reach(t, nsA, beyond+":7000", "router", addrOf(epA))
}

// The LAN is a switch that reflects frames back out of the port they came
// in on (hairpin). vepa sends frames between containers of one parent out
// to it, and they come back; private drops them even then; bridge
// delivers them without the LAN. All three reach the LAN and are reached
// from it.
func TestModesPrivateVEPAAndBridge(t *testing.T) {
	modes := []string{macvlan.ModePrivate, macvlan.ModeVEPA, macvlan.ModeBridge}
	r := newRigWith(t, len(modes), true)
	for k, mode := range modes {
		n := r.macvlanNet(mode, "lan"+string(rune('0'+k)), k, map[string]string{macvlan.ModeOpt: mode})
		sbA, epA := r.container(n, mode+"-a")
		sbB, epB := r.container(n, mode+"-b")
		nsA, _ := testrig.SandboxNS(t, sbA)
		nsB, _ := testrig.SandboxNS(t, sbB)
		testrig.Serve(t, nsA, "tcp", addrOf(epA)+":7000", "srv")
		testrig.Serve(t, nsB, "tcp", addrOf(epB)+":7000", "srv")
		// Both reach the LAN and are reached from it.
		reach(t, r.lans[k].NS, addrOf(epA)+":7000", "srv", neighbour(k))
		reach(t, r.lans[k].NS, addrOf(epB)+":7000", "srv", neighbour(k))
		if mode == macvlan.ModePrivate {
			testrig.MustNotFetch(t, nsB, "tcp", addrOf(epA)+":7000")
		} else {
			reach(t, nsB, addrOf(epA)+":7000", "srv", addrOf(epB))
		}
	}
}

// The host does not reach its own macvlan containers through their
// parent, even with an address on the LAN: the kernel sends the host's
// frames out of the parent, never to the macvlans on it (Docker documents
// the same). The neighbour, on the wire, does.
func TestHostCannotReachItsContainers(t *testing.T) {
	r := newRig(t, 1)
	n := r.macvlanNet("lan", "lan0", 0, nil)
	sb, ep := r.container(n, "a")
	ns, _ := testrig.SandboxNS(t, sb)
	testrig.Serve(t, ns, "tcp", addrOf(ep)+":7000", "srv")
	lan0, _ := r.host.Netlink.LinkByName("lan0")
	addr, _ := netlink.ParseAddr("192.0.2.50/24")
	if err := r.host.Netlink.AddrAdd(lan0, addr); err != nil {
		t.Fatal(err)
	}
	testrig.Serve(t, r.lans[0].NS, "tcp", neighbour(0)+":7001", "neighbour")
	reach(t, r.host.NS, neighbour(0)+":7001", "neighbour", "192.0.2.50") // the host is on the LAN
	testrig.MustNotFetch(t, r.host.NS, "tcp", addrOf(ep)+":7000")
	reach(t, r.lans[0].NS, addrOf(ep)+":7000", "srv", neighbour(0))
}

// No parent: an internal network on a stand-in parent the driver makes;
// containers reach each other and nothing else, and get no gateway.
func TestInternalNetwork(t *testing.T) {
	r := newRig(t, 1)
	before := testrig.LinkNames(t, r.host.Netlink)
	n := r.macvlanNet("internal", "", 0, nil)
	sbA, epA := r.container(n, "a")
	sbB, epB := r.container(n, "b")
	nsA, hA := testrig.SandboxNS(t, sbA)
	nsB, _ := testrig.SandboxNS(t, sbB)
	testrig.Serve(t, nsA, "tcp", addrOf(epA)+":7000", "srv")
	reach(t, nsB, addrOf(epA)+":7000", "srv", addrOf(epB))
	routes, _ := hA.RouteList(nil, netlink.FAMILY_V4)
	for _, rt := range routes {
		if rt.Dst == nil || rt.Dst.String() == "0.0.0.0/0" {
			t.Fatalf("internal network container has a default route: %+v", rt)
		}
	}
	if got := testrig.LinkNames(t, r.host.Netlink); len(got) != len(before)+2 {
		t.Fatalf("host links %v: want %v and the stand-in pair", got, before)
	}
	testrig.Teardown(t, r.c)
	if got := testrig.LinkNames(t, r.host.Netlink); !slices.Equal(got, before) {
		t.Fatalf("host links after teardown %v, want %v", got, before)
	}
}

// Dual stack from IPAM, a static MAC, the MTU option, and two networks on
// two parents joined by one container.
func TestDualStackMACMTUAndTwoParents(t *testing.T) {
	r := newRig(t, 2)
	v6 := []*libnetwork.IpamConf{{PreferredPool: lanV6(0), SubPool: subPoolV6(0), Gateway: routerV6(0)}}
	opts := append(netOpts("lan0", 0, map[string]string{netlabel.DriverMTU: "1400"}), libnetwork.NetworkOptionEnableIPv6(true),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: lanV4(0), SubPool: subPool(0), Gateway: routerV4(0)}}, v6, nil))
	n0, err := r.c.NewNetwork("macvlan", "ds", "", opts...)
	if err != nil {
		t.Fatal(err)
	}
	n1 := r.macvlanNet("second", "lan1", 1, nil)
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	sb, ep0 := r.container(n0, "a", libnetwork.EndpointOptionGeneric(map[string]any{netlabel.MacAddress: mac}))
	ep1, err := n1.CreateEndpoint("a1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ep1.Join(sb); err != nil {
		t.Fatal(err)
	}
	ns, h := testrig.SandboxNS(t, sb)
	eth0, err := h.LinkByName("eth0")
	if err != nil || eth0.Attrs().HardwareAddr.String() != mac.String() || eth0.Attrs().MTU != 1400 {
		t.Fatalf("eth0: %+v, %v; want mac %s mtu 1400", eth0, err, mac)
	}
	if _, err := h.LinkByName("eth1"); err != nil {
		t.Fatalf("second network's interface: %v", err)
	}
	v6addr := ep0.Info().Iface().AddressIPv6()
	if v6addr == nil {
		t.Fatal("no IPv6 address from IPAM")
	}
	testrig.Serve(t, ns, "tcp", "["+v6addr.IP.String()+"]:7000", "srv")
	testrig.Serve(t, ns, "tcp", addrOf(ep1)+":7000", "srv")
	reach(t, r.lans[0].NS, "["+v6addr.IP.String()+"]:7000", "srv", neighV6(0))
	reach(t, r.lans[1].NS, addrOf(ep1)+":7000", "srv", neighbour(1))
	routes, _ := h.RouteList(nil, netlink.FAMILY_V6)
	gw6 := ""
	for _, rt := range routes {
		if rt.Dst == nil || rt.Dst.String() == "::/0" {
			gw6 = rt.Gw.String()
		}
	}
	if gw6 != net.ParseIP(routerV6(0)).String() {
		t.Fatalf("IPv6 default gateway %q, want %s", gw6, routerV6(0))
	}
}

func TestBadOptions(t *testing.T) {
	r := newRig(t, 1)
	r.macvlanNet("taken", "lan0", 0, nil)
	lan0, _ := r.host.Netlink.LinkByName("lan0")
	other := netlink.NewLinkAttrs()
	other.Name = "other0"
	if err := r.host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: other, PeerName: "other1"}); err != nil {
		t.Fatal(err)
	}
	_ = lan0
	for _, tc := range []struct {
		name   string
		parent string
		k      int // the subnet: each its own, so IPAM never refuses first
		opts   map[string]string
		class  func(error) bool
		msg    string
	}{
		{"lo", "lo", 1, nil, types.IsBadRequest, "loopback"},
		{"missing parent", "eth9", 2, nil, types.IsBadRequest, "does not exist"},
		{"parent taken", "lan0", 3, nil, types.IsForbidden, "already the parent"},
		{"unknown mode", "other0", 4, map[string]string{macvlan.ModeOpt: "l3"}, types.IsBadRequest, "unknown mode"},
		{"mtu above parent", "other0", 5, map[string]string{netlabel.DriverMTU: "9000"}, types.IsBadRequest, "mtu"},
		{"vlan sub-interface", "other0.10", 6, nil, types.IsNotImplemented, "802.1q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.c.NewNetwork("macvlan", "bad-"+strings.ReplaceAll(tc.name, " ", "-"), "", netOpts(tc.parent, tc.k, tc.opts)...)
			if !tc.class(err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want its class and %q", err, tc.msg)
			}
		})
	}
	if got := len(r.c.Networks()); got != 1 {
		t.Fatalf("%d networks after refused creates, want 1", got)
	}
	n, _ := r.c.NetworkByName("taken")
	ports := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}
	if _, err := n.CreateEndpoint("p", libnetwork.CreateOptionPortMapping(ports)); !types.IsBadRequest(err) {
		t.Fatalf("endpoint publishing ports: got %v, want BadRequest", err)
	}
	sb, err := r.c.NewSandbox("ports", libnetwork.OptionPortMapping(ports))
	if err != nil {
		t.Fatal(err)
	}
	ep, err := n.CreateEndpoint("q")
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); !types.IsBadRequest(err) {
		t.Fatalf("sandbox publishing ports joining: got %v, want BadRequest", err)
	}
	_, h := testrig.SandboxNS(t, sb)
	if got := testrig.LinkNames(t, h); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("refused join left links %v", got)
	}
}

// Teardown leaves nothing: no link in the host, the LAN or anywhere.
func TestTeardownLeavesNoLink(t *testing.T) {
	r := newRig(t, 1)
	host, lan := testrig.LinkNames(t, r.host.Netlink), testrig.LinkNames(t, r.lans[0].Netlink)
	n := r.macvlanNet("lan", "lan0", 0, nil)
	in := r.macvlanNet("internal", "", 1, nil)
	sb, ep := r.container(n, "a")
	ep2, err := in.CreateEndpoint("a2")
	if err != nil {
		t.Fatal(err)
	}
	if err := ep2.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, h := testrig.SandboxNS(t, sb)
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	// The driver deletes a left link in the background, within tens of ms.
	testrig.Eventually(t, "the left endpoint's macvlan to go from the sandbox", func() bool {
		for _, l := range mustLinks(t, h) {
			if l.Type() == "macvlan" && l.Attrs().Name != "eth1" {
				return false
			}
		}
		return true
	})
	testrig.Teardown(t, r.c)
	if got := testrig.LinkNames(t, r.host.Netlink); !slices.Equal(got, host) {
		t.Fatalf("host links %v, want %v", got, host)
	}
	if got := testrig.LinkNames(t, r.lans[0].Netlink); !slices.Equal(got, lan) {
		t.Fatalf("LAN links %v, want %v", got, lan)
	}
}

// Live restore: a controller stopped and started again on the same state
// keeps the container on the LAN, through the same interface, and the
// restored join leaves like any other.
func TestLiveRestore(t *testing.T) {
	r := newRig(t, 1)
	n := r.macvlanNet("lan", "lan0", 0, nil)
	in := r.macvlanNet("internal", "", 1, nil)
	sb, ep := r.container(n, "a")
	epIn, err := in.CreateEndpoint("a-in")
	if err != nil {
		t.Fatal(err)
	}
	if err := epIn.Join(sb); err != nil {
		t.Fatal(err)
	}
	ns, h := testrig.SandboxNS(t, sb)
	testrig.Serve(t, ns, "tcp", addrOf(ep)+":7000", "srv")
	eth0, _ := h.LinkByName("eth0")
	c := r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if l, err := h.LinkByName("eth0"); err != nil || l.Attrs().Index != eth0.Attrs().Index {
		t.Fatalf("eth0 changed across the restart: %v", err)
	}
	reach(t, r.lans[0].NS, addrOf(ep)+":7000", "srv", neighbour(0))
	rn, err := c.NetworkByName("lan")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rn.EndpointByName("a")
	if err != nil {
		t.Fatal(err)
	}
	rsb, err := c.SandboxByID(sb.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Leave(rsb); err != nil {
		t.Fatal(err)
	}
	testrig.Eventually(t, "the restored join's link to go", func() bool {
		for _, l := range mustLinks(t, h) {
			if l.Attrs().Index == eth0.Attrs().Index {
				return false
			}
		}
		return true
	})
	// A new network on the same parent is still refused: the restored one
	// holds it.
	if _, err := c.NewNetwork("macvlan", "again", "", netOpts("lan0", 2, nil)...); !types.IsForbidden(err) {
		t.Fatalf("second network on lan0 after restore: got %v, want Forbidden", err)
	}
}

// Garbage collection looks inside kept sandboxes: a tagged macvlan of an
// endpoint that is not joined goes, the live join stays; the stand-in
// parent of a network with no record goes too.
func TestGarbageInKeptSandbox(t *testing.T) {
	r := newRig(t, 1)
	n := r.macvlanNet("lan", "lan0", 0, nil)
	sb, _ := r.container(n, "a")
	_, h := testrig.SandboxNS(t, sb)
	lan0, _ := r.host.Netlink.LinkByName("lan0")
	// What a crash between a join's link and its record would leave.
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex, attrs.Namespace = "stray", lan0.Attrs().Index, netlink.NsFd(mustNS(t, sb))
	if err := r.host.Netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
		t.Fatal(err)
	}
	stray, err := h.LinkByName("stray")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetAlias(stray, "opencnm:ep:0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if err := r.c.CollectGarbage(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName("stray"); err == nil {
		t.Fatal("GC kept a tagged macvlan of an endpoint that is not joined")
	}
	if _, err := h.LinkByName("eth0"); err != nil {
		t.Fatalf("GC took the live join's link: %v", err)
	}

	// A stand-in parent tagged with a network that has no record (made by
	// a run that crashed before writing it) goes too.
	before := testrig.LinkNames(t, r.host.Netlink)
	attrs = netlink.NewLinkAttrs()
	attrs.Name = "mvi-leftover"
	if err := r.host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "mvo-leftover"}); err != nil {
		t.Fatal(err)
	}
	left, _ := r.host.Netlink.LinkByName("mvi-leftover")
	if err := r.host.Netlink.LinkSetAlias(left, "opencnm:net:0123456789abcdef"); err != nil {
		t.Fatal(err)
	}
	if err := r.c.CollectGarbage(); err != nil {
		t.Fatal(err)
	}
	if got := testrig.LinkNames(t, r.host.Netlink); !slices.Equal(got, before) {
		t.Fatalf("host links after GC %v, want %v", got, before)
	}
}

func mustNS(t *testing.T, sb *libnetwork.Sandbox) int {
	t.Helper()
	ns, _ := testrig.SandboxNS(t, sb)
	return ns.Fd()
}

// Deleting a sandbox does not move its gateway to the next endpoint (all
// go): the next endpoint's link gone (its parent deleted) is no error.
func TestDeleteWithNextLinkGone(t *testing.T) {
	r := newRig(t, 2)
	n0 := r.macvlanNet("first", "lan0", 0, nil)
	n1 := r.macvlanNet("second", "lan1", 1, nil)
	sb, _ := r.container(n0, "a")
	ep1, err := n1.CreateEndpoint("a1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ep1.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, h := testrig.SandboxNS(t, sb)
	lan1, err := r.host.Netlink.LinkByName("lan1")
	if err == nil {
		err = r.host.Netlink.LinkDel(lan1)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.LinkByName("eth1"); err == nil {
		t.Fatal("eth1 outlived its parent")
	}
	if err := sb.Delete(); err != nil {
		t.Fatalf("Delete: %v", err)
	}
}
