package restart

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// The rule checker the crash test uses sees a network's missing rules, in
// IPv6 as in IPv4, and a rule of the network's owner it does not render.
func TestNetworkRulesChecker(t *testing.T) {
	r := testrig.NewRestartable(t)
	c, host := r.Start(), r.Host
	n := testrig.DualStackNet(t, c, "chk", "cnmchk0", "10.97.0.0/24", "fd00:97::/64")
	nets := map[string]*libnetwork.Network{n.ID(): n}
	if p := testrig.NetworkRuleProblems(t, host, nets); len(p) > 0 {
		t.Fatalf("a fresh network: %v", p)
	}
	// Tampered with while no controller runs: a running one puts missing
	// rules back at once. The next start (for the cleanup) restores them.
	c.Stop()
	defer r.Start()
	owner := "cnm-net-" + n.ID()
	for _, bin := range []string{"iptables", "ip6tables"} {
		testrig.InNS(t, host.NS, bin, "-w", "-t", "filter", "-D", "FORWARD", "-i", "cnmchk0", "-o", "cnmchk0",
			"-m", "comment", "--comment", owner, "-j", "ACCEPT")
	}
	testrig.InNS(t, host.NS, "iptables", "-w", "-t", "filter", "-A", "FORWARD", "-i", "cnmchk0", "-o", "cnmchk0",
		"-m", "comment", "--comment", owner, "-j", "DROP")
	got := strings.Join(testrig.NetworkRuleProblems(t, host, nets), "\n")
	for _, want := range []string{"lacks its ipv4 rule: filter -A FORWARD -i cnmchk0 -o cnmchk0",
		"lacks its ipv6 rule: filter -A FORWARD -i cnmchk0 -o cnmchk0",
		"has a ipv4 rule its configuration does not render: filter -A FORWARD -i cnmchk0 -o cnmchk0 -m comment --comment " + owner + " -j DROP"} {
		if !strings.Contains(got, want) {
			t.Errorf("checker output lacks %q:\n%s", want, got)
		}
	}
}

// After a reboot-like loss of the kernel state (bridge, sandbox namespace,
// every rule and the port maps gone while the controller was down), the
// network comes back whole, the sandbox whose namespace vanished is
// dropped with an error saying so, and what it held (endpoint, addresses,
// host ports) is free again: a new container gets the same address and
// host port, and traffic reaches it through the published port.
func TestRestartAfterKernelStateVanished(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.DualStackNet(t, c, "net", "cnmboot0", "10.96.0.0/24", "fd00:96::/64")
	idle := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("idle"))
	ports := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 18090}}
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("web", libnetwork.OptionPortMapping(ports)))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	addr, addr6 := ep.Info().Iface().Address(), ep.Info().Iface().AddressIPv6()
	idleAddr := idle.Info().Iface().Address().String()
	if addr6 == nil || len(testrig.RulesNaming(t, r.Host.NS, "18090")) == 0 {
		t.Fatal("no IPv6 address or no port map element: the checks below would prove nothing")
	}
	key := sb.Key()

	// The "reboot": the process stops, then the kernel loses everything
	// (the namespace goes with its mount, taking the veth along).
	r.Last.Stop()
	r.Last = nil
	if err := netnsutil.Remove(key); err != nil {
		t.Fatal(err)
	}
	br, err := r.Host.Netlink.LinkByName("cnmboot0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Host.Netlink.LinkDel(br); err != nil {
		t.Fatal(err)
	}
	testrig.InNS(t, r.Host.NS, "nft", "flush", "ruleset") // iptables-nft's tables and opencnm-ports alike
	testrig.HostLinksSettle(t, r.Host, "lo")
	if left := testrig.RulesNaming(t, r.Host.NS, "cnm-"); len(left) > 0 {
		t.Fatalf("rules left after the flush: %v", left)
	}

	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{libnetwork.OptionPortMapping(ports)}}))
	// The vanished sandbox is reported, and dropped.
	rerr := c.RestoreError()
	if rerr == nil || !strings.Contains(rerr.Error(), "container web") || !strings.Contains(rerr.Error(), key) {
		t.Fatalf("restore error %v, want one naming container web and its namespace %s", rerr, key)
	}
	t.Logf("restore reported: %v", rerr)
	if _, err := c.SandboxByID(sb.ID()); !types.IsNotFound(err) {
		t.Fatalf("the sandbox whose namespace vanished came back: %v", err)
	}
	// The network is whole again: bridge with its tag, every rule (both
	// families), the port maps' table (empty: nobody publishes).
	rn := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net"))
	l, err := r.Host.Netlink.LinkByName("cnmboot0")
	if err != nil || l.Attrs().Alias != testrig.NetTag+n.ID() {
		t.Fatalf("bridge not re-created with its tag: %v", err)
	}
	testrig.CheckNetworkRules(t, r.Host, map[string]*libnetwork.Network{rn.ID(): rn})
	if e := testrig.PortElems(t, r.Host.NS); len(e) > 0 {
		t.Errorf("port map elements after restoring no publisher: %v", e)
	}
	// The dropped sandbox's endpoint is gone and released what it held;
	// the idle endpoint is kept.
	if _, err := rn.EndpointByName("web"); !types.IsNotFound(err) {
		t.Fatalf("the endpoint of the dropped sandbox came back: %v", err)
	}
	if ri, err := rn.EndpointByName("idle"); err != nil || ri.Info().Iface().Address().String() != idleAddr {
		t.Fatalf("idle endpoint not restored with %s: %v", idleAddr, err)
	}
	if n := testrig.Listeners(t, r.Host.NS, 18090); n != 0 {
		t.Fatalf("host port 18090 still held by %d sockets", n)
	}

	// A new container takes the same addresses and host port, and answers
	// through the published port (host loopback, and the bridge's own
	// address).
	nep := testrig.Must[*libnetwork.Endpoint](t)(rn.CreateEndpoint("web2", libnetwork.CreateOptionIpam(addr.IP, addr6.IP, nil, nil)))
	if a := nep.Info().Iface().Address().String(); a != addr.String() {
		t.Fatalf("new endpoint got %s, want the released %s", a, addr)
	}
	nsb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("web2", libnetwork.OptionPortMapping(ports)))
	if err := nep.Join(nsb); err != nil {
		t.Fatalf("joining with the released host port: %v", err)
	}
	ns, err := netnsutil.Open(nsb.Key())
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	testrig.Serve(t, ns, "tcp", net.JoinHostPort(addr.IP.String(), "80"), "web2")
	testrig.MustFetch(t, r.Host.NS, "tcp", fmt.Sprintf("127.0.0.1:%d", 18090), "web2")
	v4, _ := rn.IpamInfo()
	testrig.MustFetch(t, r.Host.NS, "tcp", net.JoinHostPort(v4[0].Gateway.IP.String(), "18090"), "web2")
}
