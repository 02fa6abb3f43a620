package portmapper_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/iptables"
	"github.com/opencnm/libnetwork/firewall/nftports"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/portmapper"
	"github.com/opencnm/libnetwork/types"
)

// realRig is a PortMapper on real sockets and iptables in a throwaway
// "host" namespace.
type realRig struct {
	host *testutil.HostNS
	run  *iptables.Exec
	fw   *firewall.Firewall
	pm   *portmapper.PortMapper
	ct   *portmapper.NetlinkConntrack
}

func newRealRig(t testing.TB, ipv6 bool) *realRig {
	t.Helper()
	r := &realRig{host: testutil.NewHostNS(t)}
	r.run = iptables.New(r.host.NS)
	maps := nftports.New(r.host.NS)
	t.Cleanup(func() { _ = maps.Close() })
	r.fw = firewall.New(r.run, maps, ipv6)
	if err := r.fw.Setup(); err != nil {
		t.Fatal(err)
	}
	ct, err := portmapper.NewNetlinkConntrack(r.host.NS)
	if err != nil {
		t.Fatal(err)
	}
	r.ct = ct
	r.pm = portmapper.New(portmapper.NSReserver{NS: r.host.NS}, r.fw, ct)
	t.Cleanup(func() {
		r.pm.Close()
		ct.Close()
	})
	return r
}

// listenIn starts a host process stand-in: a TCP listener in ns.
func listenIn(t testing.TB, h *testutil.HostNS, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := h.Do(func() error {
		var err error
		l, err = net.Listen("tcp4", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestRealReservation(t *testing.T) {
	testutil.RequireRoot(t)
	r := newRealRig(t, false)
	ep := portmapper.Endpoint{ID: "ep1", Bridge: "br0", IPv4: net.ParseIP("172.30.0.2")}
	if _, err := r.pm.MapPorts(ep, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}, {Proto: types.UDP, Port: 53, HostPort: 8053}}); err != nil {
		t.Fatal(err)
	}
	// The port is really held: a host process cannot listen on it.
	err := r.host.Do(func() error {
		l, err := net.Listen("tcp4", "127.0.0.1:8080")
		if err == nil {
			l.Close()
		}
		return err
	})
	if err == nil {
		t.Error("a host listener got a published port")
	}
	ep2 := portmapper.Endpoint{ID: "ep2", Bridge: "br0", IPv4: net.ParseIP("172.30.0.3")}
	_, err = r.pm.MapPorts(ep2, []types.PortBinding{{Proto: types.UDP, Port: 53, HostPort: 8053}})
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "bind for 0.0.0.0:8053 failed: port is already allocated") {
		t.Fatalf("second map of udp 8053: %v", err)
	}
	// A host process's port is refused, also through a fresh PortMapper
	// that has no record of it.
	listenIn(t, r.host, "0.0.0.0:9090")
	pm2 := portmapper.New(portmapper.NSReserver{NS: r.host.NS}, nil, nil)
	_, err = pm2.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 9090}})
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "bind for 0.0.0.0:9090 failed") {
		t.Fatalf("map of a host process's port: %v", err)
	}
	_, err = pm2.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}})
	if !types.IsForbidden(err) {
		t.Fatalf("map of another mapper's port: %v", err)
	}
	// A range skips the held ports.
	got, err := pm2.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 9090, HostPortEnd: 9092}})
	if err != nil || got[0].HostPort != 9091 {
		t.Fatalf("range map: %v %v", got, err)
	}
	if err := pm2.UnmapPorts("ep2"); err != nil {
		t.Fatal(err)
	}
	// Ephemeral ports come from the namespace's own range.
	if err := r.host.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("45000 45003"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	got, err = pm2.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80}, {Proto: types.SCTP, Port: 80}})
	if err != nil || got[0].HostPort < 45000 || got[0].HostPort > 45003 || got[1].HostPort < 45000 || got[1].HostPort > 45003 {
		t.Fatalf("ephemeral map: %v %v", got, err)
	}
	if err := pm2.UnmapPorts("ep2"); err != nil {
		t.Fatal(err)
	}
	// Unmap releases: the port can be listened on again.
	if err := r.pm.UnmapPorts("ep1"); err != nil {
		t.Fatal(err)
	}
	listenIn(t, r.host, "127.0.0.1:8080")
}

// setupBridge builds, in the host namespace, bridge br0 172.30.0.1/24 and
// returns a function that attaches a new "container" namespace with
// address 172.30.0.N/24.
func setupBridge(t *testing.T, r *realRig) func(name string, n int) *testutil.HostNS {
	t.Helper()
	h := r.host.Netlink
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}
	if err := h.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("172.30.0.1/24")
	if err := h.AddrAdd(br, addr); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(br); err != nil {
		t.Fatal(err)
	}
	sys := firewall.NSSysctl{NS: r.host.NS}
	if _, err := firewall.EnableIPForwarding(sys, r.fw, false); err != nil {
		t.Fatal(err)
	}
	if err := firewall.SetRouteLocalnet(sys, "br0"); err != nil {
		t.Fatal(err)
	}
	if err := r.fw.SetupNetwork(firewall.NetworkConfig{ID: "net1", Bridge: "br0", Subnet: addr.IPNet, ICC: true, Masquerade: true, Hairpin: true}); err != nil {
		t.Fatal(err)
	}
	return func(name string, n int) *testutil.HostNS {
		c := testutil.NewNamedNS(t, name)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v" + name, MasterIndex: br.Attrs().Index}, PeerName: "eth0", PeerNamespace: netlink.NsFd(c.Fd())}
		if err := h.LinkAdd(veth); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(veth); err != nil {
			t.Fatal(err)
		}
		eth0, err := c.Netlink.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(fmt.Sprintf("172.30.0.%d/24", n))
		if err := c.Netlink.AddrAdd(eth0, a); err != nil {
			t.Fatal(err)
		}
		if err := c.Netlink.LinkSetUp(eth0); err != nil {
			t.Fatal(err)
		}
		if err := c.Netlink.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("172.30.0.1")}); err != nil {
			t.Fatal(err)
		}
		return c
	}
}

// dialIn connects from inside ns and returns what the server sends.
func dialIn(ns *testutil.HostNS, addr string) (string, error) {
	var got string
	err := ns.Do(func() error {
		c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		b, err := io.ReadAll(c)
		got = string(b)
		return err
	})
	return got, err
}

// A published port answers from the host's loopback, from the host's
// bridge address and from another container (hairpin via the gateway),
// and stops answering once unmapped.
func TestRealEndToEndDNAT(t *testing.T) {
	testutil.RequireRoot(t)
	r := newRealRig(t, false)
	attach := setupBridge(t, r)
	server := attach("c1", 2)
	client := attach("c2", 3)

	l := listenIn(t, server, "0.0.0.0:80")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "hello from %s", c.LocalAddr())
			c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })

	ep := portmapper.Endpoint{ID: "ep1", Bridge: "br0", IPv4: net.ParseIP("172.30.0.2")}
	got, err := r.pm.MapPorts(ep, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}, {Proto: types.UDP, Port: 53, HostPort: 5353}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("operational bindings %v", got)
	}
	for _, c := range []struct {
		from *testutil.HostNS
		addr string
	}{
		{r.host, "127.0.0.1:8080"},
		{r.host, "172.30.0.1:8080"},
		{client, "172.30.0.1:8080"},
	} {
		reply, err := dialIn(c.from, c.addr)
		if err != nil || reply != "hello from 172.30.0.2:80" {
			t.Errorf("dial %s: %q, %v", c.addr, reply, err)
		}
	}

	// A UDP packet to the published port makes a conntrack entry; unmap
	// must flush it.
	if err := r.host.Do(func() error {
		c, err := net.Dial("udp4", "127.0.0.1:5353")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("ping"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if n := udpFlows(t, r, 5353); n == 0 {
		t.Fatal("no conntrack entry for the UDP packet")
	}
	if err := r.pm.UnmapPorts("ep1"); err != nil {
		t.Fatal(err)
	}
	if n := udpFlows(t, r, 5353); n != 0 {
		t.Errorf("%d conntrack entries left after unmap", n)
	}
	if _, err := dialIn(r.host, "127.0.0.1:8080"); err == nil {
		t.Error("unmapped port still answers")
	}
}

func udpFlows(t *testing.T, r *realRig, port uint16) int {
	t.Helper()
	flows, err := r.ct.Handle.ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range flows {
		if f.Forward.Protocol == 17 && f.Forward.DstPort == port {
			n++
		}
	}
	return n
}

// The port rules the kernel holds are exactly the fake's golden listing
// (sockets faked here: fd00:ff::1 is no address of the namespace).
func TestRealRulesMatchGolden(t *testing.T) {
	testutil.RequireRoot(t)
	host := testutil.NewHostNS(t)
	run := iptables.New(host.NS)
	maps := nftports.New(host.NS)
	defer maps.Close()
	fw := firewall.New(run, maps, true)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	base := dump(t, run, maps, firewall.IPv4, firewall.IPv6)
	pm := portmapper.New(newFakeReserver(), fw, nil)
	if _, err := pm.MapPorts(ep1, goldenBindings); err != nil {
		t.Fatal(err)
	}
	golden(t, "map", dump(t, run, maps, firewall.IPv4, firewall.IPv6))
	if err := pm.UnmapPorts(ep1.ID); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, run, maps, firewall.IPv4, firewall.IPv6); got != base {
		t.Errorf("unmap left:\n%s", got)
	}
}
