package bridge

import (
	"fmt"
	"net"
	"sort"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
)

// newTestDriver returns a driver working in a fresh throwaway host
// namespace, closed at the end of the test.
func newTestDriver(t testing.TB, cfg map[string]any) (*Driver, *testutil.HostNS) {
	t.Helper()
	host := testutil.NewHostNS(t)
	d, err := New(host.NS, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d, host
}

// noIPTables is the driver config of tests that install a fake firewaller.
var noIPTables = map[string]any{netlabel.GenericData: map[string]string{"EnableIPTables": "false"}}

func mustCIDR(t testing.TB, s string) *net.IPNet {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	if v4 := ip.To4(); v4 != nil {
		n.IP = v4
	}
	return n
}

// ipam is the IPAM data for a pool with a gateway ("10.1.0.1/24" style:
// the address is the gateway, the prefix the pool).
func ipam(t testing.TB, gw string) []driverapi.IPAMData {
	t.Helper()
	g := mustCIDR(t, gw)
	pool := &net.IPNet{IP: g.IP.Mask(g.Mask), Mask: g.Mask}
	return []driverapi.IPAMData{{AddressSpace: "local", Pool: pool, Gateway: g}}
}

func netReq(t testing.TB, id, gw string, labels map[string]string) driverapi.CreateNetworkRequest {
	t.Helper()
	opts := map[string]any{}
	if labels != nil {
		opts[netlabel.GenericData] = labels
	}
	return driverapi.CreateNetworkRequest{NetworkID: id, Options: opts, IPv4Data: ipam(t, gw)}
}

// linkNames lists the links of a namespace, sorted.
func linkNames(t testing.TB, h *netlink.Handle) []string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatalf("listing links: %v", err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	sort.Strings(names)
	return names
}

// hostState renders links with their up flag, master and addresses (link
// local ones the kernel adds on its own excluded), for before/after checks.
func hostState(t testing.TB, h *netlink.Handle) string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatalf("listing links: %v", err)
	}
	var lines []string
	for _, l := range links {
		a := l.Attrs()
		line := fmt.Sprintf("%s up=%v master=%d", a.Name, a.Flags&net.FlagUp != 0, a.MasterIndex)
		addrs, err := h.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatalf("listing addresses of %s: %v", a.Name, err)
		}
		for _, ad := range addrs {
			if ad.IP.IsLinkLocalUnicast() && !ad.IP.Equal(bridgeIPv6LinkLocal.IP) {
				continue
			}
			line += " " + ad.IPNet.String()
		}
		// Permanent neighbour entries are the driver's (neigh.go).
		for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
			neighs, err := h.NeighList(a.Index, family)
			if err != nil {
				t.Fatalf("listing neighbours of %s: %v", a.Name, err)
			}
			for _, n := range neighs {
				if n.State&netlink.NUD_PERMANENT != 0 {
					line += " neigh " + n.IP.String() + "=" + n.HardwareAddr.String()
				}
			}
		}
		lines = append(lines, line)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func ifname0(prefix string) string { return prefix + "0" }
