package ports

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// "routed" in IPv4, the default "nat" in IPv6, on a host that forwarded
// with FORWARD ACCEPT before the controller started: in IPv4 the
// neighbour reaches the published container port at the container's own
// address and nothing else of it, no host port is DNATed, and the
// container's traffic leaves with its own address; IPv6 is NAT as ever.
// The published port's accept is the endpoint's rule: repaired when
// removed, gone with the endpoint.
func TestGatewayModeRouted(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	n := testrig.DualStackNet(t, r.Ctrl, "routed4", "", "10.72.0.0/24", "fd00:72::/64", withDriverOpts(map[string]string{bridge.GatewayModeIPv4: "routed"}))
	r.RouteOutside(t, "10.72.0.0/24")
	testrig.RouteOutside6(t, r, "fd00:72::/64")
	c := runTarget(t, r, n, "r", 8090)
	testrig.Serve(t, r.Out.NS, "tcp", ":9000", "out")

	// IPv4, routed: the published container port at the container's
	// address; not the unpublished one, not the host port.
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(c.IP, 80), "r:80")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(c.IP, 81))
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8090))
	if !echoes(t, r.Out.NS, c.IP) {
		t.Errorf("IPv4 is routed, yet %s does not answer the neighbour's ping", c.IP)
	}
	if got := testrig.FetchSoon(t, c.NS, "tcp", testrig.HostPort(testrig.UplinkOutside, 9000), "out"); got != c.IP {
		t.Errorf("the neighbour saw the container's IPv4 connection from %s, want its own address %s (no masquerade)", got, c.IP)
	}
	// IPv6, nat: the host port, not the container's address; masqueraded.
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8090), "r:80")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(c.ip6, 80))
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(c.ip6, 81))
	if echoes(t, r.Out.NS, c.ip6) {
		t.Errorf("IPv6 is nat, yet %s answers the neighbour's ping", c.ip6)
	}
	if got := testrig.FetchSoon(t, c.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 9000), "out"); got != testrig.UplinkHost6 && got != testrig.UplinkHost6b {
		t.Errorf("the neighbour saw the container's IPv6 connection from %s, want one of the host's uplink addresses", got)
	}

	// Reported: the IPv4 binding has no host port, the IPv6 one 8090.
	info, err := c.Endpoint.DriverInfo()
	if err != nil {
		t.Fatal(err)
	}
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	pbs4, pbs6 := testrig.SplitFamilies(pbs)
	if len(pbs4) != 1 || pbs4[0].HostPort != 0 || pbs4[0].Port != 80 || len(pbs6) != 1 || pbs6[0].HostPort != 8090 {
		t.Errorf("operational bindings %v: want IPv4 80 without a host port, IPv6 8090 -> 80", pbs)
	}

	testrig.CheckNetworkRules(t, r.Host, map[string]*libnetwork.Network{n.ID(): n})
	epOwner := "--comment " + firewall.EndpointOwner(c.Endpoint.ID()) + " "
	accept := matching(testrig.KernelRules(t, r.Host, firewall.IPv4), epOwner, "--dport 80 ", "-j ACCEPT")
	if len(accept) != 1 || !strings.HasPrefix(accept[0], "filter -A DOCKER -d "+c.IP+"/32 ") {
		t.Fatalf("the published port's accept: %v, want one in filter DOCKER for %s", accept, c.IP)
	}
	if v6 := matching(testrig.KernelRules(t, r.Host, firewall.IPv6), epOwner, "-j ACCEPT"); len(v6) != 0 {
		t.Errorf("IPv6 is nat, yet the endpoint has accepts: %v", v6)
	}

	// Another tool removes the accept: the repair puts it back.
	testrig.InNS(t, r.Host.NS, "iptables", append([]string{"-w", "-t", "filter", "-D"}, strings.Fields(strings.TrimPrefix(accept[0], "filter -A "))...)...)
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(c.IP, 80))
	if _, err := r.Ctrl.RepairFirewall(); err != nil {
		t.Fatal(err)
	}
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(c.IP, 80), "r:80")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(c.IP, 81))

	// The endpoint's going takes its accept along.
	if err := c.Sandbox.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := c.Endpoint.Delete(false); err != nil {
		t.Fatal(err)
	}
	if left := matching(testrig.KernelRules(t, r.Host, firewall.IPv4), epOwner); len(left) != 0 {
		t.Errorf("rules of the deleted endpoint: %v", left)
	}
	testrig.AssertForwardAccept(t, r.Host)
}

// A live container on a routed network keeps its published ports across
// a restart: the IPv4 one without a host port (its accept back in
// filter DOCKER, owned by the endpoint), the IPv6 one on its host port.
func TestRestartKeepsRoutedPort(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.DualStackNet(t, c, "routed", "", "10.74.0.0/24", "fd00:74::/64", withDriverOpts(map[string]string{bridge.GatewayModeIPv4: "routed"}))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sbPorts := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c", libnetwork.OptionPortMapping(sbPorts)))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	want := testrig.PortsOf(t, ep)
	if len(want) != 2 {
		t.Fatalf("published %v, want one binding in each family", want)
	}
	accepts := func() []string {
		return matching(testrig.KernelRules(t, r.Host, firewall.IPv4), "--comment "+firewall.EndpointOwner(ep.ID())+" ", "--dport 80 ", "-j ACCEPT")
	}
	if a := accepts(); len(a) != 1 {
		t.Fatalf("accepts of the routed port: %v, want one", a)
	}
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{libnetwork.OptionPortMapping(sbPorts)}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rsb, err := c.SandboxByID(sb.ID())
	if err != nil {
		t.Fatalf("live sandbox not restored: %v", err)
	}
	if got := testrig.PortsOf(t, rsb.Endpoints()[0]); !slices.Equal(got, want) {
		t.Fatalf("after restart the endpoint publishes %v, want %v", got, want)
	}
	if err := c.CollectGarbage(); err != nil {
		t.Fatal(err)
	}
	if a := accepts(); len(a) != 1 {
		t.Fatalf("after restart and garbage collection, accepts of the routed port: %v, want one", a)
	}
}

// echoes reports whether ip answers an ICMP echo request sent from ns
// within a few tries: a raw socket of the stdlib, so no ping binary is
// needed.
func echoes(t *testing.T, ns *netnsutil.NS, ip string) bool {
	t.Helper()
	v6 := strings.Contains(ip, ":")
	network, req, reply := "ip4:icmp", byte(8), byte(0)
	if v6 {
		network, req, reply = "ip6:ipv6-icmp", 128, 129
	}
	var c net.PacketConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenPacket(network, "")
		return err
	}); err != nil {
		t.Fatalf("raw %s socket: %v", network, err)
	}
	defer c.Close()
	msg := []byte{req, 0, 0, 0, 0x63, 0x6e, 0, 1, 'c', 'n', 'm'}
	if !v6 { // the kernel fills in ICMPv6's checksum
		var sum uint32
		for i := 0; i < len(msg); i += 2 {
			w := uint32(msg[i]) << 8
			if i+1 < len(msg) {
				w |= uint32(msg[i+1])
			}
			sum += w
		}
		for sum > 0xffff {
			sum = sum>>16 + sum&0xffff
		}
		msg[2], msg[3] = byte(^sum>>8), byte(^sum)
	}
	dst := &net.IPAddr{IP: net.ParseIP(ip)}
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if _, err := c.WriteTo(msg, dst); err != nil {
			t.Fatalf("sending an echo request to %s: %v", ip, err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				break // timeout: try again
			}
			if a, ok := from.(*net.IPAddr); ok && a.IP.Equal(dst.IP) && n >= 8 && buf[0] == reply && buf[4] == 0x63 && buf[5] == 0x6e {
				return true
			}
		}
	}
	return false
}
