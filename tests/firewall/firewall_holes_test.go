package firewall

import (
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// The paths moby 28 closed (issue #11), tried with real traffic from a
// neighbour namespace and from containers, on a host that forwarded with
// FORWARD policy ACCEPT before the controller started: the library must
// not depend on having set the policy to DROP itself.

// From outside the bridge, only what a published host port DNATs reaches
// a container: not its unpublished ports, nor its published port by the
// container's own address, in both families. The host itself still
// reaches the container's addresses; the containers still reach out, and
// their published ports through the host (hairpin).
func TestHoleDirectRouting(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	n := testrig.DualStackNet(t, r.Ctrl, "direct", "", "10.61.0.0/24", "fd00:61::/64")
	r.RouteOutside(t, "10.61.0.0/24")
	testrig.RouteOutside6(t, r, "fd00:61::/64")
	c1 := r.MustRun(t, n, "c1", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)})})
	testrig.Serve(t, c1.NS, "tcp", ":80", "c1:80")
	testrig.Serve(t, c1.NS, "tcp", ":81", "c1:81")
	c1v6 := testrig.IP6Of(t, c1)

	// Published: through the host's addresses.
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8080), "c1:80")
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost6, 8080), "c1:80")
	// Routed to the container's own addresses: nothing, published or not.
	for _, ip := range []string{c1.IP, c1v6} {
		testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(ip, 80))
		testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(ip, 81))
	}
	// The neighbour's packets did reach the host (a dropped route would
	// prove nothing): the raw and filter drops counted them.
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		if got := ownRuleHits(t, r.Host, fam, firewall.TableRaw, "! -i br-"); got == 0 {
			t.Errorf("%s: the raw direct-access drop saw no packet", fam)
		}
	}
	// The host's own traffic to container addresses stays allowed.
	testrig.MustFetch(t, r.Host.NS, "tcp", testrig.HostPort(c1.IP, 81), "c1:81")
	testrig.FetchSoon(t, r.Host.NS, "tcp", testrig.HostPort(c1v6, 81), "c1:81")
	// Container egress (masqueraded) and hairpin keep working.
	testrig.Serve(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkOutside, 7000), "out")
	testrig.Serve(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out")
	if peer := testrig.MustFetch(t, c1.NS, "tcp", testrig.HostPort(testrig.UplinkOutside, 7000), "out"); peer != testrig.UplinkHost {
		t.Errorf("egress seen from %s, want the host's %s", peer, testrig.UplinkHost)
	}
	testrig.FetchSoon(t, c1.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out")
	c2 := r.MustRun(t, n, "c2", nil)
	testrig.MustFetch(t, c2.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8080), "c1:80")
	testrig.MustFetch(t, c2.NS, "tcp", testrig.HostPort(c1.IP, 81), "c1:81") // ICC on
	testrig.MustFetch(t, r.Host.NS, "tcp", testrig.HostPort("127.0.0.1", 8080), "c1:80")
	testrig.AssertForwardAccept(t, r.Host)
}

// Without masquerade the containers' connections come back to their own
// addresses, so the raw drop is not there; the filter drop still keeps
// new connections out, in both families, while the containers' own
// connections get their answers.
func TestHoleDirectRoutingNoMasquerade(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	n := testrig.DualStackNet(t, r.Ctrl, "nomasq", "", "10.60.0.0/24", "fd00:60::/64",
		libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.EnableIPMasquerade: "false"}))
	r.RouteOutside(t, "10.60.0.0/24")
	testrig.RouteOutside6(t, r, "fd00:60::/64")
	c1 := r.MustRun(t, n, "c1", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)})})
	testrig.Serve(t, c1.NS, "tcp", ":80", "c1:80")
	testrig.Serve(t, c1.NS, "tcp", ":81", "c1:81")
	c1v6 := testrig.IP6Of(t, c1)
	testrig.FetchSoon(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8080), "c1:80")
	for _, ip := range []string{c1.IP, c1v6} {
		testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(ip, 80))
		testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(ip, 81))
	}
	testrig.Serve(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkOutside, 7000), "out")
	testrig.Serve(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out")
	if peer := testrig.MustFetch(t, c1.NS, "tcp", testrig.HostPort(testrig.UplinkOutside, 7000), "out"); peer != c1.IP {
		t.Errorf("egress seen from %s, want the container's own %s", peer, c1.IP)
	}
	if peer := testrig.FetchSoon(t, c1.NS, "tcp", testrig.HostPort(testrig.UplinkOutside6, 7000), "out"); peer != c1v6 {
		t.Errorf("IPv6 egress seen from %s, want the container's own %s", peer, c1v6)
	}
}

// A port published on 127.0.0.1 answers only the host: a neighbour that
// sends to 127.0.0.1 at the host's MAC is dropped before the port map's
// DNAT would forward it. The IPv6 twin (::1 from the wire) holds with no
// rule of ours (the kernel drops it on its own); it guards that it stays so.
func TestHoleLoopbackPortFromLAN(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	n := testrig.DualStackNet(t, r.Ctrl, "lo", "", "10.62.0.0/24", "fd00:62::/64")
	c1 := r.MustRun(t, n, "c1", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping([]types.PortBinding{
		{Proto: types.UDP, Port: 53, HostIP: net.ParseIP("127.0.0.1"), HostPort: 5300},
	})})
	got := udpSink(t, c1.NS, ":53")
	loopbackVia(t, r.Out, "wan0", "127.0.0.1", testrig.UplinkHost, testrig.UplinkOutside)
	sendUDP(t, r.Out.NS, testrig.HostPort("127.0.0.1", 5300))
	if n := got.after(time.Second); n != 0 {
		t.Fatalf("the neighbour's datagrams to 127.0.0.1:5300 reached the container (%d)", n)
	}
	if ownRuleHits(t, r.Host, firewall.IPv4, firewall.TableMangle, "-d 127.0.0.0/8 ! -i lo") == 0 {
		t.Error("the loopback guard saw no packet: the neighbour's datagrams never reached the host")
	}
	// The host itself still reaches it.
	sendUDP(t, r.Host.NS, testrig.HostPort("127.0.0.1", 5300))
	if got.wait(10*time.Second) == 0 {
		t.Fatal("the host's datagrams to 127.0.0.1:5300 never reached the container")
	}

	// IPv6: a host service on [::1] is not reached from the wire.
	v6 := udpSink(t, r.Host.NS, "[::1]:5301")
	loopbackVia(t, r.Out, "wan0", "::1", testrig.UplinkHost6, testrig.UplinkOutside6)
	sendUDP(t, r.Out.NS, testrig.HostPort("::1", 5301))
	if n := v6.after(time.Second); n != 0 {
		t.Fatalf("the neighbour's datagrams to [::1]:5301 reached the host's service (%d)", n)
	}
}

// route_localnet=1 on the bridge (hairpin without a proxy) does not let a
// container reach services the host bound to its loopback; host →
// 127.0.0.1:port → container and hairpin keep working.
func TestHoleContainerToHostLoopback(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	n := testrig.DualStackNet(t, r.Ctrl, "rl", "", "10.63.0.0/24", "fd00:63::/64")
	c1 := r.MustRun(t, n, "c1", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)})})
	testrig.Serve(t, c1.NS, "tcp", ":80", "c1:80")
	if v := testrig.InNS(t, r.Host.NS, "sysctl", "-n", "net.ipv4.conf.br-"+n.ID()[:12]+".route_localnet"); strings.TrimSpace(v) != "1" {
		t.Fatalf("route_localnet on the bridge is %q: the test would prove nothing", v)
	}
	gw, gw6 := "10.63.0.1", "fd00:63::1"

	svc := udpSink(t, r.Host.NS, "127.0.0.5:5400")
	loopbackVia(t, c1, "eth0", "127.0.0.5", gw, c1.IP)
	sendUDP(t, c1.NS, "127.0.0.5:5400")
	if n := svc.after(time.Second); n != 0 {
		t.Fatalf("the container reached the host's 127.0.0.5:5400 (%d datagrams)", n)
	}
	if ownRuleHits(t, r.Host, firewall.IPv4, firewall.TableMangle, "-d 127.0.0.0/8 ! -i lo") == 0 {
		t.Error("the loopback guard saw no packet: the container's datagrams never reached the host")
	}
	svc6 := udpSink(t, r.Host.NS, "[::1]:5401")
	loopbackVia(t, c1, "eth0", "::1", gw6, testrig.IP6Of(t, c1))
	sendUDP(t, c1.NS, testrig.HostPort("::1", 5401))
	if n := svc6.after(time.Second); n != 0 {
		t.Fatalf("the container reached the host's [::1]:5401 (%d datagrams)", n)
	}

	// What route_localnet is for still works.
	testrig.MustFetch(t, r.Host.NS, "tcp", testrig.HostPort("127.0.0.1", 8080), "c1:80")
	c2 := r.MustRun(t, n, "c2", nil)
	testrig.MustFetch(t, c2.NS, "tcp", testrig.HostPort(gw, 8080), "c1:80")
	testrig.MustFetch(t, c1.NS, "tcp", testrig.HostPort(gw, 8080), "c1:80")
}

// loopbackVia makes a namespace send packets for the loopback address dst
// out of link to gw, from src, as an attacker with its own kernel would:
// the local route for dst goes, and route_localnet lets the address
// leave a non-loopback link.
func loopbackVia(t *testing.T, where any, link, dst, gw, src string) {
	t.Helper()
	var ns *netnsutil.NS
	switch w := where.(type) {
	case *testrig.Container:
		ns = w.NS
	case *testutil.HostNS:
		ns = w.NS
	default:
		t.Fatalf("loopbackVia: %T", where)
	}
	if strings.Contains(dst, ":") {
		testrig.InNS(t, ns, "ip", "-6", "route", "del", "table", "local", "::1", "dev", "lo")
		testrig.InNS(t, ns, "ip", "-6", "route", "add", dst+"/128", "via", gw, "dev", link, "src", src)
		return
	}
	// 127.0.0.1 itself stays local to the sender (only the /8 goes)
	// unless it is the destination.
	testrig.InNS(t, ns, "ip", "route", "del", "table", "local", "127.0.0.0/8", "dev", "lo")
	if dst == "127.0.0.1" {
		testrig.InNS(t, ns, "ip", "route", "del", "table", "local", "127.0.0.1", "dev", "lo")
	}
	testrig.InNS(t, ns, "sysctl", "-q", "-w", "net.ipv4.conf."+link+".route_localnet=1")
	testrig.InNS(t, ns, "ip", "route", "add", dst+"/32", "via", gw, "dev", link, "src", src)
}

// sink counts the datagrams arriving at a UDP socket.
type sink struct{ n atomic.Int64 }

// udpSink listens on addr inside ns until the test ends.
func udpSink(t *testing.T, ns *netnsutil.NS, addr string) *sink {
	t.Helper()
	s := &sink{}
	var pc net.PacketConn
	if err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket("udp", addr)
		return err
	}); err != nil {
		t.Fatalf("listening on udp %s: %v", addr, err)
	}
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			s.n.Add(1)
		}
	}()
	t.Cleanup(func() { pc.Close() })
	return s
}

// after waits d (a check that nothing arrives has to wait for it) and
// returns how many datagrams arrived.
func (s *sink) after(d time.Duration) int64 {
	time.Sleep(d)
	return s.n.Load()
}

// wait returns as soon as a datagram arrived, or after d with 0.
func (s *sink) wait(d time.Duration) int64 {
	deadline := time.Now().Add(d)
	for s.n.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	return s.n.Load()
}

// sendUDP is sendUDPFrom with the source address the kernel picks.
func sendUDP(t *testing.T, ns *netnsutil.NS, addr string) {
	t.Helper()
	sendUDPFrom(t, ns, "", addr)
}

// ownRuleHits sums the packet counters of the rules of ours in a table
// whose spec contains match (iptables-save -c).
func ownRuleHits(t *testing.T, host *testutil.HostNS, fam firewall.Family, table, match string) int64 {
	t.Helper()
	bin := "iptables-save"
	if fam == firewall.IPv6 {
		bin = "ip6tables-save"
	}
	var sum int64
	for _, line := range strings.Split(testrig.InNS(t, host.NS, bin, "-c", "-t", table), "\n") {
		if !strings.HasPrefix(line, "[") || !strings.Contains(line, match) || !strings.Contains(line, "--comment cnm-") {
			continue
		}
		pkts, _, _ := strings.Cut(strings.TrimPrefix(line, "["), ":")
		n, err := strconv.ParseInt(pkts, 10, 64)
		if err != nil {
			t.Fatalf("parsing counters of %q: %v", line, err)
		}
		sum += n
	}
	return sum
}
