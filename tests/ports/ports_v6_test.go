package ports

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Published ports over IPv6, with real traffic (issue #4). The IPv4 side
// of the same paths is in ports_test.go.

// On a dual-stack network a published port answers over IPv6 from
// outside, from the host's own addresses and from containers through the
// host (hairpin); a port bound to one host IPv6 address answers only
// there; the container reaches the outside masqueraded to a host address
// (as upstream's ip6tables setup does); teardown leaves nothing in the
// ip6 tables or the ip6 port maps.
func TestPortsPublishedIPv6(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig6(t)
	n := testrig.DualStackNet(t, r.Ctrl, "pub6", "", "10.56.0.0/24", "fd56::/64")
	gw6 := "fd56::1"
	ports := []types.PortBinding{
		testrig.TCP(80, 8080),
		{Proto: types.UDP, Port: 53, HostPort: 5353},
		{Proto: types.TCP, Port: 83, HostIP: net.ParseIP(testrig.UplinkHost6), HostPort: 8083},
	}
	c1 := r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping(ports))
	c1v6 := testrig.IP6Of(t, c1)
	testrig.Serve(t, c1.NS, "tcp", ":80", "c1:80") // [::]: both families
	testrig.Serve(t, c1.NS, "tcp", ":83", "c1:83")
	testrig.Serve(t, c1.NS, "udp", ":53", "c1:53")

	// The driver reports the IPv6 side of each binding with the
	// container's IPv6 address: 8080 and 5353 in both families, 8083 on
	// its one address.
	info, err := c1.Endpoint.DriverInfo()
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
	if peer := testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8080), "c1:80"); peer != testrig.UplinkOutside6 {
		t.Errorf("tcp from outside: container saw %s, want %s", peer, testrig.UplinkOutside6)
	}
	if peer := testrig.FetchSoon(t, r.Out.NS, "udp", testrig.HostPort(testrig.UplinkHost6, 5353), "c1:53"); peer != testrig.UplinkOutside6 {
		t.Errorf("udp from outside: container saw %s, want %s", peer, testrig.UplinkOutside6)
	}
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6b, 8080), "c1:80")
	testrig.FetchSoon(t, r.Out.NS, "udp", testrig.HostPort(testrig.UplinkHost6b, 5353), "c1:53")
	// The same port over IPv4, side by side.
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8080), "c1:80")

	// Bound to 2001:db8:1::1 only: there it answers; the host's other
	// address (reached above, so neighbour discovery is done) and the
	// bridge's do not forward it, and IPv4 has no such binding.
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8083), "c1:83")
	testrig.FetchSoon(t, r.Host.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8083), "c1:83")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6b, 8083))
	testrig.MustNotFetch(t, r.Host.NS, "tcp", testrig.HostPort(testrig.UplinkHost6b, 8083))
	testrig.MustNotFetch(t, r.Host.NS, "tcp", testrig.HostPort(gw6, 8083))
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8083))

	// From the host's own IPv6 addresses: DNAT in output, and the hairpin
	// masquerade makes the answer come back through the host.
	for _, a := range []string{testrig.UplinkHost6, testrig.UplinkHost6b, gw6} {
		if peer := testrig.FetchSoon(t, r.Host.NS, "tcp", testrig.HostPort(a, 8080), "c1:80"); peer != gw6 {
			t.Errorf("from the host to [%s]:8080: container saw %s, want the bridge's %s", a, peer, gw6)
		}
	}
	testrig.FetchSoon(t, r.Host.NS, "udp", testrig.HostPort(testrig.UplinkHost6, 5353), "c1:53")

	// Hairpin: another container, and c1 itself, through the host.
	c2 := r.MustRun(t, n, "c2", nil)
	c2v6 := testrig.IP6Of(t, c2)
	for _, a := range []string{testrig.UplinkHost6, gw6} {
		if peer := testrig.FetchSoon(t, c2.NS, "tcp", testrig.HostPort(a, 8080), "c1:80"); peer != gw6 {
			t.Errorf("c2 to [%s]:8080: container saw %s, want the bridge's %s (masqueraded)", a, peer, gw6)
		}
		testrig.FetchSoon(t, c1.NS, "tcp", testrig.HostPort(a, 8080), "c1:80")
	}
	testrig.FetchSoon(t, c2.NS, "udp", testrig.HostPort(testrig.UplinkHost6, 5353), "c1:53")
	testrig.FetchSoon(t, c2.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8083), "c1:83")
	if peer := testrig.FetchSoon(t, c2.NS, "tcp", testrig.HostPort(c1v6, 80), "c1:80"); peer != c2v6 {
		t.Errorf("container to container over IPv6: peer %s, want %s", peer, c2v6)
	}

	// Out: the outside (with no route to fd56::/64) sees a host address.
	testrig.Serve(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out")
	testrig.Serve(t, r.Out.NS, "udp", testrig.HostPort(testrig.UplinkOutside6, 7053), "out")
	for _, proto := range []string{"tcp", "udp"} {
		port := map[string]uint16{"tcp": 7000, "udp": 7053}[proto]
		if peer := testrig.FetchSoon(t, c1.NS, proto, testrig.HostPort(testrig.UplinkOutside6, port), "out"); peer != testrig.UplinkHost6 && peer != testrig.UplinkHost6b {
			t.Errorf("%s out: the outside saw the container as %s, want one of the host's addresses", proto, peer)
		}
	}

	// Teardown: nothing names the network or its containers, in either
	// family; the ip6 port maps are empty and ip6tables holds only the
	// global chains' rules.
	c1.Stop(t)
	c2.Stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if hits := testrig.RulesNaming(t, r.Host.NS, n.ID()[:12], c1.Endpoint.ID()[:12], c2.Endpoint.ID()[:12], "fd56:", "10.56.0."); len(hits) > 0 {
		t.Fatalf("rules left after teardown:\n%s", strings.Join(hits, "\n"))
	}
	assertIPv6Clean(t, r)
	if got := testrig.Listeners(t, r.Host.NS, 8080) + testrig.Listeners(t, r.Host.NS, 8083); got != 0 {
		t.Fatalf("%d sockets still hold ports 8080/8083", got)
	}
}

// assertIPv6Clean fails unless the host's ip6 port maps are empty and
// ip6tables has no rule but the global ones.
func assertIPv6Clean(t *testing.T, r *testrig.PortRig) {
	t.Helper()
	for _, e := range testrig.PortMapElems(t, r.Host.NS) {
		if e.Family() == firewall.IPv6 {
			t.Errorf("ip6 port map element left: %s", e)
		}
	}
	for _, line := range strings.Split(testrig.InNS(t, r.Host.NS, "ip6tables-save"), "\n") {
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
	t.Parallel()
	r := testrig.NewPortRig6(t)
	n := testrig.DualStackNet(t, r.Ctrl, "lo6", "", "10.57.0.0/24", "fd57::/64")
	c1 := r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{
		testrig.TCP(80, 8080), {Proto: types.UDP, Port: 53, HostPort: 5353}}))
	testrig.Serve(t, c1.NS, "tcp", ":80", "c1")
	testrig.Serve(t, c1.NS, "udp", ":53", "c1")
	before := testrig.PortElems(t, r.Host.NS)

	hostLinks := testrig.LinkNames(t, r.Host.Netlink)

	// Looked at before anything deletes the refused container.
	loop := []types.PortBinding{testrig.TCP(81, 8081), {Proto: types.TCP, Port: 82, HostIP: net.IPv6loopback, HostPort: 8082}}
	f := r.FailJoin(t, n, "c2", nil, libnetwork.OptionPortMapping(loop))
	if !types.IsBadRequest(f.Err) || !strings.Contains(f.Err.Error(), "IPv6 loopback") {
		t.Fatalf("publishing on [::1]: want BadRequest naming the IPv6 loopback, got %v", f.Err)
	}
	if got := testrig.PortElems(t, r.Host.NS); !slices.Equal(got, before) {
		t.Fatalf("refused join changed the port maps:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(before, "\n"))
	}
	f.AssertNothingLeft(t, r, hostLinks, 8081, 8082)
	f.Cleanup(t)

	// The port answers the host on 127.0.0.1 and its IPv6 addresses, so
	// the path into the container is up; on [::1] it is refused at once
	// (a client of localhost then moves on to 127.0.0.1 without waiting),
	// though the library's socket holding the port listens there.
	testrig.FetchSoon(t, r.Host.NS, "tcp", testrig.HostPort("127.0.0.1", 8080), "c1")
	testrig.FetchSoon(t, r.Host.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8080), "c1")
	testrig.FetchSoon(t, r.Host.NS, "udp", testrig.HostPort(testrig.UplinkHost6, 5353), "c1")
	if _, err := testrig.Fetch(r.Host.NS, "tcp", testrig.HostPort("::1", 8080)); !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("tcp [::1]:8080: %v, want connection refused", err)
	}
	if _, err := testrig.Fetch(r.Host.NS, "udp", testrig.HostPort("::1", 5353)); !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("udp [::1]:5353: %v, want the send refused", err)
	}
	// A port nobody published is left alone on [::1].
	testrig.Serve(t, r.Host.NS, "tcp", "[::1]:8090", "host")
	testrig.MustFetch(t, r.Host.NS, "tcp", testrig.HostPort("::1", 8090), "host")

	c1.Stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	assertIPv6Clean(t, r)
}

// With masquerade off, IPv6 traffic out keeps the container's address
// (the outside routes the subnet back through the host), while published
// ports still work.
func TestPortsIPv6NoMasquerade(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig6(t)
	n := testrig.DualStackNet(t, r.Ctrl, "nomasq6", "", "10.58.0.0/24", "fd58::/64",
		libnetwork.NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.enable_ip_masquerade": "false"}))
	_, dst, _ := net.ParseCIDR("fd58::/64")
	if err := r.Out.Netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(testrig.UplinkHost6)}); err != nil {
		t.Fatal(err)
	}
	c1 := r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	testrig.Serve(t, c1.NS, "tcp", ":80", "c1")
	testrig.Serve(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out")
	if peer := testrig.FetchSoon(t, c1.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out"); peer != testrig.IP6Of(t, c1) {
		t.Errorf("without masquerade the outside saw %s, want the container's %s", peer, testrig.IP6Of(t, c1))
	}
	if peer := testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8080), "c1"); peer != testrig.UplinkOutside6 {
		t.Errorf("published port: container saw %s, want %s", peer, testrig.UplinkOutside6)
	}
	c1.Stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	assertIPv6Clean(t, r)
}
