package osl

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

func TestAddRemoveInterfaces(t *testing.T) {
	host := testutil.NewHostNS(t)
	s := newTestSandbox(t, "ifaces")
	nl := s.Netlink()

	// eth0: a veth end moved in from the host.
	addHostVeth(t, host, "vh0", "vs0")
	n0 := s.ReserveName("eth")
	if n0 != "eth0" {
		t.Fatalf("first ReserveName = %s, want eth0", n0)
	}
	mac, _ := net.ParseMAC("02:42:0a:01:00:02")
	cfg0 := InterfaceConfig{
		SrcName: "vs0", HostNS: host.NS, DstName: n0,
		MacAddress:  mac,
		MTU:         1400,
		Address:     mustCIDR(t, "10.1.0.2/24"),
		AddressIPv6: mustCIDR(t, "fd00:1::2/64"),
		LinkLocal:   []*net.IPNet{mustCIDR(t, "169.254.9.9/16")},
		Routes:      []*net.IPNet{mustCIDR(t, "192.168.50.0/24")},
	}
	if err := s.AddInterface(host.Netlink, cfg0); err != nil {
		t.Fatal(err)
	}

	// eth1: created by a "driver" directly inside the sandbox.
	n1 := s.ReserveName("eth")
	if n1 != "eth1" {
		t.Fatalf("second ReserveName = %s, want eth1", n1)
	}
	addInsideVeth(t, host, s, "vh1", n1)
	cfg1 := InterfaceConfig{DstName: n1, Address: mustCIDR(t, "10.2.0.2/24"), MTU: 1450}
	if err := s.AddInterface(nil, cfg1); err != nil {
		t.Fatal(err)
	}

	if _, err := host.Netlink.LinkByName("vs0"); err == nil {
		t.Error("vs0 still in the host namespace after the move")
	}
	l0, err := nl.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	a := l0.Attrs()
	if a.HardwareAddr.String() != mac.String() {
		t.Errorf("eth0 MAC %s, want %s", a.HardwareAddr, mac)
	}
	if a.MTU != 1400 {
		t.Errorf("eth0 MTU %d, want 1400", a.MTU)
	}
	if a.Flags&net.FlagUp == 0 {
		t.Error("eth0 is not up")
	}
	addrs, err := nl.AddrList(l0, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var have []string
	for _, ad := range addrs {
		have = append(have, ad.IPNet.String())
		if ad.IP.Equal(cfg0.AddressIPv6.IP) {
			if ad.Flags&unix.IFA_F_NODAD == 0 {
				t.Errorf("IPv6 address flags %#x lack IFA_F_NODAD", ad.Flags)
			}
			if ad.Flags&unix.IFA_F_TENTATIVE != 0 {
				t.Error("IPv6 address is tentative")
			}
		}
	}
	for _, want := range []string{"10.1.0.2/24", "fd00:1::2/64", "169.254.9.9/16"} {
		if !slices.Contains(have, want) {
			t.Errorf("eth0 lacks %s; has %v", want, have)
		}
	}
	if v := readSysctl(t, s, "net/ipv6/conf/eth0/disable_ipv6"); v != "0" {
		t.Errorf("IPv6 not enabled on eth0 (disable_ipv6=%s)", v)
	}
	if v := readSysctl(t, s, "net/ipv6/conf/lo/disable_ipv6"); v != "0" {
		t.Errorf("IPv6 not enabled on lo (disable_ipv6=%s)", v)
	}
	if v := readSysctl(t, s, "net/ipv6/conf/eth1/disable_ipv6"); v != "1" {
		t.Errorf("IPv6 enabled on the IPv4-only eth1 (disable_ipv6=%s)", v)
	}
	routes, err := nl.RouteList(l0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(routes, func(r netlink.Route) bool {
		return r.Dst != nil && r.Dst.String() == "192.168.50.0/24" && r.Scope == netlink.SCOPE_LINK
	}) {
		t.Errorf("connected route 192.168.50.0/24 missing: %v", routes)
	}

	l1, err := nl.LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	if l1.Attrs().Flags&net.FlagUp == 0 || l1.Attrs().MTU != 1450 {
		t.Errorf("eth1 up=%v mtu=%d, want up and 1450", l1.Attrs().Flags&net.FlagUp != 0, l1.Attrs().MTU)
	}

	ifs := s.Interfaces()
	if len(ifs) != 2 || ifs[0].DstName != "eth0" || ifs[0].SrcName != "vs0" || ifs[1].DstName != "eth1" || ifs[1].SrcName != "" {
		t.Fatalf("Interfaces() = %+v", ifs)
	}
	if ifs[0].MacAddress.String() != mac.String() || ifs[0].MTU != 1400 || !types.CompareIPNet(ifs[0].Address, cfg0.Address) {
		t.Errorf("recorded eth0 = %+v", ifs[0])
	}
	if len(ifs[1].MacAddress) != 6 {
		t.Errorf("eth1 MAC not read back: %v", ifs[1].MacAddress)
	}
	// Copies: changing the result does not change the sandbox.
	ifs[0].Address.IP[0] = 99
	if s.Interfaces()[0].Address.IP[0] != 10 {
		t.Error("Interfaces() shares memory with the sandbox")
	}
	if n := s.ReserveName("eth"); n != "eth2" {
		t.Errorf("ReserveName with eth0, eth1 present = %s, want eth2", n)
	}

	// Remove: the moved-in link goes home under its old name, down and bare.
	if err := s.RemoveInterface("eth0"); err != nil {
		t.Fatal(err)
	}
	back, err := host.Netlink.LinkByName("vs0")
	if err != nil {
		t.Fatalf("vs0 not back in the host namespace: %v", err)
	}
	if back.Attrs().Flags&net.FlagUp != 0 {
		t.Error("vs0 came back up")
	}
	if got, _ := host.Netlink.AddrList(back, netlink.FAMILY_V4); len(got) != 0 {
		t.Errorf("vs0 came back with addresses %v", got)
	}
	if _, err := nl.LinkByName("eth0"); err == nil {
		t.Error("eth0 still in the sandbox")
	}
	// No interface has IPv6 now: lo goes back to the fresh state.
	if v := readSysctl(t, s, "net/ipv6/conf/lo/disable_ipv6"); v != "1" {
		t.Errorf("lo keeps IPv6 with no IPv6 interface left (disable_ipv6=%s)", v)
	}
	// The created-inside link is deleted, taking its host peer along.
	if err := s.RemoveInterface("eth1"); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Netlink.LinkByName("vh1"); err == nil {
		t.Error("vh1 survived the deletion of its peer")
	}
	for _, n := range []string{"eth0", "eth1", "nothere"} {
		if err := s.RemoveInterface(n); err != nil {
			t.Errorf("RemoveInterface(%s) when gone: %v", n, err)
		}
	}
	if got := linkNames(t, nl); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("links left in the sandbox: %v", got)
	}
	if len(s.Interfaces()) != 0 {
		t.Errorf("records left: %+v", s.Interfaces())
	}
}

func TestAddInterfaceValidation(t *testing.T) {
	s := newTestSandbox(t, "validate")
	host := testutil.NewHostNS(t)
	cases := map[string]InterfaceConfig{
		"no name":      {},
		"long name":    {DstName: "abcdefghijklmnop"},
		"lo":           {DstName: "lo"},
		"no host ns":   {SrcName: "x", DstName: "eth0"},
		"v6 as v4":     {DstName: "eth0", Address: mustCIDR(t, "fd00::1/64")},
		"v4 as v6":     {DstName: "eth0", AddressIPv6: mustCIDR(t, "10.0.0.1/24")},
		"negative MTU": {DstName: "eth0", MTU: -1},
	}
	for name, cfg := range cases {
		if err := s.AddInterface(host.Netlink, cfg); !types.IsBadRequest(err) {
			t.Errorf("%s: %v, want BadRequest", name, err)
		}
	}
	err := s.AddInterface(host.Netlink, InterfaceConfig{SrcName: "missing0", HostNS: host.NS, DstName: "eth0"})
	if !types.IsNotFound(err) {
		t.Errorf("missing host link: %v, want NotFound", err)
	}
	if err := s.AddInterface(nil, InterfaceConfig{DstName: "eth0"}); !types.IsNotFound(err) {
		t.Errorf("missing inside link: %v, want NotFound", err)
	}
}

func TestAddInterfaceRollback(t *testing.T) {
	host := testutil.NewHostNS(t)
	s := newTestSandbox(t, "rollback")
	nl := s.Netlink()

	// A multicast MAC is refused by the kernel after the link moved in and
	// was renamed: it must go back to the host under its own name.
	addHostVeth(t, host, "vh0", "vs0")
	bad, _ := net.ParseMAC("01:00:5e:00:00:01")
	err := s.AddInterface(host.Netlink, InterfaceConfig{
		SrcName: "vs0", HostNS: host.NS, DstName: s.ReserveName("eth"),
		MacAddress: bad, Address: mustCIDR(t, "10.1.0.2/24"),
	})
	if err == nil {
		t.Fatal("multicast MAC accepted")
	}
	t.Logf("multicast MAC: %v", err)
	if !types.IsBadRequest(err) || !strings.Contains(err.Error(), "MAC") {
		t.Errorf("multicast MAC error %q, want BadRequest naming the MAC step", err)
	}
	if got := linkNames(t, nl); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("links left in the sandbox after rollback: %v", got)
	}
	if _, err := host.Netlink.LinkByName("vs0"); err != nil {
		t.Errorf("vs0 not back in the host: %v", err)
	}
	// The reservation was consumed by the failed call.
	if n := s.ReserveName("eth"); n != "eth0" {
		t.Errorf("ReserveName after failed add = %s, want eth0 again", n)
	}

	// Now a working eth0 holds 10.1.0.0/24; a second interface in the same
	// subnet conflicts with its route.
	if err := s.AddInterface(host.Netlink, InterfaceConfig{
		SrcName: "vs0", HostNS: host.NS, DstName: "eth0", Address: mustCIDR(t, "10.1.0.2/24"),
	}); err != nil {
		t.Fatal(err)
	}
	addHostVeth(t, host, "vh1", "vs1")
	err = s.AddInterface(host.Netlink, InterfaceConfig{
		SrcName: "vs1", HostNS: host.NS, DstName: s.ReserveName("eth"), Address: mustCIDR(t, "10.1.0.3/24"),
	})
	t.Logf("overlap: %v", err)
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "conflicts with existing route") {
		t.Errorf("overlapping address: %v, want Forbidden 'conflicts with existing route'", err)
	}
	if got := linkNames(t, nl); !slices.Equal(got, []string{"lo", "eth0"}) {
		t.Errorf("links in the sandbox after conflict: %v, want lo eth0", got)
	}
	if _, err := host.Netlink.LinkByName("vs1"); err != nil {
		t.Errorf("vs1 not back in the host: %v", err)
	}
	// A static route overlapping the new address conflicts too.
	if err := s.AddStaticRoute(&types.StaticRoute{Destination: mustCIDR(t, "172.30.0.0/16"), RouteType: types.NEXTHOP, NextHop: net.ParseIP("10.1.0.1")}, "eth0"); err != nil {
		t.Fatal(err)
	}
	err = s.AddInterface(host.Netlink, InterfaceConfig{
		SrcName: "vs1", HostNS: host.NS, DstName: "eth1", Address: mustCIDR(t, "172.30.5.2/24"),
	})
	if !types.IsForbidden(err) {
		t.Errorf("address inside a static route: %v, want Forbidden", err)
	}

	// A link created inside stays for its driver, down and without the
	// addresses added before the failing step (an MTU a veth cannot take).
	addInsideVeth(t, host, s, "vh2", "eth2")
	err = s.AddInterface(nil, InterfaceConfig{DstName: "eth2", Address: mustCIDR(t, "10.3.0.2/24"), MTU: 70000})
	if err == nil {
		t.Fatal("MTU 70000 accepted on a veth")
	}
	l2, err := nl.LinkByName("eth2")
	if err != nil {
		t.Fatalf("created-inside link gone after rollback: %v", err)
	}
	if l2.Attrs().Flags&net.FlagUp != 0 {
		t.Error("created-inside link left up after rollback")
	}
	if got, _ := nl.AddrList(l2, netlink.FAMILY_V4); len(got) != 0 {
		t.Errorf("created-inside link keeps addresses %v", got)
	}
	if len(s.Interfaces()) != 1 {
		t.Errorf("failed adds were recorded: %+v", s.Interfaces())
	}
	// The same link, configured sanely, goes in.
	if err := s.AddInterface(nil, InterfaceConfig{DstName: "eth2", Address: mustCIDR(t, "10.3.0.2/24")}); err != nil {
		t.Fatalf("retry after rollback: %v", err)
	}
	if err := s.AddInterface(nil, InterfaceConfig{DstName: "eth2"}); !types.IsForbidden(err) {
		t.Errorf("second add of eth2: %v, want Forbidden", err)
	}
}

// TestStatistics connects two sandboxes with a veth pair, sends UDP from
// one to the other, and checks both ends count it.
func TestStatistics(t *testing.T) {
	host := testutil.NewHostNS(t)
	a := newTestSandbox(t, "a")
	b := newTestSandbox(t, "b")
	if err := host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "va"}, PeerName: "vb"}); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		s    *Sandbox
		src  string
		addr string
	}{{a, "va", "10.5.0.1/24"}, {b, "vb", "10.5.0.2/24"}} {
		if err := x.s.AddInterface(host.Netlink, InterfaceConfig{SrcName: x.src, HostNS: host.NS, DstName: "eth0", Address: mustCIDR(t, x.addr)}); err != nil {
			t.Fatal(err)
		}
	}

	// Sockets keep the namespace they were created in: make them in Do,
	// use them outside.
	var rx, tx net.PacketConn
	if err := b.Do(func() (err error) { rx, err = net.ListenPacket("udp4", "10.5.0.2:4789"); return }); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := a.Do(func() (err error) { tx, err = net.ListenPacket("udp4", "10.5.0.1:0"); return }); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	const packets, size = 10, 200
	payload := make([]byte, size)
	dst := &net.UDPAddr{IP: net.IPv4(10, 5, 0, 2), Port: 4789}
	for i := 0; i < packets; i++ {
		if _, err := tx.WriteTo(payload, dst); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2*size)
	_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < packets; i++ {
		n, from, err := rx.ReadFrom(buf)
		if err != nil {
			t.Fatalf("receiving packet %d: %v", i, err)
		}
		if n != size || from.(*net.UDPAddr).IP.String() != "10.5.0.1" {
			t.Fatalf("got %d bytes from %v", n, from)
		}
	}

	sa, err := a.Statistics()
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Statistics()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := sa["lo"]; ok || len(sa) != 1 {
		t.Errorf("statistics keys %v, want only eth0", sa)
	}
	// UDP payload + 8 UDP + 20 IP + 14 Ethernet per packet, plus ARP.
	minBytes := uint64(packets * (size + 42))
	if st := sa["eth0"]; st == nil || st.TxPackets < packets || st.TxBytes < minBytes {
		t.Errorf("sender eth0 stats %v, want >= %d packets and %d bytes sent", st, packets, minBytes)
	}
	if st := sb["eth0"]; st == nil || st.RxPackets < packets || st.RxBytes < minBytes {
		t.Errorf("receiver eth0 stats %v, want >= %d packets and %d bytes received", st, packets, minBytes)
	}
}
