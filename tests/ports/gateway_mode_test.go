package ports

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// The escape hatches of the direct-access protection (issue #11), on a
// host that forwarded with FORWARD ACCEPT before the controller started:
// each opens what it says, per family or per interface, and nothing else.

// withDriverOpts is a network option carrying bridge driver labels.
func withDriverOpts(labels map[string]string) libnetwork.NetworkOption {
	return libnetwork.NetworkOptionDriverOpts(labels)
}

// gatewayTarget is a container with a published port 80 (host 8080) and
// an unpublished 81, on a dual-stack network routed from the neighbour.
type gatewayTarget struct {
	*testrig.Container
	ip6 string
}

func runTarget(t *testing.T, r *testrig.PortRig, n *libnetwork.Network, name string, hostPort uint16) gatewayTarget {
	t.Helper()
	c := r.MustRun(t, n, name, []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping([]types.PortBinding{testrig.TCP(80, hostPort)})})
	testrig.Serve(t, c.NS, "tcp", ":80", name+":80")
	testrig.Serve(t, c.NS, "tcp", ":81", name+":81")
	return gatewayTarget{c, testrig.IP6Of(t, c)}
}

// gatewayMode: "nat-unprotected" opens the containers' addresses in its
// family only; the other family stays "nat". Published ports work in
// both; containers of other networks still do not reach them directly.
func TestGatewayModeNATUnprotected(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	a := testrig.DualStackNet(t, r.Ctrl, "open4", "", "10.64.0.0/24", "fd00:64::/64", withDriverOpts(map[string]string{bridge.GatewayModeIPv4: "nat-unprotected"}))
	b := testrig.DualStackNet(t, r.Ctrl, "open6", "", "10.65.0.0/24", "fd00:65::/64", withDriverOpts(map[string]string{bridge.GatewayModeIPv4: "nat", bridge.GatewayModeIPv6: "nat-unprotected"}))
	for _, s := range []string{"10.64.0.0/24", "10.65.0.0/24"} {
		r.RouteOutside(t, s)
	}
	for _, s := range []string{"fd00:64::/64", "fd00:65::/64"} {
		testrig.RouteOutside6(t, r, s)
	}
	ca := runTarget(t, r, a, "a", 8080)
	cb := runTarget(t, r, b, "b", 8081)

	// a: IPv4 open to the neighbour, published or not; IPv6 closed.
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(ca.IP, 81), "a:81")
	testrig.MustFetch(t, r.Out.NS, "tcp", testrig.HostPort(ca.IP, 80), "a:80")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(ca.ip6, 81))
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(ca.ip6, 80))
	// b: the other way round.
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(cb.ip6, 81), "b:81")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(cb.IP, 81))
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(cb.IP, 80))
	// Published ports, both families, both networks.
	testrig.MustFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8080), "a:80")
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8080), "a:80")
	testrig.MustFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8081), "b:80")
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8081), "b:80")
	// Inter-network isolation is not what the mode opens.
	testrig.MustNotFetch(t, cb.NS, "tcp", testrig.HostPort(ca.IP, 81))
	testrig.MustNotFetch(t, ca.NS, "tcp", testrig.HostPort(cb.ip6, 81))
	testrig.AssertForwardAccept(t, r.Host)
}

// trusted_host_interfaces opens the containers' published ports at their
// own addresses, in both families, to traffic arriving on the interfaces
// named: not their unpublished ports, and nothing to other interfaces.
func TestTrustedHostInterfaces(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	lan2 := addNeighbour(t, r.Host, "uplink2", "198.51.100.1/24", "198.51.100.2/24", "2001:db8:2::1/64", "2001:db8:2::2/64")
	n := testrig.DualStackNet(t, r.Ctrl, "trusted", "", "10.66.0.0/24", "fd00:66::/64", withDriverOpts(map[string]string{bridge.TrustedHostInterfaces: "uplink"}))
	r.RouteOutside(t, "10.66.0.0/24")
	testrig.RouteOutside6(t, r, "fd00:66::/64")
	routeVia(t, lan2, "10.66.0.0/24", "198.51.100.1")
	routeVia(t, lan2, "fd00:66::/64", "2001:db8:2::1")
	c := runTarget(t, r, n, "c", 8080)

	// Through the trusted uplink: the published container port, by the
	// container's address; not the unpublished one.
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(c.IP, 80), "c:80")
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(c.ip6, 80), "c:80")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(c.IP, 81))
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(c.ip6, 81))
	testrig.MustFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8080), "c:80")
	// Through the other interface: only the published host port.
	testrig.FetchSoon(t, lan2.NS, "tcp", testrig.HostPort("198.51.100.1", 8080), "c:80")
	testrig.FetchSoon(t, lan2.NS, "tcp", testrig.HostPort("2001:db8:2::1", 8080), "c:80")
	for _, ip := range []string{c.IP, c.ip6} {
		testrig.MustNotFetch(t, lan2.NS, "tcp", testrig.HostPort(ip, 80))
		testrig.MustNotFetch(t, lan2.NS, "tcp", testrig.HostPort(ip, 81))
	}
}

// "isolated" (internal networks only): the bridge has no address in the
// family, the kernel's link-local one included, so the host and the
// containers do not reach each other there, while the containers still
// talk among themselves. A plain internal network, for contrast, has its
// bridge address both ways.
func TestGatewayModeIsolated(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	iso := testrig.DualStackNet(t, r.Ctrl, "iso", "", "10.69.0.0/24", "fd00:69::/64", libnetwork.NetworkOptionInternalNetwork(),
		withDriverOpts(map[string]string{bridge.GatewayModeIPv4: "isolated", bridge.GatewayModeIPv6: "isolated"}))
	plain := testrig.DualStackNet(t, r.Ctrl, "int", "", "10.70.0.0/24", "fd00:70::/64", libnetwork.NetworkOptionInternalNetwork())
	testrig.Serve(t, r.Host.NS, "tcp", ":7001", "host")
	c1, c2 := r.MustRun(t, iso, "c1", nil), r.MustRun(t, iso, "c2", nil)
	p1 := r.MustRun(t, plain, "p1", nil)
	for _, c := range []*testrig.Container{c1, p1} {
		testrig.Serve(t, c.NS, "tcp", ":81", c.Endpoint.Name()+":81")
	}

	l, err := r.Host.Netlink.LinkByName("br-" + iso.ID()[:12])
	if err != nil {
		t.Fatal(err)
	}
	if addrs, err := r.Host.Netlink.AddrList(l, netlink.FAMILY_ALL); err != nil || len(addrs) != 0 {
		t.Fatalf("isolated bridge addresses: %v, %v; want none", addrs, err)
	}
	// Containers of an internal network reach each other over IPv6 too
	// (their neighbour discovery is bridged traffic the isolation rules
	// must not drop).
	p2 := r.MustRun(t, plain, "p2", nil)
	testrig.FetchSoon(t, p2.NS, "tcp", testrig.HostPort(testrig.IP6Of(t, p1), 81), "p1:81")
	// Among themselves, both families.
	testrig.MustFetch(t, c2.NS, "tcp", testrig.HostPort(c1.IP, 81), "c1:81")
	testrig.FetchSoon(t, c2.NS, "tcp", testrig.HostPort(testrig.IP6Of(t, c1), 81), "c1:81")
	// Not the host, either way.
	testrig.MustNotFetch(t, r.Host.NS, "tcp", testrig.HostPort(c1.IP, 81))
	testrig.MustNotFetch(t, r.Host.NS, "tcp", testrig.HostPort(testrig.IP6Of(t, c1), 81))
	testrig.MustNotFetch(t, c1.NS, "tcp", testrig.HostPort("10.69.0.1", 7001))
	testrig.MustNotFetch(t, c1.NS, "tcp", testrig.HostPort("fd00:69::1", 7001))
	// The plain internal network: the host both ways.
	testrig.MustFetch(t, r.Host.NS, "tcp", testrig.HostPort(p1.IP, 81), "p1:81")
	testrig.FetchSoon(t, r.Host.NS, "tcp", testrig.HostPort(testrig.IP6Of(t, p1), 81), "p1:81")
	testrig.MustFetch(t, p1.NS, "tcp", testrig.HostPort("10.70.0.1", 7001), "host")
	testrig.FetchSoon(t, p1.NS, "tcp", testrig.HostPort("fd00:70::1", 7001), "host")
	// Only on internal networks.
	_, err = r.Ctrl.NewNetwork("bridge", "notinternal", "", withDriverOpts(map[string]string{bridge.GatewayModeIPv4: "isolated"}),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.71.0.0/24"}}, nil, nil))
	if !types.IsBadRequest(err) || !strings.Contains(err.Error(), bridge.GatewayModeIPv4) {
		t.Errorf("isolated on a non-internal network: %v, want BadRequest naming %s", err, bridge.GatewayModeIPv4)
	}
}

// Gateway modes and trusted interfaces are persisted with the network:
// after a restart its rules are still those the options render (the
// crash checker's rendering), with no protection for an unprotected
// family and no NAT for a routed one. Values not implemented fail the
// create, naming the option, and leave no network.
func TestGatewayModeSurvivesRestartAndRefusals(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	c := r.Start()
	for _, labels := range []map[string]string{
		{bridge.GatewayModeIPv6: "isolated"},
		{bridge.GatewayModeIPv4: "open-sesame"},
		{bridge.TrustedHostInterfaces: "eth+"},
	} {
		_, err := c.NewNetwork("bridge", "refused", "", withDriverOpts(labels),
			libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.67.0.0/24"}}, nil, nil))
		for label := range labels {
			if !types.IsBadRequest(err) || !strings.Contains(err.Error(), label) {
				t.Errorf("%v: got %v, want BadRequest naming %s", labels, err, label)
			}
		}
	}
	if nets := c.Networks(); len(nets) != 0 {
		t.Fatalf("refused creates left networks: %v", nets)
	}

	n := testrig.DualStackNet(t, c, "modes", "", "10.68.0.0/24", "fd00:68::/64", withDriverOpts(map[string]string{
		bridge.GatewayModeIPv4: "nat-unprotected", bridge.TrustedHostInterfaces: "eth7:eth8"}))
	id := n.ID()
	routedID := testrig.DualStackNet(t, c, "routed6", "", "10.73.0.0/24", "fd00:73::/64", withDriverOpts(map[string]string{
		bridge.GatewayModeIPv6: "routed"})).ID()
	check := func(c *libnetwork.Controller) {
		t.Helper()
		n, err := c.NetworkByID(id)
		if err != nil {
			t.Fatal(err)
		}
		opts := n.DriverOptions()
		if opts[bridge.GatewayModeIPv4] != "nat-unprotected" || opts[bridge.TrustedHostInterfaces] != "eth7:eth8" {
			t.Fatalf("driver options: %v", opts)
		}
		routed, err := c.NetworkByID(routedID)
		if err != nil {
			t.Fatal(err)
		}
		if opts := routed.DriverOptions(); opts[bridge.GatewayModeIPv6] != "routed" {
			t.Fatalf("driver options of the routed network: %v", opts)
		}
		testrig.CheckNetworkRules(t, r.Host, map[string]*libnetwork.Network{id: n, routedID: routed})
		v4, v6 := testrig.KernelRules(t, r.Host, firewall.IPv4), testrig.KernelRules(t, r.Host, firewall.IPv6)
		// Routed IPv6: not masqueraded, ICMP accepted; IPv4 is nat.
		rOwner := "--comment " + firewall.NetworkOwner(routedID) + " "
		if masq := matching(v6, rOwner, "MASQUERADE"); len(masq) != 0 {
			t.Errorf("IPv6 is routed, yet: %v", masq)
		}
		if icmp := matching(v6, rOwner, "-p ipv6-icmp", "-j ACCEPT"); len(icmp) != 1 {
			t.Errorf("IPv6 ICMP accepts of the routed network: %v, want one", icmp)
		}
		if masq := matching(v4, rOwner, "! -o br-", "MASQUERADE"); len(masq) != 1 {
			t.Errorf("IPv4 masquerade of the routed6 network: %v, want one", masq)
		}
		owner := "--comment " + firewall.NetworkOwner(id) + " "
		if drops := matching(v4, owner, "-j DROP", "! -i br-"); len(drops) != 0 {
			t.Errorf("IPv4 is nat-unprotected, yet: %v", drops)
		}
		if drops := matching(v6, owner, "-j DROP", "! -i br-"); len(drops) != 2 {
			t.Errorf("IPv6 direct-access drops: %v, want the raw and the filter one", drops)
		}
		// Trusted interfaces open published ports only: the
		// endpoints' rules (TestRestartKeepsTrustedPort), none of the
		// network's.
		if trusted := matching(append(v4, v6...), owner, "-i eth8 "); len(trusted) != 0 {
			t.Errorf("network rules for trusted eth8: %v, want none", trusted)
		}
	}
	check(c)
	c = r.Start()
	if err := c.RestoreError(); err != nil {
		t.Fatal(err)
	}
	check(c)
}

// matching returns the rules containing every word.
func matching(rules []string, words ...string) []string {
	var out []string
next:
	for _, r := range rules {
		for _, w := range words {
			if !strings.Contains(r, w) {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// addNeighbour makes one more LAN host: a namespace on a veth (hostLink
// in host, "lan0" inside) with the addresses given (CIDR form), IPv6
// without duplicate address detection as in newPortRig6.
func addNeighbour(t *testing.T, host *testutil.HostNS, hostLink, host4, nb4, host6, nb6 string) *testutil.HostNS {
	t.Helper()
	nb := testutil.NewNamedNS(t, "neighbour")
	a := netlink.NewLinkAttrs()
	a.Name = hostLink
	if err := host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: a, PeerName: "lan0", PeerNamespace: netlink.NsFd(nb.Fd())}); err != nil {
		t.Fatalf("creating %s: %v", hostLink, err)
	}
	setup := func(h *netlink.Handle, name string, addrs ...string) {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range addrs {
			ip, n, _ := net.ParseCIDR(s)
			n.IP = ip
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: n, Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatalf("adding %s to %s: %v", s, name, err)
			}
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	setup(host.Netlink, hostLink, host4, host6, "fe80::cafe:11/64")
	setup(nb.Netlink, "lan0", nb4, nb6, "fe80::cafe:12/64")
	return nb
}

// routeVia adds a route to subnet through gw in ns.
func routeVia(t *testing.T, ns *testutil.HostNS, subnet, gw string) {
	t.Helper()
	_, dst, _ := net.ParseCIDR(subnet)
	if err := ns.Netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(gw)}); err != nil {
		t.Fatalf("route to %s via %s: %v", subnet, gw, err)
	}
}

// On a host whose forwarding the controller turned on itself (FORWARD
// policy DROP), "nat-unprotected" still opens the containers' addresses
// in its family: the network accepts what enters its bridge there, as
// moby does for this mode, rather than relying on the policy.
func TestGatewayModeNATUnprotectedForwardDrop(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig6(t)
	a := testrig.DualStackNet(t, r.Ctrl, "open4d", "", "10.71.0.0/24", "fd00:71::/64", withDriverOpts(map[string]string{bridge.GatewayModeIPv4: "nat-unprotected"}))
	b := testrig.DualStackNet(t, r.Ctrl, "open6d", "", "10.72.0.0/24", "fd00:72::/64", withDriverOpts(map[string]string{bridge.GatewayModeIPv6: "nat-unprotected"}))
	for _, bin := range []string{"iptables", "ip6tables"} {
		if out := testrig.InNS(t, r.Host.NS, bin, "-w", "-S", "FORWARD"); !strings.Contains(out, "-P FORWARD DROP\n") {
			t.Fatalf("%s FORWARD policy is not DROP:\n%s", bin, out)
		}
	}
	r.RouteOutside(t, "10.71.0.0/24")
	r.RouteOutside(t, "10.72.0.0/24")
	testrig.RouteOutside6(t, r, "fd00:71::/64")
	testrig.RouteOutside6(t, r, "fd00:72::/64")
	ca := runTarget(t, r, a, "a", 8080)
	cb := runTarget(t, r, b, "b", 8081)

	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(ca.IP, 81), "a:81")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(ca.ip6, 81))
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(cb.ip6, 81), "b:81")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(cb.IP, 81))
	testrig.MustFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8080), "a:80")
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8081), "b:80")
	// Only the neighbour is let in: containers of the other network are
	// still isolated.
	testrig.MustNotFetch(t, cb.NS, "tcp", testrig.HostPort(ca.IP, 81))
	testrig.MustNotFetch(t, ca.NS, "tcp", testrig.HostPort(cb.ip6, 81))
}

// A live container's published port stays open to the network's trusted
// interfaces across a restart and a garbage collection: per interface,
// a raw and a filter accept of the container port, owned by the
// endpoint, in the protected family (IPv6 here) only; the unprotected
// IPv4 needs none.
func TestRestartKeepsTrustedPort(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.DualStackNet(t, c, "trustedp", "", "10.75.0.0/24", "fd00:75::/64", withDriverOpts(map[string]string{
		bridge.GatewayModeIPv4: "nat-unprotected", bridge.TrustedHostInterfaces: "eth7:eth8"}))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sbPorts := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c", libnetwork.OptionPortMapping(sbPorts)))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		owner := "--comment " + firewall.EndpointOwner(ep.ID()) + " "
		if a := matching(testrig.KernelRules(t, r.Host, firewall.IPv4), owner, "-i eth"); len(a) != 0 {
			t.Errorf("%s: IPv4 (unprotected) trusted accepts: %v, want none", when, a)
		}
		v6 := testrig.KernelRules(t, r.Host, firewall.IPv6)
		for _, ifc := range []string{"eth7", "eth8"} {
			raw := matching(v6, owner, "raw -A PREROUTING ", "-i "+ifc+" ", "--dport 80 ", "-j ACCEPT")
			filter := matching(v6, owner, "filter -A DOCKER ", "-i "+ifc+" ", "--dport 80 ", "-j ACCEPT")
			if len(raw) != 1 || len(filter) != 1 {
				t.Errorf("%s: IPv6 accepts from %s: raw %v, filter %v; want one each", when, ifc, raw, filter)
			}
		}
	}
	check("before the restart")
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{libnetwork.OptionPortMapping(sbPorts)}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if err := c.CollectGarbage(); err != nil {
		t.Fatal(err)
	}
	check("after the restart and garbage collection")
}
