package testrig

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// SandboxNS opens a sandbox's namespace (by its key) for inspection.
func SandboxNS(t *testing.T, sb *libnetwork.Sandbox) (*netnsutil.NS, *netlink.Handle) {
	t.Helper()
	ns, err := netnsutil.Open(sb.Key())
	if err != nil {
		t.Fatalf("opening sandbox key %s: %v", sb.Key(), err)
	}
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		ns.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); ns.Close() })
	return ns, h
}

func LinkNames(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	slices.Sort(names)
	return names
}

// HostLinksSettle waits until the host namespace holds exactly want (the
// bridge driver deletes veths in the background, within tens of ms).
func HostLinksSettle(t *testing.T, host *testutil.HostNS, want ...string) {
	t.Helper()
	slices.Sort(want)
	var got []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = LinkNames(t, host.Netlink); slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("host namespace links = %v, want %v", got, want)
}

// AddrsOf lists link's IPv4 addresses.
func AddrsOf(t *testing.T, h *netlink.Handle, link string) []string {
	t.Helper()
	return AddrsOfFamily(t, h, link, netlink.FAMILY_V4)
}

// AddrsOfFamily lists link's addresses of family (netlink.FAMILY_V4,
// FAMILY_V6 or FAMILY_ALL), link-local ones the kernel adds on its own
// (fe80::/64 from the MAC) included.
func AddrsOfFamily(t *testing.T, h *netlink.Handle, link string, family int) []string {
	t.Helper()
	l, err := h.LinkByName(link)
	if err != nil {
		t.Fatalf("link %s: %v", link, err)
	}
	addrs, err := h.AddrList(l, family)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		out = append(out, a.IPNet.String())
	}
	return out
}

func DefaultGateway(t *testing.T, h *netlink.Handle) string {
	t.Helper()
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
			return r.Gw.String()
		}
	}
	return ""
}

func HostIP(ipnet *net.IPNet) string { return strings.Split(ipnet.String(), "/")[0] }

// LinkRoute is a link-scope route to dst through the link ifindex.
func LinkRoute(ifindex int, dst *net.IPNet) *netlink.Route {
	return &netlink.Route{LinkIndex: ifindex, Dst: dst, Scope: netlink.SCOPE_LINK}
}
