package ports

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Published ports work from outside, from the host's loopback and bridge
// address, from another container and from the container itself; a port
// bound to one host address answers only there; traffic out is
// masqueraded to the host's address. Bindings come from the endpoint
// (CreateOptionPortMapping) and the sandbox (OptionPortMapping) together,
// and DriverInfo reports them with the real host ports.
func TestPortsPublished(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	n := r.BridgeNet(t, "pub", "10.50.0.0/24")
	gw := "10.50.0.1"

	epPorts := []types.PortBinding{testrig.TCP(80, 8080)}
	sbPorts := []types.PortBinding{
		testrig.TCP(81, 0), // chosen from ip_local_port_range
		{Proto: types.TCP, Port: 82, HostPort: 9000, HostPortEnd: 9010},
		{Proto: types.UDP, Port: 53, HostPort: 5353},
		{Proto: types.TCP, Port: 83, HostIP: net.ParseIP(testrig.UplinkHost), HostPort: 8083},
		testrig.TCP(80, 8080), // also given on the endpoint: published once
	}
	exposed := []types.TransportPort{{Proto: types.TCP, Port: 80}, {Proto: types.UDP, Port: 53}}
	c1 := r.MustRun(t, n, "c1", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping(epPorts)},
		libnetwork.OptionPortMapping(sbPorts), libnetwork.OptionExposedPorts(exposed))
	for _, p := range []string{"80", "81", "82", "83"} {
		testrig.Serve(t, c1.NS, "tcp", ":"+p, "c1:"+p)
	}
	testrig.Serve(t, c1.NS, "udp", ":53", "c1:53")

	info, err := c1.Endpoint.DriverInfo()
	if err != nil {
		t.Fatal(err)
	}
	pm, _ := info[netlabel.PortMap].([]types.PortBinding)
	host := map[uint16]uint16{} // container port -> host port
	for _, b := range pm {
		if !b.IP.Equal(net.ParseIP(c1.IP)) {
			t.Errorf("binding %s: container address %s, want %s", b, b.IP, c1.IP)
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
	if peer := testrig.MustFetch(t, r.Out.NS, "tcp", hp(testrig.UplinkHost, 8080), "c1:80"); peer != testrig.UplinkOutside {
		t.Errorf("from outside: container saw %s, want %s", peer, testrig.UplinkOutside)
	}
	testrig.MustFetch(t, r.Out.NS, "tcp", hp(testrig.UplinkHost, host[81]), "c1:81")
	testrig.MustFetch(t, r.Out.NS, "tcp", hp(testrig.UplinkHost, host[82]), "c1:82")
	testrig.MustFetch(t, r.Out.NS, "udp", hp(testrig.UplinkHost, 5353), "c1:53")
	testrig.MustFetch(t, r.Out.NS, "tcp", hp(testrig.UplinkHost, 8083), "c1:83")
	// From the host: loopback (route_localnet + DNAT in OUTPUT) and the bridge address.
	testrig.MustFetch(t, r.Host.NS, "tcp", hp("127.0.0.1", 8080), "c1:80")
	testrig.MustFetch(t, r.Host.NS, "tcp", hp(gw, 8080), "c1:80")
	testrig.MustFetch(t, r.Host.NS, "udp", hp("127.0.0.1", 5353), "c1:53")
	// Bound to 192.0.2.1 only: not on the host's other addresses.
	testrig.MustNotFetch(t, r.Host.NS, "tcp", hp(gw, 8083))
	testrig.MustNotFetch(t, r.Host.NS, "tcp", hp("127.0.0.1", 8083))

	// The container itself, through its published port (hairpin).
	testrig.MustFetch(t, c1.NS, "tcp", hp(gw, 8080), "c1:80")
	testrig.MustFetch(t, c1.NS, "tcp", hp(testrig.UplinkHost, 8080), "c1:80")
	// Another container, through the host, and directly (ICC on).
	c2 := r.MustRun(t, n, "c2", nil)
	testrig.MustFetch(t, c2.NS, "tcp", hp(gw, 8080), "c1:80")
	testrig.MustFetch(t, c2.NS, "tcp", hp(testrig.UplinkHost, 8080), "c1:80")
	if peer := testrig.MustFetch(t, c2.NS, "tcp", hp(c1.IP, 80), "c1:80"); peer != c2.IP {
		t.Errorf("container to container: peer %s, want %s", peer, c2.IP)
	}

	// Out: the outside sees the host's address (masquerade).
	testrig.Serve(t, r.Out.NS, "tcp", hp(testrig.UplinkOutside, 7000), "out")
	if peer := testrig.MustFetch(t, c1.NS, "tcp", hp(testrig.UplinkOutside, 7000), "out"); peer != testrig.UplinkHost {
		t.Errorf("outside saw the container as %s, want the host's %s", peer, testrig.UplinkHost)
	}

	// Teardown leaves no rule naming the network or its containers.
	c1.Stop(t)
	c2.Stop(t)
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if hits := testrig.RulesNaming(t, r.Host.NS, n.ID()[:12], c1.Endpoint.ID()[:12], c2.Endpoint.ID()[:12], "10.50.0."); len(hits) > 0 {
		t.Fatalf("rules left after teardown:\n%s", strings.Join(hits, "\n"))
	}
	if n := testrig.Listeners(t, r.Host.NS, 8080); n != 0 {
		t.Fatalf("%d sockets still hold port 8080", n)
	}
}

func ephemeralRange(t *testing.T, r *testrig.PortRig) (uint16, uint16) {
	var lo, hi uint16
	if _, err := fmt.Sscan(testrig.InNS(t, r.Host.NS, "cat", "/proc/sys/net/ipv4/ip_local_port_range"), &lo, &hi); err != nil {
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
	t.Parallel()
	r := testrig.NewPortRig(t)
	n := r.BridgeNet(t, "taken", "10.51.0.0/24")
	c1 := r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	hostLinks := testrig.LinkNames(t, r.Host.Netlink)

	// The refused join is looked at before anything deletes its endpoint
	// or sandbox, so a leftover cannot hide behind the cleanup.
	f := r.FailJoin(t, n, "c2", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(81, 9191), testrig.TCP(80, 8080)}))
	if !types.IsForbidden(f.Err) || !strings.Contains(f.Err.Error(), "8080") {
		t.Fatalf("second container on port 8080: want Forbidden naming 8080, got %v", f.Err)
	}
	f.AssertNothingLeft(t, r, hostLinks, 9191)
	if got := testrig.Listeners(t, r.Host.NS, 8080); got != 1 {
		t.Fatalf("port 8080: %d listening sockets, want c1's only", got)
	}
	f.Cleanup(t)

	// A host process holds 8090.
	var l net.Listener
	if err := r.Host.Do(func() error {
		var err error
		l, err = net.Listen("tcp", ":8090")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	f = r.FailJoin(t, n, "c3", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8090)}))
	if !types.IsForbidden(f.Err) || !strings.Contains(f.Err.Error(), "8090") {
		t.Fatalf("port held by a host process: want Forbidden naming 8090, got %v", f.Err)
	}
	f.AssertNothingLeft(t, r, hostLinks)
	if got := testrig.Listeners(t, r.Host.NS, 8090); got != 1 {
		t.Fatalf("port 8090: %d listening sockets, want the host process's only", got)
	}
	f.Cleanup(t)

	// c1 goes; its port, still being released in the background, is
	// handed to c4 once free, not refused.
	c1.Stop(t)
	c4 := r.MustRun(t, n, "c4", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	testrig.Serve(t, c4.NS, "tcp", ":80", "c4")
	testrig.MustFetch(t, r.Out.NS, "tcp", net.JoinHostPort(testrig.UplinkHost, "8080"), "c4")
	c4.Stop(t)
}

// ICC off blocks container to container on one bridge; two networks are
// isolated from each other; an internal network has no way out and no way
// in; a network without masquerade still forwards.
func TestPortsIsolation(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	testrig.Serve(t, r.Out.NS, "tcp", net.JoinHostPort(testrig.UplinkOutside, "7000"), "out")
	outside := net.JoinHostPort(testrig.UplinkOutside, "7000")

	noicc := r.BridgeNet(t, "noicc", "10.52.0.0/24",
		libnetwork.NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.enable_icc": "false"}))
	a1 := r.MustRun(t, noicc, "a1", nil)
	a2 := r.MustRun(t, noicc, "a2", nil)
	testrig.Serve(t, a1.NS, "tcp", ":80", "a1")
	testrig.MustNotFetch(t, a2.NS, "tcp", net.JoinHostPort(a1.IP, "80"))
	testrig.MustFetch(t, a2.NS, "tcp", outside, "out")

	other := r.BridgeNet(t, "other", "10.53.0.0/24")
	b1 := r.MustRun(t, other, "b1", nil)
	testrig.Serve(t, b1.NS, "tcp", ":80", "b1")
	testrig.MustNotFetch(t, a1.NS, "tcp", net.JoinHostPort(b1.IP, "80"))
	testrig.MustFetch(t, b1.NS, "tcp", outside, "out")
	b2 := r.MustRun(t, other, "b2", nil)
	testrig.MustNotFetch(t, b2.NS, "tcp", net.JoinHostPort(a1.IP, "80"))
	testrig.MustFetch(t, b2.NS, "tcp", net.JoinHostPort(b1.IP, "80"), "b1")

	internal := r.BridgeNet(t, "internal", "10.54.0.0/24", libnetwork.NetworkOptionInternalNetwork())
	r.RouteOutside(t, "10.54.0.0/24")
	i1 := r.MustRun(t, internal, "i1", nil)
	testrig.Serve(t, i1.NS, "tcp", ":80", "i1")
	// No default route is given, so add one: the firewall must still stop it.
	if err := i1.NS.Do(func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		return h.RouteAdd(&netlink.Route{Gw: net.ParseIP("10.54.0.1")})
	}); err != nil {
		t.Fatal(err)
	}
	testrig.MustNotFetch(t, i1.NS, "tcp", outside)
	testrig.MustNotFetch(t, r.Out.NS, "tcp", net.JoinHostPort(i1.IP, "80"))
	i2 := r.MustRun(t, internal, "i2", nil)
	testrig.MustFetch(t, i2.NS, "tcp", net.JoinHostPort(i1.IP, "80"), "i1")

	for _, c := range []*testrig.Container{a1, a2, b1, b2, i1, i2} {
		c.Stop(t)
	}
	for _, n := range []*libnetwork.Network{noicc, other, internal} {
		id := n.ID()
		if err := n.Delete(); err != nil {
			t.Fatal(err)
		}
		if hits := testrig.RulesNaming(t, r.Host.NS, id[:12]); len(hits) > 0 {
			t.Fatalf("rules of network %s left:\n%s", n.Name(), strings.Join(hits, "\n"))
		}
	}
}

// A UDP mapping's conntrack entries are flushed when it is released, so a
// sender that keeps going is not NATed to the old container forever.
func TestPortsUDPConntrackFlushed(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	n := r.BridgeNet(t, "udp", "10.55.0.0/24")
	c1 := r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{{Proto: types.UDP, Port: 53, HostPort: 5353}}))
	testrig.Serve(t, c1.NS, "udp", ":53", "c1")
	testrig.MustFetch(t, r.Out.NS, "udp", net.JoinHostPort(testrig.UplinkHost, "5353"), "c1")
	entries := func() string {
		var out string
		_ = r.Host.Do(func() error {
			b, err := execOut("conntrack", "-L", "-p", "udp", "--orig-port-dst", "5353")
			out = b
			return err
		})
		return strings.TrimSpace(out)
	}
	if e := entries(); !strings.Contains(e, "dport=5353") {
		t.Fatalf("no conntrack entry for the mapping before release: %q", e)
	}
	c1.Stop(t)
	testrig.Eventually(t, "conntrack entries of 5353 to be flushed", func() bool { return !strings.Contains(entries(), "dport=5353") })
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
}

func execOut(name string, args ...string) (string, error) {
	var b strings.Builder
	cmd := exec.Command(name, args...)
	cmd.Stdout = &b
	err := cmd.Run()
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		err = nil // conntrack exits 1 when it lists nothing on some versions
	}
	return b.String(), err
}
