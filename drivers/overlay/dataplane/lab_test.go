package dataplane

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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
	l := &lab{t: t, ul: testutil.NewNamedNS(t, "underlay"), vni: 4097}
	ul0 := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: mtu, Flags: net.FlagUp}}
	must(t, l.ul.Netlink.LinkAdd(ul0))
	for i := 1; i <= n; i++ {
		h := &labHost{name: fmt.Sprintf("h%d", i), ns: testutil.NewNamedNS(t, fmt.Sprintf("h%d", i))}
		port := fmt.Sprintf("u%d", i)
		must(t, h.ns.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", MTU: mtu},
			PeerName: port, PeerNamespace: netlink.NsFd(l.ul.Fd()), PeerMTU: uint32(mtu)}))
		pl, err := l.ul.Netlink.LinkByName(port)
		must(t, err)
		must(t, l.ul.Netlink.LinkSetMaster(pl, ul0))
		must(t, l.ul.Netlink.LinkSetUp(pl))
		eth, err := h.ns.Netlink.LinkByName("eth0")
		must(t, err)
		var pfx netip.Prefix
		if v6 {
			pfx = netip.MustParsePrefix(fmt.Sprintf("fd00:100::%d/64", i))
		} else {
			pfx = netip.MustParsePrefix(fmt.Sprintf("192.168.100.%d/24", i))
		}
		must(t, h.ns.Netlink.AddrAdd(eth, &netlink.Addr{IPNet: ipNet(pfx), Flags: unix.IFA_F_NODAD}))
		must(t, h.ns.Netlink.LinkSetUp(eth))
		h.vtep = pfx.Addr()
		l.hosts = append(l.hosts, h)
	}
	return l
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

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
	addr := to.peer.IPv4
	if v6 {
		addr = to.peer.IPv6
	}
	var ln net.Listener
	if err := to.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	var conn net.Conn
	if err := from.ns.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		return fmt.Errorf("tcp %s → %s: %w", from.name, ln.Addr(), err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("hello over vxlan from " + from.name)
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("tcp %s → %s: echo: %w", from.name, ln.Addr(), err)
	}
	return nil
}

// udp sends datagrams of size bytes from c to to's address until one
// arrives or wait passes. df sets the don't-fragment bit (IPv4).
func udp(from, to *container, v6 bool, size int, wait time.Duration, df bool) error {
	addr := to.peer.IPv4
	network := "udp4"
	if v6 {
		addr, network = to.peer.IPv6, "udp6"
	}
	var srv, cli *net.UDPConn
	if err := to.ns.Do(func() (err error) {
		srv, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	}); err != nil {
		return err
	}
	defer srv.Close()
	if err := from.ns.Do(func() (err error) {
		cli, err = net.DialUDP(network, nil, srv.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		return err
	}
	defer cli.Close()
	if df && !v6 {
		raw, err := cli.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
		}); err != nil {
			return err
		}
		if serr != nil {
			return serr
		}
	}
	payload := make([]byte, size)
	got := make(chan error, 1)
	go func() {
		buf := make([]byte, size+1)
		_ = srv.SetReadDeadline(time.Now().Add(wait))
		n, err := srv.Read(buf)
		if err == nil && n != size {
			err = fmt.Errorf("got %d bytes, want %d", n, size)
		}
		got <- err
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var sendErr error
	for {
		if _, err := cli.Write(payload); err != nil {
			sendErr = err
		}
		select {
		case err := <-got:
			if err != nil {
				return fmt.Errorf("udp %s → %s (%d bytes): %w (last send error: %v)", from.name, srv.LocalAddr(), size, err, sendErr)
			}
			return nil
		case <-tick.C:
		}
	}
}

// blocked reports whether UDP from c to to is not delivered within a
// second. (Waiting longer never turns a delivered datagram into a lost
// one, so load cannot make this pass wrongly.)
func blocked(from, to *container, v6 bool) bool {
	return udp(from, to, v6, 32, time.Second, false) != nil
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
