// Package ovlab builds, for the overlay's privileged tests, throwaway
// "hosts" (network namespaces) on one underlay, and checks traffic
// between namespaces. Both the data plane's tests and the driver's use
// it; it never touches the machine's own namespace.
package ovlab

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// Host is a namespace whose eth0 is a veth to the underlay bridge, with
// its underlay address as VTEP.
type Host struct {
	Name string
	NS   *testutil.HostNS
	VTEP netip.Addr
}

// Underlay makes a parent "underlay" namespace holding the bridge ul0
// and n hosts h1..hn on it, every link of the given MTU; their addresses
// are 192.168.100.i/24, or fd00:100::i/64 if v6. All of it is removed
// when the test ends.
func Underlay(t testing.TB, n, mtu int, v6 bool) (*testutil.HostNS, []*Host) {
	t.Helper()
	ul := testutil.NewNamedNS(t, "underlay")
	ul0 := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ul0", MTU: mtu, Flags: net.FlagUp}}
	Must(t, ul.Netlink.LinkAdd(ul0))
	var hosts []*Host
	for i := 1; i <= n; i++ {
		h := &Host{Name: fmt.Sprintf("h%d", i), NS: testutil.NewNamedNS(t, fmt.Sprintf("h%d", i))}
		port := fmt.Sprintf("u%d", i)
		Must(t, h.NS.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", MTU: mtu},
			PeerName: port, PeerNamespace: netlink.NsFd(ul.Fd()), PeerMTU: uint32(mtu)}))
		pl, err := ul.Netlink.LinkByName(port)
		Must(t, err)
		Must(t, ul.Netlink.LinkSetMaster(pl, ul0))
		Must(t, ul.Netlink.LinkSetUp(pl))
		eth, err := h.NS.Netlink.LinkByName("eth0")
		Must(t, err)
		var pfx netip.Prefix
		if v6 {
			pfx = netip.MustParsePrefix(fmt.Sprintf("fd00:100::%d/64", i))
		} else {
			pfx = netip.MustParsePrefix(fmt.Sprintf("192.168.100.%d/24", i))
		}
		Must(t, h.NS.Netlink.AddrAdd(eth, &netlink.Addr{IPNet: IPNet(pfx), Flags: unix.IFA_F_NODAD}))
		Must(t, h.NS.Netlink.LinkSetUp(eth))
		h.VTEP = pfx.Addr()
		hosts = append(hosts, h)
	}
	return ul, hosts
}

// Must fails t on err.
func Must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// IPNet converts p.
func IPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// Doer runs a function inside a namespace (a testutil.HostNS, an
// osl.Sandbox).
type Doer interface {
	Do(fn func() error) error
}

// TCP connects from the namespace from to a listener on addr in to and
// checks an echo; name labels errors.
func TCP(from, to Doer, addr netip.Addr, name string) error {
	var ln net.Listener
	if err := to.Do(func() (err error) {
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
	if err := from.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 10*time.Second)
		return err
	}); err != nil {
		return fmt.Errorf("tcp %s → %s: %w", name, ln.Addr(), err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	msg := []byte("hello over vxlan from " + name)
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(conn, got); err != nil {
		return fmt.Errorf("tcp %s → %s: echo: %w", name, ln.Addr(), err)
	}
	return nil
}

// UDP sends datagrams of size bytes from the namespace from to a socket
// on addr in to until one arrives or wait passes. df sets the
// don't-fragment bit (IPv4).
func UDP(from, to Doer, addr netip.Addr, name string, size int, wait time.Duration, df bool) error {
	network := "udp4"
	if addr.Is6() {
		network = "udp6"
	}
	var srv, cli *net.UDPConn
	if err := to.Do(func() (err error) {
		srv, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
		return err
	}); err != nil {
		return err
	}
	defer srv.Close()
	if err := from.Do(func() (err error) {
		cli, err = net.DialUDP(network, nil, srv.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		return err
	}
	defer cli.Close()
	if df && addr.Is4() {
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
				return fmt.Errorf("udp %s → %s (%d bytes): %w (last send error: %v)", name, srv.LocalAddr(), size, err, sendErr)
			}
			return nil
		case <-tick.C:
		}
	}
}

// Blocked reports whether UDP from from to addr in to is not delivered
// within a second. (Waiting longer never turns a delivered datagram into
// a lost one, so load cannot make this pass wrongly.)
func Blocked(from, to Doer, addr netip.Addr) bool {
	return UDP(from, to, addr, "probe", 32, time.Second, false) != nil
}
