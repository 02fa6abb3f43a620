package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/drivers/overlay/internal/ovlab"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// lab is a few throwaway "hosts" (namespaces) whose eth0 are veths to
// the bridge ul0 of a parent "underlay" namespace, each with one overlay
// network's data plane on it.
type lab struct {
	t     testing.TB
	ul    *testutil.HostNS
	hosts []*labHost
	vni   uint32
}

type labHost struct {
	name string
	ns   *testutil.HostNS
	vtep netip.Addr
	net  *Network
}

// container is a namespace attached to a host's network as eth0.
type container struct {
	name string
	ns   *testutil.HostNS
	host *labHost
	peer Peer
}

// newLab makes n hosts on an underlay of the given MTU, over IPv6 if v6,
// and returns before any network exists on them.
func newLab(t testing.TB, n, mtu int, v6 bool) *lab {
	t.Helper()
	ul, hosts := ovlab.Underlay(t, n, mtu, v6)
	l := &lab{t: t, ul: ul, vni: 4097}
	for _, h := range hosts {
		l.hosts = append(l.hosts, &labHost{name: h.Name, ns: h.NS, vtep: h.VTEP})
	}
	return l
}

func must(t testing.TB, err error) { t.Helper(); ovlab.Must(t, err) }

func ipNet(p netip.Prefix) *net.IPNet { return ovlab.IPNet(p) }

func (l *lab) config(h *labHost, mtu int) Config {
	return Config{VNI: l.vni, HostNS: h.ns.NS, LocalVTEP: h.vtep, MTU: mtu,
		NSPath: filepath.Join(l.t.TempDir(), h.name+"-overlay.netns")}
}

// networks creates the overlay network's data plane on every host.
func (l *lab) networks(mtu int) {
	l.t.Helper()
	for _, h := range l.hosts {
		n, err := Create(l.config(h, mtu))
		must(l.t, err)
		h.net = n
		l.t.Cleanup(func() {
			if err := n.Delete(); err != nil {
				l.t.Errorf("deleting %s's network: %v", h.name, err)
			}
		})
	}
}

// container attaches a new container on host h (1-based) with
// addresses 10.0.0.x/24 and fd00:db8::x/64.
func (l *lab) container(h, x int) *container {
	l.t.Helper()
	host := l.hosts[h-1]
	c := &container{name: fmt.Sprintf("c%d", x), ns: testutil.NewNamedNS(l.t, fmt.Sprintf("c%d", x)), host: host}
	p, err := host.net.Attach(EndpointConfig{ID: "ep" + c.name, NS: c.ns.NS, IfName: "eth0",
		IPv4: netip.MustParsePrefix(fmt.Sprintf("10.0.0.%d/24", x)),
		IPv6: netip.MustParsePrefix(fmt.Sprintf("fd00:db8::%d/64", x))})
	must(l.t, err)
	c.peer = p
	return c
}

// mesh programs every container as a peer on every other host.
func (l *lab) mesh(cs ...*container) {
	l.t.Helper()
	for _, h := range l.hosts {
		for _, c := range cs {
			if c.host != h {
				must(l.t, h.net.AddPeer(c.peer))
			}
		}
	}
}

// tcp connects from c to to's address of the family and checks an echo.
func tcp(from, to *container, v6 bool) error {
	return ovlab.TCP(from.ns, to.ns, to.addr(v6), from.name)
}

// udp sends datagrams of size bytes from c to to's address until one
// arrives or wait passes. df sets the don't-fragment bit (IPv4).
func udp(from, to *container, v6 bool, size int, wait time.Duration, df bool) error {
	return ovlab.UDP(from.ns, to.ns, to.addr(v6), from.name, size, wait, df)
}

// blocked reports whether UDP from c to to is not delivered within a
// second.
func blocked(from, to *container, v6 bool) bool {
	return ovlab.Blocked(from.ns, to.ns, to.addr(v6))
}

func (c *container) addr(v6 bool) netip.Addr {
	if v6 {
		return c.peer.IPv6
	}
	return c.peer.IPv4
}

// fdbOf and neighOf read the kernel's entries on a host's VXLAN device.
func fdbOf(t testing.TB, n *Network) []string {
	t.Helper()
	list, err := n.nl.NeighList(n.vx, unix.AF_BRIDGE)
	must(t, err)
	var out []string
	for _, e := range list {
		if e.Flags&netlink.NTF_SELF != 0 && e.Flags&netlink.NTF_MASTER == 0 {
			out = append(out, fmt.Sprintf("%s dst %s permanent=%v", e.HardwareAddr, e.IP, e.State&netlink.NUD_PERMANENT != 0))
		}
	}
	slices.Sort(out)
	return out
}

func neighOf(t testing.TB, n *Network) []string {
	t.Helper()
	var out []string
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		list, err := n.nl.NeighList(n.vx, fam)
		must(t, err)
		for _, e := range list {
			if e.State&netlink.NUD_PERMANENT != 0 {
				out = append(out, fmt.Sprintf("%s lladdr %s", e.IP, e.HardwareAddr))
			}
		}
	}
	slices.Sort(out)
	return out
}

// links names the links of a namespace.
func links(t testing.TB, h *netlink.Handle) []string {
	t.Helper()
	ls, err := h.LinkList()
	must(t, err)
	var out []string
	for _, l := range ls {
		out = append(out, l.Attrs().Name)
	}
	slices.Sort(out)
	return out
}

func isErrno(err error, e unix.Errno) bool { return errors.Is(err, e) }

func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
