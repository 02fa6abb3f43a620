package crash

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// checkConsistent checks that the restored model of c and the kernel
// agree: every record's kernel objects are there, no kernel object the
// library made is without a record, and no address or host port is held
// twice. It returns the host ports each endpoint publishes.
func checkConsistent(t *testing.T, host *testutil.HostNS, c *libnetwork.Controller, dirs crashDirs, active crashActive, stats *crashStats) map[string][]types.PortBinding {
	t.Helper()
	if err := c.RestoreError(); err != nil {
		t.Errorf("restore: %v", err)
	}
	nets := map[string]*libnetwork.Network{}
	eps := map[string]*libnetwork.Endpoint{}
	joined := map[string]*libnetwork.Endpoint{}
	// Address -> holder, IPv4 and IPv6 alike (their strings never
	// collide): IPAM hands an address to one holder at a time, so two
	// holders of one address in the restored model mean a record or the
	// allocator's state came back wrong.
	held := map[string]string{}
	hold := func(ip net.IP, who string) {
		if prev, dup := held[ip.String()]; dup {
			t.Errorf("address %s held by %s and %s", ip, prev, who)
		}
		held[ip.String()] = who
	}
	for _, n := range c.Networks() {
		nets[n.ID()] = n
		v4, v6 := n.IpamInfo()
		if n.IPv6Enabled() {
			stats.nets6++
		}
		for _, info := range append(v4, v6...) {
			if info.Gateway != nil {
				hold(info.Gateway.IP, "gateway of "+n.Name())
			}
		}
		for _, ep := range n.Endpoints() {
			eps[ep.ID()] = ep
			if a := ep.Info().Iface().Address(); a != nil {
				hold(a.IP, "endpoint "+ep.Name())
			}
			// An endpoint of a dual-stack network has an IPv6 address
			// (its network's IPAM gives one at creation, before anything
			// is recorded), and one of an IPv4-only network has none.
			a6 := ep.Info().Iface().AddressIPv6()
			switch {
			case a6 != nil && !n.IPv6Enabled():
				t.Errorf("endpoint %s of IPv4-only network %s has IPv6 address %s", ep.Name(), n.Name(), a6)
			case a6 == nil && n.IPv6Enabled() && n.Type() == "bridge":
				t.Errorf("endpoint %s of dual-stack network %s has no IPv6 address", ep.Name(), n.Name())
			case a6 != nil:
				hold(a6.IP, "endpoint "+ep.Name())
			}
			if ep.Info().Sandbox() != nil {
				joined[ep.ID()] = ep
			}
		}
	}
	sbs := c.Sandboxes()
	stats.nets += len(nets)
	stats.eps += len(eps)
	stats.joined += len(joined)
	stats.sandboxes += len(sbs)

	checkHostLinks(t, host, nets, joined)
	checkSandboxes(t, c, dirs, sbs)
	checkRules(t, host, nets, eps)
	published := checkPorts(t, host, eps, sbs, active)
	for _, pbs := range published {
		for _, pb := range pbs {
			if testrig.BindingIs6(pb) {
				stats.ports6++
			} else {
				stats.ports++
			}
		}
	}

	// IPAM holds exactly what the records hold: a new endpoint gets an
	// address nobody has, in either family (on a dual-stack network the
	// probe takes an IPv6 address from the same restored allocator state).
	for _, n := range nets {
		if n.Type() != "bridge" && n.Type() != "macvlan" {
			continue
		}
		ep, err := n.CreateEndpoint("probe")
		if err != nil {
			t.Errorf("creating a probe endpoint on %s: %v", n.Name(), err)
			continue
		}
		for _, a := range []*net.IPNet{ep.Info().Iface().Address(), ep.Info().Iface().AddressIPv6()} {
			if a == nil {
				continue
			}
			if who, dup := held[a.IP.String()]; dup {
				t.Errorf("IPAM handed out %s again (held by %s)", a.IP, who)
			}
		}
		if n.IPv6Enabled() && ep.Info().Iface().AddressIPv6() == nil {
			t.Errorf("probe endpoint on dual-stack network %s got no IPv6 address", n.Name())
		}
		if err := ep.Delete(false); err != nil {
			t.Errorf("deleting the probe endpoint on %s: %v", n.Name(), err)
		}
	}
	return published
}

// checkHostLinks: in the host namespace every bridge and veth is tagged
// with a live network or a joined endpoint, and every bridge network and
// joined endpoint has its tagged link (the veth up, a port of its
// network's bridge).
func checkHostLinks(t *testing.T, host *testutil.HostNS, nets map[string]*libnetwork.Network, joined map[string]*libnetwork.Endpoint) {
	t.Helper()
	links, err := host.Netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	bridgeOf := map[string]int{} // network ID -> bridge ifindex
	vethOf := map[string]netlink.Link{}
	for _, l := range links {
		a := l.Attrs()
		switch {
		case strings.HasPrefix(a.Alias, testrig.NetTag):
			id := strings.TrimPrefix(a.Alias, testrig.NetTag)
			if nets[id] == nil {
				t.Errorf("bridge %s is tagged with network %.12s, which does not exist", a.Name, id)
			}
			bridgeOf[id] = a.Index
		case strings.HasPrefix(a.Alias, testrig.EpTag):
			id := strings.TrimPrefix(a.Alias, testrig.EpTag)
			if joined[id] == nil {
				t.Errorf("veth %s is tagged with endpoint %.12s, which is not joined", a.Name, id)
			}
			if prev := vethOf[id]; prev != nil {
				t.Errorf("veths %s and %s both tagged with endpoint %.12s", prev.Attrs().Name, a.Name, id)
			}
			vethOf[id] = l
		case a.Name == "lo", a.Name == crashParent:
		default:
			t.Errorf("host link %s (%s) has no tag: made by nobody or leaked (index %d, peer %d, group %#x, master %d, flags %v)",
				a.Name, l.Type(), a.Index, a.ParentIndex, a.Group, a.MasterIndex, a.Flags)
		}
	}
	for id, n := range nets {
		if n.Type() == "bridge" && bridgeOf[id] == 0 {
			t.Errorf("network %s has no bridge", n.Name())
		}
	}
	for id, ep := range joined {
		l := vethOf[id]
		if l == nil && isMacvlanEndpoint(nets, ep) {
			continue // its link is in its sandbox (checkSandboxes)
		}
		if l == nil {
			t.Errorf("joined endpoint %s has no host veth", ep.Name())
			continue
		}
		if l.Attrs().Flags&net.FlagUp == 0 {
			t.Errorf("host veth %s of joined endpoint %s is down", l.Attrs().Name, ep.Name())
		}
		var nid string
		for nid2, nw := range nets {
			if nw.Name() == ep.Network() {
				nid = nid2
			}
		}
		if l.Attrs().MasterIndex != bridgeOf[nid] {
			t.Errorf("host veth %s of endpoint %s is not a port of its network's bridge", l.Attrs().Name, ep.Name())
		}
	}
}

func isMacvlanEndpoint(nets map[string]*libnetwork.Network, ep *libnetwork.Endpoint) bool {
	for _, n := range nets {
		if n.Name() == ep.Network() {
			return n.Type() == "macvlan"
		}
	}
	return false
}

// checkSandboxes: the namespace files and file directories under ExecRoot
// are exactly the live sandboxes', each key is a mounted namespace, and
// each namespace holds lo plus one interface per joined endpoint, up and
// with the endpoint's address.
func checkSandboxes(t *testing.T, c *libnetwork.Controller, dirs crashDirs, sbs []*libnetwork.Sandbox) {
	t.Helper()
	keys, ids := map[string]bool{}, map[string]bool{}
	for _, sb := range sbs {
		keys[filepath.Base(sb.Key())] = true
		ids[sb.ID()] = true
	}
	entries, _ := os.ReadDir(filepath.Join(dirs.exec, "netns"))
	for _, e := range entries {
		if !keys[e.Name()] {
			t.Errorf("namespace file %s has no sandbox", e.Name())
		}
	}
	entries, _ = os.ReadDir(filepath.Join(dirs.exec, "files"))
	for _, e := range entries {
		if !ids[e.Name()] {
			t.Errorf("files directory %.12s has no sandbox", e.Name())
		}
	}
	for _, sb := range sbs {
		var st unix.Statfs_t
		if err := unix.Statfs(sb.Key(), &st); err != nil || st.Type != unix.NSFS_MAGIC {
			t.Errorf("key %s of sandbox %.12s is not a mounted namespace (%v)", sb.Key(), sb.ID(), err)
			continue
		}
		ns, err := netnsutil.Open(sb.Key())
		if err != nil {
			t.Errorf("opening sandbox %.12s: %v", sb.ID(), err)
			continue
		}
		h, err := netlink.NewHandleAt(ns.Handle())
		if err != nil {
			ns.Close()
			t.Fatal(err)
		}
		links, err := h.LinkList()
		if err != nil {
			t.Fatal(err)
		}
		addrs, err := h.AddrList(nil, netlink.FAMILY_ALL)
		if err != nil {
			t.Fatal(err)
		}
		routes, err := h.RouteList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		routes6, err := h.RouteList(nil, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		ns.Close()
		onLink := map[string]int{} // address -> ifindex
		for _, a := range addrs {
			onLink[a.IP.String()] = a.LinkIndex
		}
		up := map[int]bool{}
		var names []string
		for _, l := range links {
			if l.Attrs().Name != "lo" {
				names = append(names, fmt.Sprintf("%s(peer %d)", l.Attrs().Name, l.Attrs().ParentIndex))
				up[l.Attrs().Index] = l.Attrs().Flags&net.FlagUp != 0
			}
		}
		joinedHere := sb.Endpoints()
		if len(names) != len(joinedHere) {
			t.Errorf("sandbox %.12s holds interfaces %v for %d joined endpoints", sb.ID(), names, len(joinedHere))
		}
		// The default route goes via the gateway of the first endpoint
		// (in priority order) that has one; none without such an endpoint.
		// The IPv6 default route goes via that same endpoint's IPv6
		// gateway, none when it has none (the gateway endpoint carries
		// both routes; nothing else sets or keeps an IPv6 one).
		var want, got, want6, got6 []string
		for _, ep := range joinedHere {
			if gw := ep.Info().Gateway(); gw != nil {
				want = append(want, gw.String())
				if gw6 := ep.Info().GatewayIPv6(); gw6 != nil {
					want6 = append(want6, gw6.String())
				}
				break
			}
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				got = append(got, r.Gw.String())
			}
		}
		for _, r := range routes6 {
			if r.Dst == nil || r.Dst.String() == "::/0" {
				got6 = append(got6, r.Gw.String())
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("sandbox %.12s: default routes via %v, want via %v (its gateway endpoint's)", sb.ID(), got, want)
		}
		if !slices.Equal(got6, want6) {
			t.Errorf("sandbox %.12s: IPv6 default routes via %v, want via %v (its gateway endpoint's)", sb.ID(), got6, want6)
		}
		for _, ep := range joinedHere {
			// A joined endpoint's interface carries its addresses, the
			// IPv6 one too on a dual-stack network (the join configures
			// both before it is recorded; restore repairs both), on the
			// same interface.
			a, a6 := ep.Info().Iface().Address(), ep.Info().Iface().AddressIPv6()
			idx, ok := onLink[a.IP.String()]
			switch {
			case !ok:
				t.Errorf("address %s of joined endpoint %s is not in sandbox %.12s", a, ep.Name(), sb.ID())
			case !up[idx]:
				t.Errorf("interface of joined endpoint %s in sandbox %.12s is down", ep.Name(), sb.ID())
			}
			if a6 == nil {
				continue
			}
			if idx6, ok6 := onLink[a6.IP.String()]; !ok6 {
				t.Errorf("IPv6 address %s of joined endpoint %s is not in sandbox %.12s", a6, ep.Name(), sb.ID())
			} else if ok && idx6 != idx {
				t.Errorf("addresses %s and %s of joined endpoint %s are on different interfaces in sandbox %.12s", a, a6, ep.Name(), sb.ID())
			}
		}
	}
}

var ruleOwner = regexp.MustCompile(`(?:--comment "?| )cnm-(net|ep)-([0-9a-zA-Z_-]+)`)

// cnmRules lists the host namespace's rules that carry one of the
// library's comments (IPv4 and IPv6; mangle, nat and filter), and the
// published ports' map elements (whose comment is their endpoint's tag).
func cnmRules(t *testing.T, host *testutil.HostNS) []string {
	t.Helper()
	var out []string
	for _, e := range testrig.PortElems(t, host.NS) {
		out = append(out, "port map: "+e)
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		for _, r := range testrig.KernelRules(t, host, fam) {
			if strings.Contains(r, "cnm-") {
				out = append(out, fam.String()+" "+r)
			}
		}
	}
	return out
}

// checkRules: every rule tagged with a network or endpoint belongs to one
// that exists (checkPorts looks closer at the endpoints' rules), and every
// bridge network has all of its rules (checkNetworkRules).
func checkRules(t *testing.T, host *testutil.HostNS, nets map[string]*libnetwork.Network, eps map[string]*libnetwork.Endpoint) {
	t.Helper()
	for _, r := range cnmRules(t, host) {
		m := ruleOwner.FindStringSubmatch(r)
		if m == nil {
			continue // cnm-global: shared chains
		}
		if (m[1] == "net" && nets[m[2]] == nil) || (m[1] == "ep" && eps[m[2]] == nil) {
			t.Errorf("rule of a %s that does not exist: %s", m[1], r)
		}
	}
	testrig.CheckNetworkRules(t, host, nets)
}
