package testrig

import (
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// NewForwardingRig is a port rig (IPv4 and IPv6 uplink) whose host
// namespace had forwarding on in both families, FORWARD ACCEPT, before
// the controller started, as a host running another engine, Kubernetes,
// libvirt or a VPN has.
func NewForwardingRig(t *testing.T, opts ...config.Option) *PortRig {
	t.Helper()
	testutil.RequireRoot(t)
	host := testutil.NewHostNS(t)
	sys := firewall.NSSysctl{NS: host.NS}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/default/forwarding", "net/ipv6/conf/all/forwarding"} {
		if err := sys.Set(k, "1"); err != nil {
			t.Fatal(err)
		}
	}
	r := newPortRigOf(t, NewPrivControllerIn(t, host, opts...), host)
	WithUplink6(t, r)
	AssertForwardAccept(t, r.Host)
	return r
}

// assertForwardAccept: the controller kept the host's FORWARD policy (it
// did not flip forwarding on, so it has no business changing it).
func AssertForwardAccept(t *testing.T, host *testutil.HostNS) {
	t.Helper()
	for _, bin := range []string{"iptables", "ip6tables"} {
		if out := InNS(t, host.NS, bin, "-w", "-S", "FORWARD"); !strings.Contains(out, "-P FORWARD ACCEPT\n") {
			t.Fatalf("%s FORWARD policy is not ACCEPT:\n%s", bin, out)
		}
	}
}

// RouteOutside6 is routeOutside for an IPv6 subnet.
func RouteOutside6(t *testing.T, r *PortRig, subnet string) {
	t.Helper()
	_, dst, _ := net.ParseCIDR(subnet)
	if err := r.Out.Netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(UplinkHost6)}); err != nil {
		t.Fatalf("route to %s in outside namespace: %v", subnet, err)
	}
}
