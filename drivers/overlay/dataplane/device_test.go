package dataplane

import (
	"errors"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// assertMTUs checks the MTU of every link of the overlay: the VXLAN
// device, the bridge, the bridge ends and the containers' ends.
func assertMTUs(t *testing.T, l *lab, cs []*container, want int) {
	t.Helper()
	for _, h := range l.hosts {
		if h.net.MTU() != want {
			t.Errorf("%s: network MTU %d, want %d", h.name, h.net.MTU(), want)
		}
		ls, err := h.net.nl.LinkList()
		must(t, err)
		for _, lk := range ls {
			if lk.Attrs().Name != "lo" && lk.Attrs().MTU != want {
				t.Errorf("%s: %s has MTU %d, want %d", h.name, lk.Attrs().Name, lk.Attrs().MTU, want)
			}
		}
	}
	for _, c := range cs {
		eth, err := c.ns.Netlink.LinkByName("eth0")
		must(t, err)
		if eth.Attrs().MTU != want {
			t.Errorf("%s: eth0 has MTU %d, want %d", c.name, eth.Attrs().MTU, want)
		}
	}
}

// The MTU is the underlay's minus 50 unless set; a 1400-byte underlay
// carries a full-sized don't-fragment datagram; an MTU the underlay
// cannot carry is refused.
func TestMTU(t *testing.T) {
	l := newLab(t, 2, 1400, false)
	l.networks(0)
	c1, c2 := l.container(1, 1), l.container(2, 2)
	l.mesh(c1, c2)
	assertMTUs(t, l, []*container{c1, c2}, 1350)
	if err := udp(c1, c2, false, 1350-28, 10*time.Second, true); err != nil {
		t.Errorf("a full-MTU datagram over a 1400-byte underlay: %v", err)
	}
	if err := tcp(c2, c1, false); err != nil {
		t.Error(err)
	}

	l2 := newLab(t, 1, 1400, false)
	l2.vni = 4098
	cfg := l2.config(l2.hosts[0], 1351)
	_, err := Create(cfg)
	var inv *InvalidError
	if !errors.As(err, &inv) || !types.IsBadRequest(err) {
		t.Errorf("MTU 1351 over a 1400 underlay: %v, want an InvalidError", err)
	}
	if _, serr := os.Stat(cfg.NSPath); !os.IsNotExist(serr) {
		t.Errorf("refused create left %s: %v", cfg.NSPath, serr)
	}
	l2.networks(1300)
	c3 := l2.container(1, 3)
	assertMTUs(t, l2, []*container{c3}, 1300)
}

// The VXLAN device sits in the network's namespace with no learning, no
// group, the proxy on, the VNI, port and local address asked for, and
// its UDP socket bound in the host namespace, on the underlay.
func TestVXLANDevice(t *testing.T) {
	l := newLab(t, 1, 1500, false)
	l.networks(0)
	h := l.hosts[0]
	lk, err := h.net.nl.LinkByIndex(h.net.vx)
	must(t, err)
	vx, ok := lk.(*netlink.Vxlan)
	if !ok {
		t.Fatalf("device %d is a %s", h.net.vx, lk.Type())
	}
	if vx.VxlanId != int(l.vni) || vx.Port != DefaultPort || !vx.SrcAddr.Equal(h.vtep.AsSlice()) ||
		vx.Learning || !vx.Proxy || (vx.Group != nil && !vx.Group.IsUnspecified()) || vx.L2miss || vx.L3miss {
		t.Errorf("vxlan device %+v: want VNI %d, port %d, local %s, nolearning, proxy, no group", vx, l.vni, DefaultPort, h.vtep)
	}
	if vx.MasterIndex != h.net.br || vx.OperState == netlink.OperDown {
		t.Errorf("vxlan device: master %d, state %s; want %s's bridge and up", vx.MasterIndex, vx.OperState, h.name)
	}
	bindable := func(ns *testutil.HostNS) error {
		return ns.Do(func() error {
			c, err := net.ListenPacket("udp4", ":4789")
			if err == nil {
				c.Close()
			}
			return err
		})
	}
	if err := bindable(h.ns); !isErrno(err, unix.EADDRINUSE) {
		t.Errorf("binding UDP 4789 in the host namespace: %v, want EADDRINUSE (the VXLAN socket is there)", err)
	}
	netNS := &testutil.HostNS{NS: h.net.ns}
	if err := bindable(netNS); err != nil {
		t.Errorf("binding UDP 4789 in the network namespace: %v, want no socket there", err)
	}
	if got := links(t, h.ns.Netlink); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("host namespace links %q: the data plane put something there", got)
	}
}

// Delete removes every link and the namespace, twice is fine, and the
// VNI is free at once.
func TestDeleteLeavesNothing(t *testing.T) {
	l := newLab(t, 2, 1500, false)
	l.networks(0)
	c1, c2 := l.container(1, 1), l.container(2, 2)
	l.mesh(c1, c2)
	must(t, tcp(c1, c2, false))
	for _, h := range l.hosts {
		must(t, h.net.Delete())
		must(t, h.net.Delete())
		must(t, h.net.RemovePeer("anything"))
		must(t, h.net.Detach("anything"))
		if _, err := os.Stat(h.net.NSPath()); !os.IsNotExist(err) {
			t.Errorf("%s: namespace file left: %v", h.name, err)
		}
		if got := links(t, h.ns.Netlink); !slices.Equal(got, []string{"eth0", "lo"}) {
			t.Errorf("%s: host namespace links %q", h.name, got)
		}
		if err := h.net.AddPeer(c1.peer); !types.IsForbidden(err) {
			t.Errorf("%s: AddPeer after Delete: %v, want Forbidden", h.name, err)
		}
	}
	for _, c := range []*container{c1, c2} {
		if got := links(t, c.ns.Netlink); !slices.Equal(got, []string{"lo"}) {
			t.Errorf("%s: links left %q", c.name, got)
		}
	}
	// Same VNI, same port, same host: nothing of the old device is in the way.
	l.networks(0)
}

// A create failing after the namespace is made (the port is taken in the
// host namespace, so the device cannot open its socket) leaves nothing.
func TestCreateUndoesItself(t *testing.T) {
	l := newLab(t, 1, 1500, false)
	h := l.hosts[0]
	var hold net.PacketConn
	must(t, h.ns.Do(func() (err error) {
		hold, err = net.ListenPacket("udp4", ":4789")
		return err
	}))
	cfg := l.config(h, 0)
	_, err := Create(cfg)
	if !isErrno(err, unix.EADDRINUSE) || !types.IsInternal(err) {
		t.Errorf("create with the port taken: %v, want an Internal error wrapping EADDRINUSE", err)
	}
	if _, serr := os.Stat(cfg.NSPath); !os.IsNotExist(serr) {
		t.Errorf("failed create left %s: %v", cfg.NSPath, serr)
	}
	hold.Close()
	l.networks(0) // the VNI is free: the half-made device went
}

// Attach is idempotent, refuses other settings for the same ID, undoes
// itself when the container's interface name is taken, and Detach
// removes both ends.
func TestAttachDetach(t *testing.T) {
	l := newLab(t, 1, 1500, false)
	l.networks(0)
	h := l.hosts[0]
	c := l.container(1, 1)
	again, err := h.net.Attach(EndpointConfig{ID: c.peer.ID, NS: c.ns.NS, IfName: "eth0",
		IPv4: prefix("10.0.0.1/24"), IPv6: prefix("fd00:db8::1/64")})
	if err != nil || !again.equal(c.peer) {
		t.Errorf("attaching again: %v, %v; want the same peer %v", again, err, c.peer)
	}
	if c.peer.MAC.String() != "02:42:0a:00:00:01" {
		t.Errorf("derived MAC %s, want 02:42:0a:00:00:01", c.peer.MAC)
	}
	_, err = h.net.Attach(EndpointConfig{ID: c.peer.ID, NS: c.ns.NS, IfName: "eth0", IPv4: prefix("10.0.0.9/24")})
	if !types.IsForbidden(err) {
		t.Errorf("attaching the same ID with another address: %v, want Forbidden", err)
	}

	busy := testutil.NewNamedNS(t, "busy")
	must(t, busy.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "other"}))
	before := links(t, h.net.nl)
	_, err = h.net.Attach(EndpointConfig{ID: "ep-busy", NS: busy.NS, IfName: "eth0", IPv4: prefix("10.0.0.5/24"),
		MAC: net.HardwareAddr{2, 0, 0, 0, 0, 5}})
	if !types.IsForbidden(err) {
		t.Errorf("attaching into a namespace whose eth0 exists: %v, want Forbidden", err)
	}
	if got := links(t, h.net.nl); !slices.Equal(got, before) {
		t.Errorf("failed attach left links %q, want %q", got, before)
	}

	// A failure after the veth is made (no IPv6 in the container for its
	// address) takes the veth away again.
	noV6 := testutil.NewNamedNS(t, "nov6")
	d, err := noV6.OpenSysctlDir("net/ipv6/conf")
	must(t, err)
	must(t, d.Write("default/disable_ipv6", "1"))
	_, err = h.net.Attach(EndpointConfig{ID: "ep-nov6", NS: noV6.NS, IfName: "eth0",
		IPv4: prefix("10.0.0.6/24"), IPv6: prefix("fd00:db8::6/64")})
	if !types.IsInternal(err) {
		t.Errorf("attaching an IPv6 address into a namespace without IPv6: %v, want an Internal error", err)
	}
	if got := links(t, h.net.nl); !slices.Equal(got, before) {
		t.Errorf("attach failing at its address left links %q, want %q", got, before)
	}
	if got := links(t, noV6.Netlink); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("attach failing at its address left %q in the container", got)
	}

	must(t, h.net.Detach(c.peer.ID))
	must(t, h.net.Detach(c.peer.ID))
	awaitReaped(t, h.net)
	if got := links(t, c.ns.Netlink); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("container links after detach %q", got)
	}
	if got := links(t, h.net.nl); !slices.Equal(got, []string{BridgeName, "lo", vxlanName}) {
		t.Errorf("network namespace links after detach %q", got)
	}
}

// A namespace a crashed process left at the path, with its VXLAN device
// still holding the VNI on the host's socket, is cleared by the next
// Create of the network.
func TestCreateClearsACrashLeftover(t *testing.T) {
	l := newLab(t, 1, 1500, false)
	h := l.hosts[0]
	cfg := l.config(h, 0)
	old, err := Create(cfg)
	must(t, err)
	// The crash: the process's handles go, nothing is torn down. (Here
	// the namespace stays alive with its mount; after a real crash the
	// kernel frees it asynchronously, which is no better for the VNI.)
	crash(old)

	n, err := Create(cfg)
	if err != nil {
		t.Fatalf("create over a crash leftover: %v", err)
	}
	// A live network of the VNI elsewhere is a conflict, not a leftover.
	other := l.config(h, 0)
	if _, err := Create(other); !types.IsForbidden(err) {
		t.Errorf("a second network of VNI %d on the host: %v, want Forbidden", l.vni, err)
	}
	if _, err := os.Stat(other.NSPath); !os.IsNotExist(err) {
		t.Errorf("refused create left %s: %v", other.NSPath, err)
	}
	must(t, n.Delete())
	if got := links(t, h.ns.Netlink); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("host namespace links %q", got)
	}
}

// A Bare endpoint's interface is created with its MAC and the network's
// MTU and left down without addresses, for the sandbox to configure;
// Detach still removes it.
func TestAttachBare(t *testing.T) {
	l := newLab(t, 1, 1500, false)
	l.networks(0)
	n := l.hosts[0].net
	c := testutil.NewNamedNS(t, "c1")
	mac := net.HardwareAddr{0x02, 0x33, 0, 0, 0, 1}
	p, err := n.Attach(EndpointConfig{ID: "e1", NS: c.NS, IfName: "eth7", MAC: mac, IPv4: prefix("10.0.0.1/24"), Bare: true})
	must(t, err)
	if p.IPv4 != prefix("10.0.0.1/24").Addr() || p.MAC.String() != mac.String() {
		t.Fatalf("peer %+v: want the endpoint's address and MAC", p)
	}
	link, err := c.Netlink.LinkByName("eth7")
	must(t, err)
	a := link.Attrs()
	if a.HardwareAddr.String() != mac.String() || a.MTU != n.MTU() || a.Flags&net.FlagUp != 0 {
		t.Fatalf("bare interface: MAC %s MTU %d up=%v; want %s, %d, down", a.HardwareAddr, a.MTU, a.Flags&net.FlagUp != 0, mac, n.MTU())
	}
	addrs, err := c.Netlink.AddrList(link, netlink.FAMILY_V4)
	must(t, err)
	if len(addrs) != 0 {
		t.Fatalf("bare interface has addresses %v", addrs)
	}
	must(t, n.Detach("e1"))
	awaitReaped(t, n)
	if _, err := c.Netlink.LinkByName("eth7"); err == nil {
		t.Fatal("Detach left the bare interface")
	}
}
