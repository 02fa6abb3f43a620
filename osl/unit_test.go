package osl

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/types"
)

// Tests here need no privileges.

func TestSysctlPath(t *testing.T) {
	good := map[string]string{
		"net.ipv4.conf.eth0.route_localnet":        "/proc/sys/net/ipv4/conf/eth0/route_localnet",
		"net/ipv4/conf/eth0.100/route_localnet":    "/proc/sys/net/ipv4/conf/eth0.100/route_localnet",
		"net.ipv6.conf.all.disable_ipv6":           "/proc/sys/net/ipv6/conf/all/disable_ipv6",
		"net.netfilter.nf_conntrack_tcp_loose":     "/proc/sys/net/netfilter/nf_conntrack_tcp_loose",
		"net/ipv4/ip_unprivileged_port_start":      "/proc/sys/net/ipv4/ip_unprivileged_port_start",
		"net.ipv4.conf.default.arp_announce":       "/proc/sys/net/ipv4/conf/default/arp_announce",
		"net/ipv6/conf/br-1234.x/accept_ra_defrtr": "/proc/sys/net/ipv6/conf/br-1234.x/accept_ra_defrtr",
	}
	for key, want := range good {
		got, err := sysctlPath(key)
		if err != nil || got != want {
			t.Errorf("sysctlPath(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	for _, key := range []string{"", "net", "kernel.hostname", "vm.swappiness", "net/../kernel/hostname", "net..ipv4", "net/ipv4/./x", "/net/ipv4/x"} {
		if _, err := sysctlPath(key); !types.IsBadRequest(err) {
			t.Errorf("sysctlPath(%q): %v, want BadRequest", key, err)
		}
	}
}

func TestKernelErrClasses(t *testing.T) {
	cases := []struct {
		err  error
		is   func(error) bool
		name string
	}{
		{unix.EEXIST, types.IsForbidden, "EEXIST"},
		{unix.ENODEV, types.IsNotFound, "ENODEV"},
		{unix.ESRCH, types.IsNotFound, "ESRCH"},
		{netlink.LinkNotFoundError{}, types.IsNotFound, "LinkNotFoundError"},
		{fmt.Errorf("wrapped: %w", unix.EINVAL), types.IsBadRequest, "wrapped EINVAL"},
		{unix.EADDRNOTAVAIL, types.IsBadRequest, "EADDRNOTAVAIL"},
		{unix.EPERM, types.IsInternal, "EPERM"},
	}
	for _, c := range cases {
		err := kernelErr(c.err, "doing %s", "x")
		if !c.is(err) {
			t.Errorf("%s: class of %v is wrong", c.name, err)
		}
		if !errors.Is(err, c.err) && c.name != "LinkNotFoundError" {
			t.Errorf("%s: cause not wrapped in %v", c.name, err)
		}
	}
}

func TestValidateConfig(t *testing.T) {
	ok := InterfaceConfig{DstName: "eth0", Address: &net.IPNet{IP: net.IPv4(10, 0, 0, 2), Mask: net.CIDRMask(24, 32)}}
	if err := ok.validate(nil); err != nil {
		t.Errorf("valid created-inside config refused: %v", err)
	}
	if ok.wantsIPv6() {
		t.Error("IPv4-only config wants IPv6")
	}
	ll6 := InterfaceConfig{DstName: "eth0", LinkLocal: []*net.IPNet{{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)}}}
	if !ll6.wantsIPv6() {
		t.Error("IPv6 link-local config does not want IPv6")
	}
	moved := InterfaceConfig{SrcName: "veth1", DstName: "eth0"}
	if err := moved.validate(nil); !types.IsBadRequest(err) {
		t.Errorf("move without host handle: %v, want BadRequest", err)
	}
}

func TestRouteHelpers(t *testing.T) {
	if !isDefault(nil) {
		t.Error("nil destination is not default")
	}
	_, all, _ := net.ParseCIDR("0.0.0.0/0")
	_, all6, _ := net.ParseCIDR("::/0")
	_, some, _ := net.ParseCIDR("10.0.0.0/8")
	if !isDefault(all) || !isDefault(all6) || isDefault(some) {
		t.Error("isDefault misjudges")
	}
	n := maskedNet(&net.IPNet{IP: net.ParseIP("172.16.3.4"), Mask: net.CIDRMask(16, 32)})
	if n.String() != "172.16.0.0/16" || len(n.IP) != net.IPv4len {
		t.Errorf("maskedNet = %v (len %d)", n, len(n.IP))
	}
	n6 := maskedNet(&net.IPNet{IP: net.ParseIP("fd00:1::5"), Mask: net.CIDRMask(64, 128)})
	if n6.String() != "fd00:1::/64" {
		t.Errorf("maskedNet v6 = %v", n6)
	}
	if zeroNet(netlink.FAMILY_V4).String() != "0.0.0.0/0" || zeroNet(netlink.FAMILY_V6).String() != "::/0" {
		t.Error("zeroNet wrong")
	}
}

// Without a kernel (a destroyed sandbox), names come from the records and
// reservations alone.
func TestReserveNameFromRecords(t *testing.T) {
	s := &Sandbox{destroyed: true, ifaces: map[string]*iface{"eth0": {}, "eth2": {}}, reserved: map[string]struct{}{}}
	if n := s.ReserveName("eth"); n != "eth1" {
		t.Fatalf("got %s, want eth1", n)
	}
	if n := s.ReserveName("eth"); n != "eth3" {
		t.Fatalf("got %s, want eth3", n)
	}
	s.ReleaseName("eth1")
	if n := s.ReserveName("eth"); n != "eth1" {
		t.Fatalf("released name not reused: got %s", n)
	}
	if n := s.ReserveName("vx"); n != "vx0" {
		t.Fatalf("other prefix: got %s", n)
	}
	s.ReleaseName("never-reserved")
}
