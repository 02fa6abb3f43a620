package dataplane

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// A container that sent to an address before its peer existed gets its
// queued datagrams through as soon as the peer is programmed, although
// its own neighbour retry is a minute away: the peer was announced.
func TestAnnouncementResolvesAWaitingSender(t *testing.T) {
	l := newLab(t, 2, 1500, false)
	l.networks(0)
	c2 := l.container(2, 2)
	for _, dir := range []string{"net/ipv4/neigh", "net/ipv6/neigh"} {
		d, err := c2.ns.OpenSysctlDir(dir)
		must(t, err)
		must(t, d.Write("eth0/retrans_time_ms", "60000"))
	}
	c1ns := testutil.NewNamedNS(t, "c1")
	want := map[netip.Addr]bool{netip.MustParseAddr("10.0.0.1"): true, netip.MustParseAddr("fd00:db8::1"): true}
	got := make(chan netip.Addr, 8)
	for ip := range want {
		network := map[bool]string{true: "udp4", false: "udp6"}[ip.Is4()]
		var rx *net.UDPConn
		must(t, c1ns.Do(func() (err error) {
			rx, err = net.ListenUDP(network, &net.UDPAddr{Port: 7777})
			return err
		}))
		t.Cleanup(func() { rx.Close() })
		go func() {
			buf := make([]byte, 64)
			for {
				if _, err := rx.Read(buf); err != nil {
					return
				}
				got <- ip
			}
		}()
		var tx *net.UDPConn
		must(t, c2.ns.Do(func() (err error) {
			tx, err = net.DialUDP(network, nil, &net.UDPAddr{IP: ip.AsSlice(), Port: 7777})
			return err
		}))
		t.Cleanup(func() { tx.Close() })
		if _, err := tx.Write([]byte("queued before the peer existed")); err != nil {
			t.Fatal(err)
		}
		if st := neighState(t, c2, ip); st != netlink.NUD_INCOMPLETE {
			t.Fatalf("c2's neighbour entry for %s is in state %#x, want incomplete", ip, st)
		}
	}

	p, err := l.hosts[0].net.Attach(EndpointConfig{ID: "epc1", NS: c1ns.NS, IfName: "eth0",
		IPv4: prefix("10.0.0.1/24"), IPv6: prefix("fd00:db8::1/64")})
	must(t, err)
	must(t, l.hosts[1].net.AddPeer(p))
	deadline := time.After(20 * time.Second) // generous: the kernel would retry only after 60 s
	for len(want) > 0 {
		select {
		case ip := <-got:
			delete(want, ip)
		case <-deadline:
			t.Fatalf("queued datagrams to %v never arrived", want)
		}
	}
}

func neighState(t *testing.T, c *container, ip netip.Addr) int {
	t.Helper()
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	list, err := c.ns.Netlink.NeighList(0, fam)
	must(t, err)
	for _, n := range list {
		if a, _ := netip.AddrFromSlice(n.IP); a.Unmap() == ip {
			return n.State
		}
	}
	return -1
}

// The frames are what the kernel expects: a checksum that verifies.
func TestUnsolicitedNAChecksum(t *testing.T) {
	f := unsolicitedNA(mac(1), netip.MustParseAddr("fd00:db8::1"))
	src, dst := [16]byte(f[22:38]), [16]byte(f[38:54])
	if sum := icmp6Checksum(src, dst, f[54:]); sum != 0 {
		t.Errorf("checksum over the message with its checksum is %#x, want 0", sum)
	}
}
