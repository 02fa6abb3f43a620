package firewall

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// A container whose kernel sends from 127.0.0.1 (route_localnet on its
// own link, as any root in its namespace may set) gets nothing of it to
// the host's services. route_localnet=1 on the bridge (hairpin without a
// proxy) lets the host's kernel take a loopback source on the bridge;
// what is left of the kernel's own check (a source that is one of the
// host's addresses) is off with accept_local, which the host here has on
// the bridge, as kernels without that check behave: then only the
// loopback guard's source drop keeps the datagrams from a service that
// trusts loopback peers (without the rule they arrive). The same
// container's datagrams from its own address arrive.
func TestHoleLoopbackSourceFromContainer(t *testing.T) {
	t.Parallel()
	r := testrig.NewForwardingRig(t)
	n := testrig.DualStackNet(t, r.Ctrl, "losrc", "", "10.76.0.0/24", "fd00:76::/64")
	c1 := r.MustRun(t, n, "c1", nil)
	if v := testrig.InNS(t, r.Host.NS, "sysctl", "-n", "net.ipv4.conf.br-"+n.ID()[:12]+".route_localnet"); strings.TrimSpace(v) != "1" {
		t.Fatalf("route_localnet on the bridge is %q: the test would prove nothing", v)
	}
	testrig.InNS(t, r.Host.NS, "sysctl", "-q", "-w", "net.ipv4.conf.br-"+n.ID()[:12]+".accept_local=1")
	gw := "10.76.0.1"
	svc, own := udpSink(t, r.Host.NS, testrig.HostPort(gw, 5500)), udpSink(t, r.Host.NS, testrig.HostPort(gw, 5501))
	// The path itself is open (and the container has the gateway's MAC:
	// it would not resolve it from 127.0.0.1).
	sendUDPFrom(t, c1.NS, c1.IP, testrig.HostPort(gw, 5501))
	if own.wait(10*time.Second) == 0 {
		t.Fatal("the container's datagrams from its own address never reached the host")
	}

	testrig.InNS(t, c1.NS, "sysctl", "-q", "-w", "net.ipv4.conf.eth0.route_localnet=1")
	sendUDPFrom(t, c1.NS, "127.0.0.1", testrig.HostPort(gw, 5500))
	if n := svc.after(time.Second); n != 0 {
		t.Fatalf("the container's datagrams from 127.0.0.1 reached the host's %s:5500 (%d)", gw, n)
	}
	if ownRuleHits(t, r.Host, firewall.IPv4, firewall.TableMangle, "-s 127.0.0.0/8 ! -i lo") == 0 {
		t.Error("the loopback guard's source drop saw no packet: the datagrams never reached the host")
	}
}

// sendUDPFrom sends a few datagrams to addr from inside ns, from source
// address src ("": the kernel's choice); every send must succeed, so that
// "nothing arrived" means dropped on the way, not never sent.
func sendUDPFrom(t *testing.T, ns *netnsutil.NS, src, addr string) {
	t.Helper()
	err := ns.Do(func() error {
		raddr, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		var laddr *net.UDPAddr
		if src != "" {
			laddr = &net.UDPAddr{IP: net.ParseIP(src)}
		}
		conn, err := net.DialUDP("udp", laddr, raddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		for i := 0; i < 5; i++ {
			if _, err := conn.Write([]byte("hi")); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending to udp %s from %q: %v", addr, src, err)
	}
}
