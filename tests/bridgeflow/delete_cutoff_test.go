package bridgeflow

import (
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// A container still running in a namespace the library made keeps it
// alive past Sandbox.Delete; from the moment Delete returns it must have
// no working interface: nothing up with an address, no way to the gateway.
func TestDeleteCutsOffRunningContainer(t *testing.T) {
	t.Parallel()
	c, host := testrig.NewPrivController(t)
	n := testrig.DualStackNet(t, c, "cutoff", "cnmcut0", "10.79.1.0/24", "fd79:1::/64")
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c-cutoff"))
	ep := testrig.Joined(t, n, sb, "web")
	gw := ep.Info().Gateway().String()
	gw6 := ep.Info().GatewayIPv6().String()
	testrig.Serve(t, host.NS, "tcp", net.JoinHostPort(gw, "7077"), "gw")
	testrig.Serve(t, host.NS, "tcp", net.JoinHostPort(gw6, "7077"), "gw")

	// The container's hold on its namespace: an fd opened before Delete.
	ns, err := netnsutil.Open(sb.Key())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, g := range []string{gw, gw6} {
		if _, err := testrig.FetchWithin(ns, "tcp", net.JoinHostPort(g, "7077"), 3*time.Second); err != nil {
			t.Fatalf("before Delete the gateway %s is unreachable: %v", g, err)
		}
	}
	if up := upWithAddress(t, h); len(up) != 1 {
		t.Fatalf("before Delete, interfaces up with an address: %v", up)
	}

	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	if up := upWithAddress(t, h); len(up) != 0 {
		t.Fatalf("after Delete, interfaces still up with an address: %v", up)
	}
	for _, g := range []string{gw, gw6} {
		if _, err := testrig.Fetch(ns, "tcp", net.JoinHostPort(g, "7077")); err == nil {
			t.Fatalf("after Delete the container still reaches its gateway %s", g)
		}
	}
	if routes, err := h.RouteList(nil, netlink.FAMILY_ALL); err != nil || len(nonLoopback(routes)) != 0 {
		t.Fatalf("after Delete, routes left: %v, %v", nonLoopback(routes), err)
	}
}

// upWithAddress lists the links other than lo that are up and have an
// address of either family.
func upWithAddress(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" || a.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		if len(addrs) > 0 {
			out = append(out, a.Name)
		}
	}
	return out
}

// nonLoopback drops the routes of lo (index 1 in a namespace).
func nonLoopback(routes []netlink.Route) []netlink.Route {
	var out []netlink.Route
	for _, r := range routes {
		if r.LinkIndex != 1 {
			out = append(out, r)
		}
	}
	return out
}
