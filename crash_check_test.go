package libnetwork_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Link aliases the bridge driver tags its bridges and host veths with.
const (
	netTag = "opencnm:net:"
	epTag  = "opencnm:ep:"
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
	held := map[string]string{} // IPv4 address -> holder
	hold := func(ip net.IP, who string) {
		if prev, dup := held[ip.String()]; dup {
			t.Errorf("address %s held by %s and %s", ip, prev, who)
		}
		held[ip.String()] = who
	}
	for _, n := range c.Networks() {
		nets[n.ID()] = n
		v4, _ := n.IpamInfo()
		for _, info := range v4 {
			if info.Gateway != nil {
				hold(info.Gateway.IP, "gateway of "+n.Name())
			}
		}
		for _, ep := range n.Endpoints() {
			eps[ep.ID()] = ep
			if a := ep.Info().Iface().Address(); a != nil {
				hold(a.IP, "endpoint "+ep.Name())
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
		stats.ports += len(pbs)
	}

	// IPAM holds exactly what the records hold: a new endpoint gets an
	// address nobody has.
	for _, n := range nets {
		if n.Type() != "bridge" {
			continue
		}
		ep, err := n.CreateEndpoint("probe")
		if err != nil {
			t.Errorf("creating a probe endpoint on %s: %v", n.Name(), err)
			continue
		}
		if a := ep.Info().Iface().Address(); a != nil {
			if who, dup := held[a.IP.String()]; dup {
				t.Errorf("IPAM handed out %s again (held by %s)", a.IP, who)
			}
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
		case strings.HasPrefix(a.Alias, netTag):
			id := strings.TrimPrefix(a.Alias, netTag)
			if nets[id] == nil {
				t.Errorf("bridge %s is tagged with network %.12s, which does not exist", a.Name, id)
			}
			bridgeOf[id] = a.Index
		case strings.HasPrefix(a.Alias, epTag):
			id := strings.TrimPrefix(a.Alias, epTag)
			if joined[id] == nil {
				t.Errorf("veth %s is tagged with endpoint %.12s, which is not joined", a.Name, id)
			}
			if prev := vethOf[id]; prev != nil {
				t.Errorf("veths %s and %s both tagged with endpoint %.12s", prev.Attrs().Name, a.Name, id)
			}
			vethOf[id] = l
		case a.Name == "lo":
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
		addrs, err := h.AddrList(nil, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		routes, err := h.RouteList(nil, netlink.FAMILY_V4)
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
		var want, got []string
		for _, ep := range joinedHere {
			if gw := ep.Info().Gateway(); gw != nil {
				want = append(want, gw.String())
				break
			}
		}
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				got = append(got, r.Gw.String())
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("sandbox %.12s: default routes via %v, want via %v (its gateway endpoint's)", sb.ID(), got, want)
		}
		for _, ep := range joinedHere {
			a := ep.Info().Iface().Address()
			idx, ok := onLink[a.IP.String()]
			switch {
			case !ok:
				t.Errorf("address %s of joined endpoint %s is not in sandbox %.12s", a, ep.Name(), sb.ID())
			case !up[idx]:
				t.Errorf("interface of joined endpoint %s in sandbox %.12s is down", ep.Name(), sb.ID())
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
	for _, e := range portElems(t, host.NS) {
		out = append(out, "port map: "+e)
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		for _, r := range kernelRules(t, host, fam) {
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
	checkNetworkRules(t, host, nets)
}
