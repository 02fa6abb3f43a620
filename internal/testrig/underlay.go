package testrig

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// Underlay is the physical network of a test cluster: a bridge in a
// parent "lab" namespace that every host namespace is plugged into by a
// veth, as machines on one switch. Nothing of it is in the machine's own
// namespace; the namespaces go when the test ends.
type Underlay struct {
	Lab *testutil.HostNS
	MTU int
	br  *netlink.Bridge
	n   int // ports made so far
}

// UnderlayBridge is the name of the switch inside the lab namespace.
const UnderlayBridge = "ul0"

// The addresses of underlay port i (1-based): 192.168.100.(10+i)/24 and
// fd00:100::(10+i)/64.
func underlayAddrs(i int) (netip.Prefix, netip.Prefix) {
	return netip.MustParsePrefix(fmt.Sprintf("192.168.100.%d/24", 10+i)),
		netip.MustParsePrefix(fmt.Sprintf("fd00:100::%d/64", 10+i))
}

// NewUnderlay makes the lab namespace and its bridge with the given MTU
// (0 is 1500).
func NewUnderlay(t testing.TB, mtu int) *Underlay {
	t.Helper()
	if mtu == 0 {
		mtu = 1500
	}
	u := &Underlay{Lab: testutil.NewNamedNS(t, "lab"), MTU: mtu}
	u.br = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: UnderlayBridge, MTU: mtu, Flags: net.FlagUp}}
	if err := u.Lab.Netlink.LinkAdd(u.br); err != nil {
		t.Fatalf("underlay bridge: %v", err)
	}
	return u
}

// Plug gives ns an eth0 on the underlay with the next port's IPv4 and
// IPv6 addresses (no duplicate address detection: the addresses are the
// rig's to hand out) and returns them.
func (u *Underlay) Plug(t testing.TB, ns *testutil.HostNS) (v4, v6 netip.Prefix) {
	t.Helper()
	u.n++
	v4, v6 = underlayAddrs(u.n)
	port := fmt.Sprintf("u%d", u.n)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", MTU: u.MTU},
		PeerName: port, PeerNamespace: netlink.NsFd(u.Lab.Fd()), PeerMTU: uint32(u.MTU)}
	if err := ns.Netlink.LinkAdd(veth); err != nil {
		t.Fatalf("underlay port %s: %v", port, err)
	}
	pl, err := u.Lab.Netlink.LinkByName(port)
	if err == nil {
		err = u.Lab.Netlink.LinkSetMaster(pl, u.br)
	}
	if err == nil {
		err = u.Lab.Netlink.LinkSetUp(pl)
	}
	if err != nil {
		t.Fatalf("underlay port %s: %v", port, err)
	}
	eth, err := ns.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []netip.Prefix{v4, v6} {
		ipn := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
		if err := ns.Netlink.AddrAdd(eth, &netlink.Addr{IPNet: ipn, Flags: unix.IFA_F_NODAD}); err != nil {
			t.Fatalf("underlay address %s: %v", p, err)
		}
	}
	if err := ns.Netlink.LinkSetUp(eth); err != nil {
		t.Fatal(err)
	}
	return v4, v6
}
