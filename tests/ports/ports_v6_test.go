package libnetwork_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Published ports over IPv6, with real traffic (issue #4). The IPv4 side
// of the same paths is in ports_test.go.

// IPv6 addresses of the test uplink (documentation prefix): the host has
// two, so a port bound to one can be tried on the other.
const (
	uplinkHost6    = "2001:db8:1::1"
	uplinkHost6b   = "2001:db8:1::3"
	uplinkOutside6 = "2001:db8:1::2"
)

// newPortRig6 is newPortRig with IPv6 on the uplink as well. The addresses
// skip duplicate address detection: a tentative address can be neither
// bound nor used as a source for a second or more, which would race the
// first packets. That includes a link-local address on each end, settled
// as a real host's uplink is: the kernel's own is tentative for the first
// second or two, and until then the host cannot resolve a neighbour for
// a packet it forwards (neighbour solicitations need a usable link-local
// source when the packet's source is not the host's own).
func newPortRig6(t *testing.T) *portRig {
	t.Helper()
	r := newPortRig(t)
	withUplink6(t, r)
	return r
}

// withUplink6 gives the rig's uplink its IPv6 addresses (see newPortRig6).
func withUplink6(t *testing.T, r *portRig) {
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
	add(r.host.Netlink, "uplink", uplinkHost6+"/64", uplinkHost6b+"/64", "fe80::cafe:1/64")
	add(r.out.Netlink, "wan0", uplinkOutside6+"/64", "fe80::cafe:2/64")
}

func ip6Of(t *testing.T, c *container) string {
	t.Helper()
	a := c.ep.Info().Iface().AddressIPv6()
	if a == nil {
		t.Fatalf("endpoint %s has no IPv6 address", c.ep.Name())
	}
	return a.IP.String()
}

// fetchSoon is mustFetch retried until a deadline: the first packets of a
// path may wait on neighbour discovery, and a UDP datagram lost on a
// loaded machine is not resent by anyone. It fails at once on an answer
// from the wrong server.
func fetchSoon(t *testing.T, ns *netnsutil.NS, proto, addr, tag string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := fetchWithin(ns, proto, addr, 2*time.Second)
		if err == nil {
			f := strings.Fields(got)
			if len(f) != 2 || f[0] != tag {
				t.Fatalf("%s %s: got %q, want an answer from %s", proto, addr, got, tag)
			}
			host, _, _ := net.SplitHostPort(f[1])
			return host
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s: no answer from %s within 10 s: %v", proto, addr, tag, err)
		}
		t.Logf("%s %s: %v (trying again)", proto, addr, err)
		time.Sleep(50 * time.Millisecond)
	}
}

func hp(ip string, port uint16) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }

// On a dual-stack network a published port answers over IPv6 from
// outside, from the host's own addresses and from containers through the
// host (hairpin); a port bound to one host IPv6 address answers only
// there; the container reaches the outside masqueraded to a host address
// (as upstream's ip6tables setup does); teardown leaves nothing in the
// ip6 tables or the ip6 port maps.
func TestPortsPublishedIPv6(t *testing.T) {
	r := newPortRig6(t)
	n := dualStackNet(t, r.c, "pub6", "", "10.56.0.0/24", "fd56::/64")
	gw6 := "fd56::1"
	ports := []types.PortBinding{
		tcp(80, 8080),
		{Proto: types.UDP, Port: 53, HostPort: 5353},
		{Proto: types.TCP, Port: 83, HostIP: net.ParseIP(uplinkHost6), HostPort: 8083},
	}
	c1 := r.mustRun(t, n, "c1", nil, libnetwork.OptionPortMapping(ports))
	c1v6 := ip6Of(t, c1)
	serve(t, c1.ns, "tcp", ":80", "c1:80") // [::]: both families
	serve(t, c1.ns, "tcp", ":83", "c1:83")
	serve(t, c1.ns, "udp", ":53", "c1:53")

	// The driver reports the IPv6 side of each binding with the
	// container's IPv6 address: 8080 and 5353 in both families, 8083 on
	// its one address.
	info, err := c1.ep.DriverInfo()
	if err != nil {
		t.Fatal(err)
	}
	var v6 []string
	for _, b := range info[netlabel.PortMap].([]types.PortBinding) {
		if b.HostIP.To4() == nil {
			if b.IP.String() != c1v6 {
				t.Errorf("binding %s: container address %s, want %s", b, b.IP, c1v6)
			}
			v6 = append(v6, fmt.Sprintf("%s [%s]:%d", b.Proto, b.HostIP, b.HostPort))
		}
	}
	slices.Sort(v6)
	if want := []string{"tcp [2001:db8:1::1]:8083", "tcp [::]:8080", "udp [::]:5353"}; !slices.Equal(v6, want) {
		t.Fatalf("IPv6 bindings %v, want %v", v6, want)
	}

	// From outside: the container sees the outside's own address.
	if peer := fetchSoon(t, r.out.NS, "tcp", hp(uplinkHost6, 8080), "c1:80"); peer != uplinkOutside6 {
		t.Errorf("tcp from outside: container saw %s, want %s", peer, uplinkOutside6)
	}
	if peer := fetchSoon(t, r.out.NS, "udp", hp(uplinkHost6, 5353), "c1:53"); peer != uplinkOutside6 {
		t.Errorf("udp from outside: container saw %s, want %s", peer, uplinkOutside6)
	}
	fetchSoon(t, r.out.NS, "tcp", hp(uplinkHost6b, 8080), "c1:80")
	fetchSoon(t, r.out.NS, "udp", hp(uplinkHost6b, 5353), "c1:53")
	// The same port over IPv4, side by side.
	fetchSoon(t, r.out.NS, "tcp", hp(uplinkHost, 8080), "c1:80")

	// Bound to 2001:db8:1::1 only: there it answers; the host's other
	// address (reached above, so neighbour discovery is done) and the
	// bridge's do not forward it, and IPv4 has no such binding.
	fetchSoon(t, r.out.NS, "tcp", hp(uplinkHost6, 8083), "c1:83")
	fetchSoon(t, r.host.NS, "tcp", hp(uplinkHost6, 8083), "c1:83")
	mustNotFetch(t, r.out.NS, "tcp", hp(uplinkHost6b, 8083))
	mustNotFetch(t, r.host.NS, "tcp", hp(uplinkHost6b, 8083))
	mustNotFetch(t, r.host.NS, "tcp", hp(gw6, 8083))
	mustNotFetch(t, r.out.NS, "tcp", hp(uplinkHost, 8083))

	// From the host's own IPv6 addresses: DNAT in output, and the hairpin
	// masquerade makes the answer come back through the host.
	for _, a := range []string{uplinkHost6, uplinkHost6b, gw6} {
		if peer := fetchSoon(t, r.host.NS, "tcp", hp(a, 8080), "c1:80"); peer != gw6 {
			t.Errorf("from the host to [%s]:8080: container saw %s, want the bridge's %s", a, peer, gw6)
		}
	}
	fetchSoon(t, r.host.NS, "udp", hp(uplinkHost6, 5353), "c1:53")

	// Hairpin: another container, and c1 itself, through the host.
	c2 := r.mustRun(t, n, "c2", nil)
	c2v6 := ip6Of(t, c2)
	for _, a := range []string{uplinkHost6, gw6} {
		if peer := fetchSoon(t, c2.ns, "tcp", hp(a, 8080), "c1:80"); peer != gw6 {
			t.Errorf("c2 to [%s]:8080: container saw %s, want the bridge's %s (masqueraded)", a, peer, gw6)
		}
		fetchSoon(t, c1.ns, "tcp", hp(a, 8080), "c1:80")
	}
	fetchSoon(t, c2.ns, "udp", hp(uplinkHost6, 5353), "c1:53")
	fetchSoon(t, c2.ns, "tcp", hp(uplinkHost6, 8083), "c1:83")
	if peer := fetchSoon(t, c2.ns, "tcp", hp(c1v6, 80), "c1:80"); peer != c2v6 {
		t.Errorf("container to container over IPv6: peer %s, want %s", peer, c2v6)
	}

	// Out: the outside (with no route to fd56::/64) sees a host address.
	serve(t, r.out.NS, "tcp", hp(uplinkOutside6, 7000), "out")
	serve(t, r.out.NS, "udp", hp(uplinkOutside6, 7053), "out")
	for _, proto := range []string{"tcp", "udp"} {
		port := map[string]uint16{"tcp": 7000, "udp": 7053}[proto]
		if peer := fetchSoon(t, c1.ns, proto, hp(uplinkOutside6, port), "out"); peer != uplinkHost6 && peer != uplinkHost6b {
			t.Errorf("%s out: the outside saw the container as %s, want one of the host's addresses", proto, peer)
		}
	}

	// Teardown: nothing names the network or its containers, in either
	// family; the ip6 port maps are empty and ip6tables holds only the
	// global chains' rules.
	c1.stop(t)
	c2.stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if hits := rulesNaming(t, r.host.NS, n.ID()[:12], c1.ep.ID()[:12], c2.ep.ID()[:12], "fd56:", "10.56.0."); len(hits) > 0 {
		t.Fatalf("rules left after teardown:\n%s", strings.Join(hits, "\n"))
	}
	assertIPv6Clean(t, r)
	if got := listeners(t, r.host.NS, 8080) + listeners(t, r.host.NS, 8083); got != 0 {
		t.Fatalf("%d sockets still hold ports 8080/8083", got)
	}
}

// assertIPv6Clean fails unless the host's ip6 port maps are empty and
// ip6tables has no rule but the global ones.
func assertIPv6Clean(t *testing.T, r *portRig) {
	t.Helper()
	for _, e := range portMapElems(t, r.host.NS) {
		if e.Family() == firewall.IPv6 {
			t.Errorf("ip6 port map element left: %s", e)
		}
	}
	for _, line := range strings.Split(inNS(t, r.host.NS, "ip6tables-save"), "\n") {
		if strings.HasPrefix(line, "-A ") && !strings.Contains(line, "cnm-global") {
			t.Errorf("ip6tables rule left: %s", line)
		}
	}
}

// ::1 is not published (docs/design.md): the kernel drops the container's
// answer once the NAT addresses it back to ::1 on the bridge, and there is
// no userland proxy. A binding on ::1 is refused and leaves nothing; a
// binding on every address serves the host's other addresses (127.0.0.1
// included) and is refused on [::1].
func TestPortsIPv6LoopbackRefused(t *testing.T) {
	r := newPortRig6(t)
	n := dualStackNet(t, r.c, "lo6", "", "10.57.0.0/24", "fd57::/64")
	c1 := r.mustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{
		tcp(80, 8080), {Proto: types.UDP, Port: 53, HostPort: 5353}}))
	serve(t, c1.ns, "tcp", ":80", "c1")
	serve(t, c1.ns, "udp", ":53", "c1")
	before := portElems(t, r.host.NS)

	hostLinks := linkNames(t, r.host.Netlink)

	// Looked at before anything deletes the refused container.
	loop := []types.PortBinding{tcp(81, 8081), {Proto: types.TCP, Port: 82, HostIP: net.IPv6loopback, HostPort: 8082}}
	f := r.failJoin(t, n, "c2", nil, libnetwork.OptionPortMapping(loop))
	if !types.IsBadRequest(f.err) || !strings.Contains(f.err.Error(), "IPv6 loopback") {
		t.Fatalf("publishing on [::1]: want BadRequest naming the IPv6 loopback, got %v", f.err)
	}
	if got := portElems(t, r.host.NS); !slices.Equal(got, before) {
		t.Fatalf("refused join changed the port maps:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
	f.assertNothingLeft(t, r, hostLinks, 8081, 8082)
	f.cleanup(t)

	// The port answers the host on 127.0.0.1 and its IPv6 addresses, so
	// the path into the container is up; on [::1] it is refused at once
	// (a client of localhost then moves on to 127.0.0.1 without waiting),
	// though the library's socket holding the port listens there.
	fetchSoon(t, r.host.NS, "tcp", hp("127.0.0.1", 8080), "c1")
	fetchSoon(t, r.host.NS, "tcp", hp(uplinkHost6, 8080), "c1")
	fetchSoon(t, r.host.NS, "udp", hp(uplinkHost6, 5353), "c1")
	if _, err := fetch(r.host.NS, "tcp", hp("::1", 8080)); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("tcp [::1]:8080: %v, want connection refused", err)
	}
	if _, err := fetch(r.host.NS, "udp", hp("::1", 5353)); !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("udp [::1]:5353: %v, want the send refused", err)
	}
	// A port nobody published is left alone on [::1].
	serve(t, r.host.NS, "tcp", "[::1]:8090", "host")
	mustFetch(t, r.host.NS, "tcp", hp("::1", 8090), "host")

	c1.stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	assertIPv6Clean(t, r)
}

// With masquerade off, IPv6 traffic out keeps the container's address
// (the outside routes the subnet back through the host), while published
// ports still work.
func TestPortsIPv6NoMasquerade(t *testing.T) {
	r := newPortRig6(t)
	n := dualStackNet(t, r.c, "nomasq6", "", "10.58.0.0/24", "fd58::/64",
		libnetwork.NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.enable_ip_masquerade": "false"}))
	_, dst, _ := net.ParseCIDR("fd58::/64")
	if err := r.out.Netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(uplinkHost6)}); err != nil {
		t.Fatal(err)
	}
	c1 := r.mustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{tcp(80, 8080)}))
	serve(t, c1.ns, "tcp", ":80", "c1")
	serve(t, r.out.NS, "tcp", hp(uplinkOutside6, 7000), "out")
	if peer := fetchSoon(t, c1.ns, "tcp", hp(uplinkOutside6, 7000), "out"); peer != ip6Of(t, c1) {
		t.Errorf("without masquerade the outside saw %s, want the container's %s", peer, ip6Of(t, c1))
	}
	if peer := fetchSoon(t, r.out.NS, "tcp", hp(uplinkHost6, 8080), "c1"); peer != uplinkOutside6 {
		t.Errorf("published port: container saw %s, want %s", peer, uplinkOutside6)
	}
	c1.stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	assertIPv6Clean(t, r)
}
