package testrig

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// IPv6 addresses of the test uplink (documentation prefix): the host has
// two, so a port bound to one can be tried on the other.
const (
	UplinkHost6    = "2001:db8:1::1"
	UplinkHost6b   = "2001:db8:1::3"
	UplinkOutside6 = "2001:db8:1::2"
)

// NewPortRig6 is newPortRig with IPv6 on the uplink as well. The addresses
// skip duplicate address detection: a tentative address can be neither
// bound nor used as a source for a second or more, which would race the
// first packets. That includes a link-local address on each end, settled
// as a real host's uplink is: the kernel's own is tentative for the first
// second or two, and until then the host cannot resolve a neighbour for
// a packet it forwards (neighbour solicitations need a usable link-local
// source when the packet's source is not the host's own).
func NewPortRig6(t *testing.T) *PortRig {
	t.Helper()
	r := NewPortRig(t)
	WithUplink6(t, r)
	return r
}

// WithUplink6 gives the rig's uplink its IPv6 addresses (see newPortRig6).
func WithUplink6(t *testing.T, r *PortRig) {
	t.Helper()
	add := func(h *netlink.Handle, link string, addrs ...string) {
		l, err := h.LinkByName(link)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			ip, n, _ := net.ParseCIDR(a)
			n.IP = ip
			if err := h.AddrAdd(l, &netlink.Addr{IPNet: n, Flags: unix.IFA_F_NODAD}); err != nil {
				t.Fatalf("adding %s to %s: %v", a, link, err)
			}
		}
	}
	add(r.Host.Netlink, "uplink", UplinkHost6+"/64", UplinkHost6b+"/64", "fe80::cafe:1/64")
	add(r.Out.Netlink, "wan0", UplinkOutside6+"/64", "fe80::cafe:2/64")
}

func IP6Of(t *testing.T, c *Container) string {
	t.Helper()
	a := c.Endpoint.Info().Iface().AddressIPv6()
	if a == nil {
		t.Fatalf("endpoint %s has no IPv6 address", c.Endpoint.Name())
	}
	return a.IP.String()
}

// FetchSoon is mustFetch retried until a deadline: the first packets of a
// path may wait on neighbour discovery, and a UDP datagram lost on a
// loaded machine is not resent by anyone. It fails at once on an answer
// from the wrong server.
func FetchSoon(t *testing.T, ns *netnsutil.NS, proto, addr, tag string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := FetchWithin(ns, proto, addr, 2*time.Second)
		if err == nil {
			return answerFrom(t, proto, addr, got, tag)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: no answer from %s within 10 s: %v", proto, addr, tag, err)
		}
		t.Logf("%s %s: %v (trying again)", proto, addr, err)
		time.Sleep(50 * time.Millisecond)
	}
}

func HostPort(ip string, port uint16) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }
