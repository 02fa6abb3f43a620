package testrig

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/nftports"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// Addresses of the test "uplink": the controller's host namespace and an
// outside namespace joined by a veth on TEST-NET-1. Nothing routes beyond.
const (
	UplinkHost    = "192.0.2.1"
	UplinkOutside = "192.0.2.2"
)

// PortRig is a controller in a throwaway host namespace plus an "outside"
// namespace that reaches the host through a veth.
type PortRig struct {
	Ctrl *libnetwork.Controller
	Host *testutil.HostNS
	Out  *testutil.HostNS
}

func NewPortRig(t *testing.T, opts ...config.Option) *PortRig {
	t.Helper()
	c, host := NewPrivController(t, opts...)
	return newPortRigOf(t, c, host)
}

// newPortRigOf is newPortRig around a controller already running in host.
func newPortRigOf(t *testing.T, c *libnetwork.Controller, host *testutil.HostNS) *PortRig {
	t.Helper()
	// Runs before the controller stops: a failed test still removes its
	// sandboxes' namespaces.
	t.Cleanup(func() {
		for _, sb := range c.Sandboxes() {
			_ = sb.Delete()
		}
	})
	out := testutil.NewNamedNS(t, "outside")
	a := netlink.NewLinkAttrs()
	a.Name = "uplink"
	v := &netlink.Veth{LinkAttrs: a, PeerName: "wan0", PeerNamespace: netlink.NsFd(out.Fd())}
	if err := host.Netlink.LinkAdd(v); err != nil {
		t.Fatalf("creating uplink veth: %v", err)
	}
	setup := func(h *netlink.Handle, name, addr string) {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		ip, n, _ := net.ParseCIDR(addr)
		n.IP = ip
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: n}); err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	setup(host.Netlink, "uplink", UplinkHost+"/24")
	setup(out.Netlink, "wan0", UplinkOutside+"/24")
	return &PortRig{Ctrl: c, Host: host, Out: out}
}

// RouteOutside gives the outside namespace a route to subnet through the
// host, as a router upstream of a real host would have.
func (r *PortRig) RouteOutside(t *testing.T, subnet string) {
	t.Helper()
	_, dst, _ := net.ParseCIDR(subnet)
	if err := r.Out.Netlink.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(UplinkHost)}); err != nil {
		t.Fatalf("route to %s in outside namespace: %v", subnet, err)
	}
}

func (r *PortRig) BridgeNet(t *testing.T, name, pool string, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	t.Helper()
	opts = append([]libnetwork.NetworkOption{
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: pool}}, nil, nil),
	}, opts...)
	n, err := r.Ctrl.NewNetwork("bridge", name, "", opts...)
	if err != nil {
		t.Fatalf("creating network %s: %v", name, err)
	}
	return n
}

// Container is an endpoint joined to its own sandbox.
type Container struct {
	Endpoint *libnetwork.Endpoint
	Sandbox  *libnetwork.Sandbox
	NS       *netnsutil.NS
	IP       string
}

func (r *PortRig) Run(t *testing.T, n *libnetwork.Network, name string, epOpts []libnetwork.EndpointOption, sbOpts ...libnetwork.SandboxOption) (*Container, error) {
	t.Helper()
	ep, err := n.CreateEndpoint(name, epOpts...)
	if err != nil {
		return nil, err
	}
	sb, err := r.Ctrl.NewSandbox("ctr-"+name, sbOpts...)
	if err != nil {
		_ = ep.Delete(false)
		return nil, err
	}
	if err := ep.Join(sb); err != nil {
		_ = sb.Delete()
		_ = ep.Delete(false)
		return nil, err
	}
	ns, err := netnsutil.Open(sb.Key())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	ctr := &Container{Endpoint: ep, Sandbox: sb, NS: ns}
	if a := ep.Info().Iface().Address(); a != nil { // nil on an IPv6-only network
		ctr.IP = a.IP.String()
	}
	return ctr, nil
}

func (r *PortRig) MustRun(t *testing.T, n *libnetwork.Network, name string, epOpts []libnetwork.EndpointOption, sbOpts ...libnetwork.SandboxOption) *Container {
	t.Helper()
	c, err := r.Run(t, n, name, epOpts, sbOpts...)
	if err != nil {
		t.Fatalf("running container %s: %v", name, err)
	}
	return c
}

// Stop is the container teardown: leave, delete sandbox, delete endpoint.
func (c *Container) Stop(t testing.TB) {
	t.Helper()
	if err := c.Endpoint.Leave(c.Sandbox); err != nil {
		t.Fatal(err)
	}
	if err := c.Sandbox.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := c.Endpoint.Delete(false); err != nil {
		t.Fatal(err)
	}
}

// Serve answers every TCP connection (or UDP datagram) on addr inside ns
// with "<tag> <peer address>", until the test ends. It returns the address
// it listens on (addr with the port the kernel chose for port 0). It and
// Fetch are the tests' one echo pair: the reply says which server answered
// and where the client came from.
func Serve(t *testing.T, ns *netnsutil.NS, proto, addr, tag string) string {
	t.Helper()
	var closer interface{ Close() error }
	var bound string
	err := ns.Do(func() error {
		if proto == "udp" {
			pc, err := net.ListenPacket("udp", addr)
			if err != nil {
				return err
			}
			closer, bound = pc, pc.LocalAddr().String()
			go func() {
				buf := make([]byte, 64)
				for {
					_, peer, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					_, _ = pc.WriteTo([]byte(tag+" "+peer.String()+"\n"), peer)
				}
			}()
			return nil
		}
		l, err := net.Listen(proto, addr)
		if err != nil {
			return err
		}
		closer, bound = l, l.Addr().String()
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = fmt.Fprintf(conn, "%s %s\n", tag, conn.RemoteAddr())
				conn.Close()
			}
		}()
		return nil
	})
	if err != nil {
		t.Fatalf("serving %s %s: %v", proto, addr, err)
	}
	t.Cleanup(func() { closer.Close() })
	return bound
}

// Fetch connects to addr from inside ns and returns the first line the
// server sends (for UDP: the answer to one datagram).
func Fetch(ns *netnsutil.NS, proto, addr string) (string, error) {
	return FetchWithin(ns, proto, addr, 700*time.Millisecond)
}

// FetchWithin is fetch with its own timeout. Checks that expect an answer
// allow a TCP retransmission (the first SYN is resent after 1 s), so a
// loaded machine does not turn a slow answer into a failure; checks that
// expect none keep the short timeout.
func FetchWithin(ns *netnsutil.NS, proto, addr string, timeout time.Duration) (string, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		conn, err = net.DialTimeout(proto, addr, timeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	if proto == "udp" {
		return udpAsk(conn, deadline)
	}
	_ = conn.SetDeadline(deadline)
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// udpAsk sends a datagram on conn and returns the first line answered
// before deadline. A datagram can be lost on a loaded machine (a neighbour
// entry not yet resolved, a queue full), where TCP would retransmit its
// SYN, so the datagram is sent again every udpResend: all from one socket,
// so they are one flow to conntrack and NAT, and one answer is enough.
func udpAsk(conn net.Conn, deadline time.Time) (string, error) {
	buf := make([]byte, 512)
	for {
		if _, err := conn.Write([]byte("hi")); err != nil {
			return "", err
		}
		wait := time.Now().Add(udpResend)
		if wait.After(deadline) {
			wait = deadline
		}
		_ = conn.SetReadDeadline(wait)
		n, err := conn.Read(buf)
		if err == nil {
			line, _, _ := strings.Cut(string(buf[:n]), "\n")
			return strings.TrimSpace(line), nil
		}
		if ne, ok := err.(net.Error); !ok || !ne.Timeout() || !time.Now().Before(deadline) {
			return "", err
		}
	}
}

const udpResend = 300 * time.Millisecond

// MustFetch expects an answer from the server tagged tag; it returns the
// peer address the server saw, without the port.
func MustFetch(t *testing.T, ns *netnsutil.NS, proto, addr, tag string) string {
	t.Helper()
	got, err := FetchWithin(ns, proto, addr, 3*time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", proto, addr, err)
	}
	return answerFrom(t, proto, addr, got, tag)
}

// answerFrom checks that got, a Serve answer, came from the server tagged
// tag and returns the peer address that server saw, without the port.
func answerFrom(t *testing.T, proto, addr, got, tag string) string {
	t.Helper()
	f := strings.Fields(got)
	if len(f) != 2 || f[0] != tag {
		t.Fatalf("%s %s: got %q, want an answer from %s", proto, addr, got, tag)
	}
	host, _, _ := net.SplitHostPort(f[1])
	return host
}

func MustNotFetch(t *testing.T, ns *netnsutil.NS, proto, addr string) {
	t.Helper()
	if got, err := Fetch(ns, proto, addr); err == nil {
		t.Fatalf("%s %s: reached %q, want no connection", proto, addr, got)
	}
}

// InNS runs a command inside ns and returns its output.
func InNS(t testing.TB, ns *netnsutil.NS, name string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	err := ns.Do(func() error {
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr = &out, &errb
		return cmd.Run()
	})
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, errb.String())
	}
	return out.String()
}

// RulesNaming returns the iptables rules (both families, all tables) and
// the published ports' map elements (as "tcp *:8080 -> 10.0.0.2:80
// cnm-ep-ID") of ns whose text contains any of words.
func RulesNaming(t testing.TB, ns *netnsutil.NS, words ...string) []string {
	t.Helper()
	var hits []string
	lines := PortElems(t, ns)
	for _, bin := range []string{"iptables-save", "ip6tables-save"} {
		lines = append(lines, strings.Split(InNS(t, ns, bin), "\n")...)
	}
	for _, line := range lines {
		for _, w := range words {
			if strings.Contains(line, w) {
				hits = append(hits, line)
				break
			}
		}
	}
	return hits
}

// PortElems lists the published ports' map elements of ns, both
// families, as text.
func PortElems(t testing.TB, ns *netnsutil.NS) []string {
	t.Helper()
	var out []string
	for _, e := range PortMapElems(t, ns) {
		out = append(out, e.String())
	}
	return out
}

// PortMapElems lists the published ports' map elements of ns, both
// families.
func PortMapElems(t testing.TB, ns *netnsutil.NS) []firewall.PortElem {
	t.Helper()
	m := nftports.New(ns)
	defer m.Close()
	var out []firewall.PortElem
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		es, err := m.List(fam)
		if err != nil {
			t.Fatalf("listing %s port maps: %v", fam, err)
		}
		out = append(out, es...)
	}
	return out
}

// Listeners counts the listening TCP sockets on port in ns.
func Listeners(t testing.TB, ns *netnsutil.NS, port uint16) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"} {
		var b []byte
		if err := ns.Do(func() error {
			var err error
			b, err = os.ReadFile(f)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) > 3 && fs[3] == "0A" && strings.HasSuffix(fs[1], fmt.Sprintf(":%04X", port)) {
				n++
			}
		}
	}
	return n
}

// Eventually polls cond for up to 10 s: generous, since what it waits for
// (a background deletion, a kernel clean-up) runs late on a loaded machine.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
