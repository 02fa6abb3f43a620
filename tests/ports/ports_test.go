package libnetwork_test

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
)

func tcp(port, hostPort uint16) types.PortBinding {
	return types.PortBinding{Proto: types.TCP, Port: port, HostPort: hostPort}
}

// Published ports work from outside, from the host's loopback and bridge
// address, from another container and from the container itself; a port
// bound to one host address answers only there; traffic out is
// masqueraded to the host's address. Bindings come from the endpoint
// (CreateOptionPortMapping) and the sandbox (OptionPortMapping) together,
// and DriverInfo reports them with the real host ports.
func TestPortsPublished(t *testing.T) {
	r := newPortRig(t)
	n := r.bridgeNet(t, "pub", "10.50.0.0/24")
	gw := "10.50.0.1"

	epPorts := []types.PortBinding{tcp(80, 8080)}
	sbPorts := []types.PortBinding{
		tcp(81, 0), // chosen from ip_local_port_range
		{Proto: types.TCP, Port: 82, HostPort: 9000, HostPortEnd: 9010},
		{Proto: types.UDP, Port: 53, HostPort: 5353},
		{Proto: types.TCP, Port: 83, HostIP: net.ParseIP(uplinkHost), HostPort: 8083},
		tcp(80, 8080), // also given on the endpoint: published once
	}
	exposed := []types.TransportPort{{Proto: types.TCP, Port: 80}, {Proto: types.UDP, Port: 53}}
	c1 := r.mustRun(t, n, "c1", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping(epPorts)},
		libnetwork.OptionPortMapping(sbPorts), libnetwork.OptionExposedPorts(exposed))
	for _, p := range []string{"80", "81", "82", "83"} {
		serve(t, c1.ns, "tcp", ":"+p, "c1:"+p)
	}
	serve(t, c1.ns, "udp", ":53", "c1:53")

	info, err := c1.ep.DriverInfo()
	if err != nil {
		t.Fatal(err)
	}
	pm, _ := info[netlabel.PortMap].([]types.PortBinding)
	host := map[uint16]uint16{} // container port -> host port
	for _, b := range pm {
		if !b.IP.Equal(net.ParseIP(c1.ip)) {
			t.Errorf("binding %s: container address %s, want %s", b, b.IP, c1.ip)
		}
		host[b.Port] = b.HostPort
	}
	if len(pm) != 5 {
		t.Fatalf("DriverInfo PortMap: %v, want 5 bindings", pm)
	}
	lo, hi := ephemeralRange(t, r)
	if host[80] != 8080 || host[53] != 5353 || host[83] != 8083 || host[82] < 9000 || host[82] > 9010 || host[81] < lo || host[81] > hi {
		t.Fatalf("DriverInfo PortMap host ports: %v (ephemeral range %d-%d)", pm, lo, hi)
	}
	if got := fmt.Sprint(info[netlabel.ExposedPorts]); got != "[tcp/80 udp/53]" {
		t.Errorf("DriverInfo ExposedPorts: %s", got)
	}

	hp := func(ip string, port uint16) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }
	// From outside: the container sees the outside's own address.
	if peer := mustFetch(t, r.out.NS, "tcp", hp(uplinkHost, 8080), "c1:80"); peer != uplinkOutside {
		t.Errorf("from outside: container saw %s, want %s", peer, uplinkOutside)
	}
	mustFetch(t, r.out.NS, "tcp", hp(uplinkHost, host[81]), "c1:81")
	mustFetch(t, r.out.NS, "tcp", hp(uplinkHost, host[82]), "c1:82")
	mustFetch(t, r.out.NS, "udp", hp(uplinkHost, 5353), "c1:53")
	mustFetch(t, r.out.NS, "tcp", hp(uplinkHost, 8083), "c1:83")
	// From the host: loopback (route_localnet + DNAT in OUTPUT) and the bridge address.
	mustFetch(t, r.host.NS, "tcp", hp("127.0.0.1", 8080), "c1:80")
	mustFetch(t, r.host.NS, "tcp", hp(gw, 8080), "c1:80")
	mustFetch(t, r.host.NS, "udp", hp("127.0.0.1", 5353), "c1:53")
	// Bound to 192.0.2.1 only: not on the host's other addresses.
	mustNotFetch(t, r.host.NS, "tcp", hp(gw, 8083))
	mustNotFetch(t, r.host.NS, "tcp", hp("127.0.0.1", 8083))

	// The container itself, through its published port (hairpin).
	mustFetch(t, c1.ns, "tcp", hp(gw, 8080), "c1:80")
	mustFetch(t, c1.ns, "tcp", hp(uplinkHost, 8080), "c1:80")
	// Another container, through the host, and directly (ICC on).
	c2 := r.mustRun(t, n, "c2", nil)
	mustFetch(t, c2.ns, "tcp", hp(gw, 8080), "c1:80")
	mustFetch(t, c2.ns, "tcp", hp(uplinkHost, 8080), "c1:80")
	if peer := mustFetch(t, c2.ns, "tcp", hp(c1.ip, 80), "c1:80"); peer != c2.ip {
		t.Errorf("container to container: peer %s, want %s", peer, c2.ip)
	}

	// Out: the outside sees the host's address (masquerade).
	serve(t, r.out.NS, "tcp", hp(uplinkOutside, 7000), "out")
	if peer := mustFetch(t, c1.ns, "tcp", hp(uplinkOutside, 7000), "out"); peer != uplinkHost {
		t.Errorf("outside saw the container as %s, want the host's %s", peer, uplinkHost)
	}

	// Teardown leaves no rule naming the network or its containers.
	c1.stop(t)
	c2.stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if hits := rulesNaming(t, r.host.NS, n.ID()[:12], c1.ep.ID()[:12], c2.ep.ID()[:12], "10.50.0."); len(hits) > 0 {
		t.Fatalf("rules left after teardown:\n%s", strings.Join(hits, "\n"))
	}
	if n := listeners(t, r.host.NS, 8080); n != 0 {
		t.Fatalf("%d sockets still hold port 8080", n)
	}
}

func ephemeralRange(t *testing.T, r *portRig) (uint16, uint16) {
	var lo, hi uint16
	if _, err := fmt.Sscan(inNS(t, r.host.NS, "cat", "/proc/sys/net/ipv4/ip_local_port_range"), &lo, &hi); err != nil {
		t.Fatal(err)
	}
	return lo, hi
}

// A port already published, or held by a host process, fails the join
// with a Forbidden error naming it, and the failed join leaves no rules,
// sockets, interfaces or joined state, seen before its endpoint and
// sandbox are deleted; its address goes back to IPAM with the endpoint.
// A port still being released is waited for.
func TestPortsTakenPort(t *testing.T) {
	r := newPortRig(t)
	n := r.bridgeNet(t, "taken", "10.51.0.0/24")
	c1 := r.mustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{tcp(80, 8080)}))
	hostLinks := linkNames(t, r.host.Netlink)

	// The refused join is looked at before anything deletes its endpoint
	// or sandbox, so a leftover cannot hide behind the cleanup.
	f := r.failJoin(t, n, "c2", nil, libnetwork.OptionPortMapping([]types.PortBinding{tcp(81, 9191), tcp(80, 8080)}))
	if !types.IsForbidden(f.err) || !strings.Contains(f.err.Error(), "8080") {
		t.Fatalf("second container on port 8080: want Forbidden naming 8080, got %v", f.err)
	}
	f.assertNothingLeft(t, r, hostLinks, 9191)
	if got := listeners(t, r.host.NS, 8080); got != 1 {
		t.Fatalf("port 8080: %d listening sockets, want c1's only", got)
	}
	f.cleanup(t)

	// A host process holds 8090.
	var l net.Listener
	if err := r.host.Do(func() error {
		var err error
		l, err = net.Listen("tcp", ":8090")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f = r.failJoin(t, n, "c3", nil, libnetwork.OptionPortMapping([]types.PortBinding{tcp(80, 8090)}))
	if !types.IsForbidden(f.err) || !strings.Contains(f.err.Error(), "8090") {
		t.Fatalf("port held by a host process: want Forbidden naming 8090, got %v", f.err)
	}
	f.assertNothingLeft(t, r, hostLinks)
	if got := listeners(t, r.host.NS, 8090); got != 1 {
		t.Fatalf("port 8090: %d listening sockets, want the host process's only", got)
	}
	f.cleanup(t)

	// c1 goes; its port, still being released in the background, is
	// handed to c4 once free, not refused.
	c1.stop(t)
	c4 := r.mustRun(t, n, "c4", nil, libnetwork.OptionPortMapping([]types.PortBinding{tcp(80, 8080)}))
	serve(t, c4.ns, "tcp", ":80", "c4")
	mustFetch(t, r.out.NS, "tcp", net.JoinHostPort(uplinkHost, "8080"), "c4")
	c4.stop(t)
}

// ICC off blocks container to container on one bridge; two networks are
// isolated from each other; an internal network has no way out and no way
// in; a network without masquerade still forwards.
func TestPortsIsolation(t *testing.T) {
	r := newPortRig(t)
	serve(t, r.out.NS, "tcp", net.JoinHostPort(uplinkOutside, "7000"), "out")
	outside := net.JoinHostPort(uplinkOutside, "7000")

	noicc := r.bridgeNet(t, "noicc", "10.52.0.0/24",
		libnetwork.NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.enable_icc": "false"}))
	a1 := r.mustRun(t, noicc, "a1", nil)
	a2 := r.mustRun(t, noicc, "a2", nil)
	serve(t, a1.ns, "tcp", ":80", "a1")
	mustNotFetch(t, a2.ns, "tcp", net.JoinHostPort(a1.ip, "80"))
	mustFetch(t, a2.ns, "tcp", outside, "out")

	other := r.bridgeNet(t, "other", "10.53.0.0/24")
	b1 := r.mustRun(t, other, "b1", nil)
	serve(t, b1.ns, "tcp", ":80", "b1")
	mustNotFetch(t, a1.ns, "tcp", net.JoinHostPort(b1.ip, "80"))
	mustFetch(t, b1.ns, "tcp", outside, "out")
	b2 := r.mustRun(t, other, "b2", nil)
	mustNotFetch(t, b2.ns, "tcp", net.JoinHostPort(a1.ip, "80"))
	mustFetch(t, b2.ns, "tcp", net.JoinHostPort(b1.ip, "80"), "b1")

	internal := r.bridgeNet(t, "internal", "10.54.0.0/24", libnetwork.NetworkOptionInternalNetwork())
	r.routeOutside(t, "10.54.0.0/24")
	i1 := r.mustRun(t, internal, "i1", nil)
	serve(t, i1.ns, "tcp", ":80", "i1")
	// No default route is given, so add one: the firewall must still stop it.
	if err := i1.ns.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		return h.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.54.0.1")})
	}); err != nil {
		t.Fatal(err)
	}
	mustNotFetch(t, i1.ns, "tcp", outside)
	mustNotFetch(t, r.out.NS, "tcp", net.JoinHostPort(i1.ip, "80"))
	i2 := r.mustRun(t, internal, "i2", nil)
	mustFetch(t, i2.ns, "tcp", net.JoinHostPort(i1.ip, "80"), "i1")

	for _, c := range []*container{a1, a2, b1, b2, i1, i2} {
		c.stop(t)
	}
	for _, n := range []*libnetwork.Network{noicc, other, internal} {
		id := n.ID()
		if err := n.Delete(); err != nil {
			t.Fatal(err)
		}
		if hits := rulesNaming(t, r.host.NS, id[:12]); len(hits) > 0 {
			t.Fatalf("rules of network %s left:\n%s", n.Name(), strings.Join(hits, "\n"))
		}
	}
}

// A UDP mapping's conntrack entries are flushed when it is released, so a
// sender that keeps going is not NATed to the old container forever.
func TestPortsUDPConntrackFlushed(t *testing.T) {
	r := newPortRig(t)
	n := r.bridgeNet(t, "udp", "10.55.0.0/24")
	c1 := r.mustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{{Proto: types.UDP, Port: 53, HostPort: 5353}}))
	serve(t, c1.ns, "udp", ":53", "c1")
	mustFetch(t, r.out.NS, "udp", net.JoinHostPort(uplinkHost, "5353"), "c1")
	entries := func() string {
		var out string
		_ = r.host.Do(func() error {
			b, err := execOut("conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353")
			out = b
			return err
		})
		return strings.TrimSpace(out)
	}
	if e := entries(); !strings.Contains(e, "dport=5353") {
		t.Fatalf("no conntrack entry for the mapping before release: %q", e)
	}
	c1.stop(t)
	eventually(t, "conntrack entries of 5353 to be flushed", func() bool { return !strings.Contains(entries(), "dport=5353") })
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
}

func execOut(name string, args ...string) (string, error) {
	var b strings.Builder
	cmd := newCmd(name, args...)
	cmd.Stdout = &b
	err := cmd.Run()
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		err = nil // conntrack exits 1 when it lists nothing on some versions
	}
	return b.String(), err
}
