package bridgeflow

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// An IPv6-only bridge network (com.docker.network.enable_ipv4=false, moby
// 28): no IPv4 pool, no IPv4 address on the bridge or the containers, and
// firewall rules in the ip6 tables only; containers reach each other and
// the outside over IPv6, get an IPv6 default route, and publish ports
// over IPv6. The IPv6 pool may be left to the default (ULA) pools.
func TestIPv6OnlyNetwork(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig6(t)
	n, err := r.Ctrl.NewNetwork("bridge", "v6only", "",
		libnetwork.NetworkOptionEnableIPv4(false), libnetwork.NetworkOptionEnableIPv6(true),
		libnetwork.NetworkOptionIpam("default", "", nil, []*libnetwork.IpamConf{{PreferredPool: "fd57::/64"}}, nil))
	if err != nil {
		t.Fatalf("IPv6-only network: %v", err)
	}
	if n.IPv4Enabled() || !n.IPv6Enabled() {
		t.Fatalf("IPv4Enabled %v IPv6Enabled %v", n.IPv4Enabled(), n.IPv6Enabled())
	}
	if v4, _ := n.IpamInfo(); len(v4) != 0 {
		t.Fatalf("IPv6-only network has IPv4 pools %v", v4)
	}
	c1 := r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	c2 := r.MustRun(t, n, "c2", nil)
	if a := c1.Endpoint.Info().Iface().Address(); a != nil {
		t.Fatalf("endpoint has IPv4 address %s", a)
	}
	_, h1 := testrig.SandboxNS(t, c1.Sandbox)
	if got := testrig.AddrsOfFamily(t, h1, "eth0", netlink.FAMILY_V4); len(got) != 0 {
		t.Fatalf("container eth0 has IPv4 addresses %v", got)
	}
	if got := testrig.AddrsOfFamily(t, r.Host.Netlink, "br-"+n.ID()[:12], netlink.FAMILY_V4); len(got) != 0 {
		t.Fatalf("bridge has IPv4 addresses %v", got)
	}
	if got := testrig.AddrsOfFamily(t, h1, "eth0", netlink.FAMILY_V6); !slices.Contains(got, testrig.IP6Of(t, c1)+"/64") {
		t.Fatalf("container eth0 addresses %v, want %s/64", got, testrig.IP6Of(t, c1))
	}
	if gw := c1.Endpoint.Info().GatewayIPv6(); gw == nil || gw.String() != "fd57::1" {
		t.Fatalf("GatewayIPv6 %v, want fd57::1", gw)
	}
	routes, err := h1.RouteList(nil, netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	hasDefault := false
	for _, rt := range routes {
		if (rt.Dst == nil || rt.Dst.String() == "::/0") && rt.Gw.String() == "fd57::1" {
			hasDefault = true
		}
	}
	if !hasDefault {
		t.Fatalf("no IPv6 default route via fd57::1 in %v", routes)
	}

	testrig.Serve(t, c1.NS, "tcp", ":80", "c1")
	testrig.FetchSoon(t, c2.NS, "tcp", testrig.HostPort(testrig.IP6Of(t, c1), 80), "c1")
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8080), "c1")
	testrig.Serve(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out")
	testrig.FetchSoon(t, c2.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out")

	// Rules name the network in the ip6 tables only.
	short := n.ID()[:12]
	if v4 := strings.Split(testrig.InNS(t, r.Host.NS, "iptables-save"), "\n"); slices.ContainsFunc(v4, func(l string) bool { return strings.Contains(l, short) }) {
		t.Fatalf("IPv4 rules for an IPv6-only network:\n%s", strings.Join(v4, "\n"))
	}
	if v6 := testrig.InNS(t, r.Host.NS, "ip6tables-save"); !strings.Contains(v6, short) {
		t.Fatalf("no IPv6 rules for the network:\n%s", v6)
	}
	c1.Stop(t)
	c2.Stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if hits := testrig.RulesNaming(t, r.Host.NS, short); len(hits) > 0 {
		t.Fatalf("rules left after teardown:\n%s", strings.Join(hits, "\n"))
	}
}

// IPv4 off needs IPv6 on, and leaves no room for IPv4 pools or a
// preferred IPv4 address; the generic option sets it too, and must be a
// bool. All BadRequest naming the option.
func TestIPv6OnlyRefusals(t *testing.T) {
	t.Parallel()
	c, _ := testrig.NewPrivController(t)
	for name, opts := range map[string][]libnetwork.NetworkOption{
		"no IPv6":         {libnetwork.NetworkOptionEnableIPv4(false)},
		"generic no IPv6": {libnetwork.NetworkOptionGeneric(options.Generic{netlabel.EnableIPv4: false})},
		"IPv4 pool": {libnetwork.NetworkOptionEnableIPv4(false), libnetwork.NetworkOptionEnableIPv6(true),
			libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.58.0.0/24"}}, nil, nil)},
		"not a bool": {libnetwork.NetworkOptionGeneric(options.Generic{netlabel.EnableIPv4: "false"})},
	} {
		_, err := c.NewNetwork("bridge", "refused", "", opts...)
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), netlabel.EnableIPv4) {
			t.Fatalf("%s: want BadRequest naming %s, got %v", name, netlabel.EnableIPv4, err)
		}
	}
	n, err := c.NewNetwork("bridge", "v6only", "", libnetwork.NetworkOptionEnableIPv6(true),
		libnetwork.NetworkOptionGeneric(options.Generic{netlabel.EnableIPv4: false}))
	if err != nil {
		t.Fatalf("IPv6-only network through the generic option, ULA pool: %v", err)
	}
	if _, err := n.CreateEndpoint("ep", libnetwork.CreateOptionIpam(net.ParseIP("10.0.0.5"), nil, nil, nil)); !types.IsBadRequest(err) {
		t.Fatalf("preferred IPv4 address on an IPv6-only network: want BadRequest, got %v", err)
	}
}

// After a restart an IPv6-only network is still IPv6-only (its driver set
// up again without IPv4), and an endpoint's link-local addresses are
// still reported.
func TestIPv6OnlyAndLinkLocalSurviveRestart(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("bridge", "v6only", "",
		libnetwork.NetworkOptionEnableIPv4(false), libnetwork.NetworkOptionEnableIPv6(true)))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep",
		libnetwork.CreateOptionIpam(nil, nil, []net.IP{net.ParseIP("fe80::9")}, nil)))
	pool := ep.Info().Iface().AddressIPv6()

	c = r.Start()
	n = testrig.Must[*libnetwork.Network](t)(c.NetworkByName("v6only"))
	if n.IPv4Enabled() {
		t.Fatal("restored network has IPv4")
	}
	if v4, _ := n.IpamInfo(); len(v4) != 0 {
		t.Fatalf("restored network has IPv4 pools %v", v4)
	}
	ep = testrig.Must[*libnetwork.Endpoint](t)(n.EndpointByName("ep"))
	if ll := ep.Info().Iface().LinkLocalAddresses(); len(ll) != 1 || ll[0].String() != "fe80::9/64" {
		t.Fatalf("restored link-local addresses %v", ll)
	}
	ep2 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep2"))
	if ep2.Info().Iface().Address() != nil || ep2.Info().Iface().AddressIPv6() == nil {
		t.Fatalf("new endpoint after restart: %v %v", ep2.Info().Iface().Address(), ep2.Info().Iface().AddressIPv6())
	}
	if a := ep2.Info().Iface().AddressIPv6(); !(&net.IPNet{IP: pool.IP.Mask(pool.Mask), Mask: pool.Mask}).Contains(a.IP) {
		t.Fatalf("new endpoint %s outside the network's pool %s", a, pool)
	}
}
