package osl

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/testutil"
)

func TestDetachInterface(t *testing.T) {
	host := testutil.NewHostNS(t)
	s := newTestSandbox(t, "detach")
	nl := s.Netlink()

	n0 := s.ReserveName("eth")
	addInsideVeth(t, host, s, "vh0", n0)
	if err := s.AddInterface(nil, InterfaceConfig{DstName: n0, Address: mustCIDR(t, "10.3.0.2/24")}); err != nil {
		t.Fatal(err)
	}
	link, err := nl.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DetachInterface("eth0"); err != nil {
		t.Fatal(err)
	}
	if _, err := nl.LinkByName("eth0"); err == nil {
		t.Fatal("eth0 still present after DetachInterface")
	}
	gone, err := nl.LinkByIndex(link.Attrs().Index)
	if err != nil {
		t.Fatalf("detached link was deleted; it should wait for its driver: %v", err)
	}
	if gone.Attrs().Flags&net.FlagUp != 0 {
		t.Error("detached link is still up")
	}
	if addrs, _ := nl.AddrList(gone, netlink.FAMILY_V4); len(addrs) != 0 {
		t.Errorf("detached link kept addresses %v", addrs)
	}
	if slices.ContainsFunc(s.Interfaces(), func(i Interface) bool { return i.DstName == "eth0" }) {
		t.Error("eth0 still recorded")
	}
	// The name is free at once, and the old address can be reused.
	if got := s.ReserveName("eth"); got != "eth0" {
		t.Fatalf("ReserveName after detach = %s, want eth0", got)
	}
	addInsideVeth(t, host, s, "vh1", "eth0")
	if err := s.AddInterface(nil, InterfaceConfig{DstName: "eth0", Address: mustCIDR(t, "10.3.0.2/24")}); err != nil {
		t.Fatalf("reusing name and address after detach: %v", err)
	}
	// The driver's later delete of its host end takes the tombstone with it.
	hostEnd, err := host.Netlink.LinkByName("vh0")
	if err != nil {
		t.Fatal(err)
	}
	if err := host.Netlink.LinkDel(hostEnd); err != nil {
		t.Fatal(err)
	}
	if _, err := nl.LinkByIndex(link.Attrs().Index); err == nil {
		t.Error("tombstone survived the deletion of its peer")
	}
	if err := s.DetachInterface("eth9"); err != nil {
		t.Fatalf("detaching a missing interface: %v", err)
	}
}

// CutOff leaves the link (up, same name) with no address of either family
// and no route, and forgets it; a link already gone is fine.
func TestCutOff(t *testing.T) {
	host := testutil.NewHostNS(t)
	s := newTestSandbox(t, "cutoff")
	nl := s.Netlink()
	n0 := s.ReserveName("eth")
	addInsideVeth(t, host, s, "vh0", n0)
	if err := s.AddInterface(nil, InterfaceConfig{DstName: n0, Address: mustCIDR(t, "10.3.0.2/24"),
		AddressIPv6: mustCIDR(t, "fd03::2/64")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGateway(net.ParseIP("10.3.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetGatewayIPv6(net.ParseIP("fd03::1")); err != nil {
		t.Fatal(err)
	}
	if err := s.CutOff(n0); err != nil {
		t.Fatal(err)
	}
	link, err := nl.LinkByName(n0)
	if err != nil {
		t.Fatalf("the cut-off link was deleted or renamed: %v", err)
	}
	if addrs, _ := nl.AddrList(link, netlink.FAMILY_ALL); len(addrs) != 0 {
		t.Errorf("cut-off link kept addresses %v", addrs)
	}
	if routes, _ := nl.RouteList(link, netlink.FAMILY_ALL); len(routes) != 0 {
		t.Errorf("cut-off link kept routes %v", routes)
	}
	if slices.ContainsFunc(s.Interfaces(), func(i Interface) bool { return i.DstName == n0 }) {
		t.Error("cut-off interface still recorded")
	}
	if err := s.CutOff("nosuch0"); err != nil {
		t.Fatalf("CutOff of a missing link: %v", err)
	}
}
