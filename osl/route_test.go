package osl

import (
	"net"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// sandboxWithEth0 returns a sandbox holding eth0 with 10.1.0.2/24 and
// fd00:1::2/64, its host peer up so the link has carrier.
func sandboxWithEth0(t *testing.T) *Sandbox {
	t.Helper()
	host := testutil.NewHostNS(t)
	s := newTestSandbox(t, "routes")
	addHostVeth(t, host, "vh0", "vs0")
	err := s.AddInterface(host.Netlink, InterfaceConfig{
		SrcName: "vs0", HostNS: host.NS, DstName: "eth0",
		Address: mustCIDR(t, "10.1.0.2/24"), AddressIPv6: mustCIDR(t, "fd00:1::2/64"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func defaultRoutes(t *testing.T, s *Sandbox, family int) []netlink.Route {
	t.Helper()
	routes, err := s.Netlink().RouteList(nil, family)
	if err != nil {
		t.Fatal(err)
	}
	var out []netlink.Route
	for _, r := range routes {
		if isDefault(r.Dst) {
			out = append(out, r)
		}
	}
	return out
}

func TestGateways(t *testing.T) {
	s := sandboxWithEth0(t)
	eth0, err := s.Netlink().LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	// Unset with nothing set is fine.
	if err := s.UnsetGateway(); err != nil {
		t.Fatal(err)
	}
	if err := s.UnsetGatewayIPv6(); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 2; i++ { // setting twice replaces, not fails
		if err := s.SetGateway(net.ParseIP("10.1.0.1")); err != nil {
			t.Fatalf("SetGateway #%d: %v", i, err)
		}
	}
	d4 := defaultRoutes(t, s, netlink.FAMILY_V4)
	if len(d4) != 1 || !d4[0].Gw.Equal(net.ParseIP("10.1.0.1")) || d4[0].LinkIndex != eth0.Attrs().Index {
		t.Fatalf("IPv4 default routes %v, want one via 10.1.0.1 dev eth0", d4)
	}
	if err := s.SetGatewayIPv6(net.ParseIP("fd00:1::1")); err != nil {
		t.Fatal(err)
	}
	d6 := defaultRoutes(t, s, netlink.FAMILY_V6)
	if len(d6) != 1 || !d6[0].Gw.Equal(net.ParseIP("fd00:1::1")) || d6[0].LinkIndex != eth0.Attrs().Index {
		t.Fatalf("IPv6 default routes %v, want one via fd00:1::1 dev eth0", d6)
	}
	if v4, v6, err := s.DefaultGateways(); err != nil || len(v4) != 1 || !v4[0].Equal(net.ParseIP("10.1.0.1")) ||
		len(v6) != 1 || !v6[0].Equal(net.ParseIP("fd00:1::1")) {
		t.Fatalf("DefaultGateways() = %v, %v, %v; want [10.1.0.1], [fd00:1::1]", v4, v6, err)
	}

	// Bad gateways are refused with a class.
	if err := s.SetGateway(net.ParseIP("fd00:1::1")); !types.IsBadRequest(err) {
		t.Errorf("IPv6 gateway to SetGateway: %v, want BadRequest", err)
	}
	if err := s.SetGateway(net.ParseIP("10.1.0.2")); !types.IsBadRequest(err) {
		t.Errorf("own address as gateway: %v, want BadRequest", err)
	}
	// 10.9.9.9 is reached via the default route only: not a connected gateway.
	if err := s.SetGateway(net.ParseIP("10.9.9.9")); !types.IsForbidden(err) {
		t.Errorf("unconnected gateway: %v, want Forbidden", err)
	}

	if err := s.UnsetGateway(); err != nil {
		t.Fatal(err)
	}
	if d := defaultRoutes(t, s, netlink.FAMILY_V4); len(d) != 0 {
		t.Errorf("IPv4 default route left: %v", d)
	}
	if err := s.UnsetGatewayIPv6(); err != nil {
		t.Fatal(err)
	}
	if d := defaultRoutes(t, s, netlink.FAMILY_V6); len(d) != 0 {
		t.Errorf("IPv6 default route left: %v", d)
	}
	if v4, v6, err := s.DefaultGateways(); err != nil || len(v4)+len(v6) != 0 {
		t.Errorf("DefaultGateways() with none set = %v, %v, %v", v4, v6, err)
	}
	// With no default route at all, the kernel finds no way to 10.9.9.9.
	if err := s.SetGateway(net.ParseIP("10.9.9.9")); err == nil || !types.IsClassed(err) {
		t.Errorf("unreachable gateway: %v, want a classed error", err)
	}
}

func TestStaticRoutes(t *testing.T) {
	s := sandboxWithEth0(t)
	nh := &types.StaticRoute{Destination: mustCIDR(t, "172.16.3.4/16"), RouteType: types.NEXTHOP, NextHop: net.ParseIP("10.1.0.1")}
	nhAuto := &types.StaticRoute{Destination: mustCIDR(t, "172.18.0.0/16"), RouteType: types.NEXTHOP, NextHop: net.ParseIP("10.1.0.1")}
	conn := &types.StaticRoute{Destination: mustCIDR(t, "172.17.0.0/16"), RouteType: types.CONNECTED}
	v6 := &types.StaticRoute{Destination: mustCIDR(t, "fd99::/64"), RouteType: types.NEXTHOP, NextHop: net.ParseIP("fd00:1::1")}
	if err := s.AddStaticRoute(nh, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStaticRoute(nhAuto, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStaticRoute(conn, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStaticRoute(v6, "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStaticRoute(conn, "eth0"); !types.IsForbidden(err) {
		t.Errorf("duplicate route: %v, want Forbidden", err)
	}

	find := func(dst string, family int) *netlink.Route {
		routes, err := s.Netlink().RouteList(nil, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Dst != nil && r.Dst.String() == dst {
				return &r
			}
		}
		return nil
	}
	if r := find("172.16.0.0/16", netlink.FAMILY_V4); r == nil || !r.Gw.Equal(nh.NextHop) {
		t.Errorf("next-hop route (host bits given) = %v, want via 10.1.0.1", r)
	}
	if r := find("172.18.0.0/16", netlink.FAMILY_V4); r == nil || !r.Gw.Equal(nh.NextHop) {
		t.Errorf("next-hop route without interface = %v", r)
	}
	if r := find("172.17.0.0/16", netlink.FAMILY_V4); r == nil || r.Gw != nil || r.Scope != netlink.SCOPE_LINK {
		t.Errorf("connected route = %v, want scope link without gateway", r)
	}
	if r := find("fd99::/64", netlink.FAMILY_V6); r == nil || !r.Gw.Equal(v6.NextHop) {
		t.Errorf("IPv6 next-hop route = %v", r)
	}

	for _, r := range []*types.StaticRoute{nh, nhAuto, conn, v6} {
		if err := s.RemoveStaticRoute(r, "eth0"); err != nil {
			t.Errorf("removing %s: %v", routeDesc(r), err)
		}
		if err := s.RemoveStaticRoute(r, "eth0"); err != nil {
			t.Errorf("removing %s again: %v", routeDesc(r), err)
		}
	}
	if find("172.16.0.0/16", netlink.FAMILY_V4) != nil || find("172.17.0.0/16", netlink.FAMILY_V4) != nil || find("fd99::/64", netlink.FAMILY_V6) != nil {
		t.Error("static routes left after removal")
	}
	// Removing through an interface that is gone is "already gone".
	if err := s.RemoveStaticRoute(conn, "eth9"); err != nil {
		t.Errorf("removing via a missing interface: %v", err)
	}

	bad := map[string]struct {
		r  *types.StaticRoute
		If string
	}{
		"nil":             {nil, "eth0"},
		"no destination":  {&types.StaticRoute{RouteType: types.CONNECTED}, "eth0"},
		"connected no if": {conn, ""},
		"no next hop":     {&types.StaticRoute{Destination: nh.Destination, RouteType: types.NEXTHOP}, "eth0"},
		"mixed families":  {&types.StaticRoute{Destination: nh.Destination, RouteType: types.NEXTHOP, NextHop: v6.NextHop}, "eth0"},
		"unknown type":    {&types.StaticRoute{Destination: nh.Destination, RouteType: 7}, "eth0"},
	}
	for name, c := range bad {
		if err := s.AddStaticRoute(c.r, c.If); !types.IsBadRequest(err) {
			t.Errorf("%s: %v, want BadRequest", name, err)
		}
	}
	if err := s.AddStaticRoute(conn, "eth9"); !types.IsNotFound(err) {
		t.Errorf("missing interface: %v, want NotFound", err)
	}
}
