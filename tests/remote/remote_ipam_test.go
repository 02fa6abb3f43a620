package remote

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// TestRemoteIPAMBridge runs a bridge network whose pool, gateway and
// addresses all come from an IPAM plugin, and passes traffic over it.
func TestRemoteIPAMBridge(t *testing.T) {
	t.Parallel()
	c, host, dir := testrig.NewPluginController(t, 5*testrig.PluginTimeout)
	p := newPoolPlugin()
	testrig.Publish(t, dir, "myipam", testrig.ViaTCPJSON, ipam.NewHandler(p))

	n, err := c.NewNetwork("bridge", "ibr", "", libnetwork.NetworkOptionIpam("myipam", "", nil, nil, nil))
	if err != nil {
		t.Fatalf("bridge network on the IPAM plugin: %v", err)
	}
	calls := p.callList()
	for _, want := range []string{"GetDefaultAddressSpaces", "RequestPool poolspace ", "RequestAddress pool-1 "} {
		if !slices.Contains(calls, want) {
			t.Fatalf("plugin did not see %q: %v", want, calls)
		}
	}
	p.mu.Lock()
	gwOpts := p.gwOpts
	p.mu.Unlock()
	if len(gwOpts) != 1 || gwOpts[0]["RequestAddressType"] != "com.docker.network.gateway" {
		t.Fatalf("gateway request options: %v", gwOpts)
	}
	v4, _ := n.Info().IpamInfo()
	if len(v4) != 1 || v4[0].PoolID != "pool-1" || v4[0].Pool.String() != "10.88.0.0/24" ||
		v4[0].Gateway.String() != "10.88.0.254/24" || v4[0].AddressSpace != "poolspace" {
		t.Fatalf("network IPAM info: %+v", v4)
	}
	if br := bridgeAddrs(t, host.Netlink); !slices.Contains(br, "10.88.0.254/24") {
		t.Fatalf("bridge addresses %v, want the plugin's gateway", br)
	}

	var sbs []*libnetwork.Sandbox
	for i, name := range []string{"a", "b"} {
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep-" + name))
		want := []string{"10.88.0.10/24", "10.88.0.11/24"}[i]
		if a := ep.Info().Iface().Address(); a.String() != want {
			t.Fatalf("endpoint %s address %v, want the plugin's %s", name, a, want)
		}
		sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c-" + name))
		t.Cleanup(func() { _ = sb.Delete() })
		if err := ep.Join(sb); err != nil {
			t.Fatal(err)
		}
		_, nl := testrig.SandboxNS(t, sb)
		l, err := nl.LinkByName("eth0")
		if err != nil {
			t.Fatal(err)
		}
		addrs, _ := nl.AddrList(l, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != want {
			t.Fatalf("sandbox %s addresses %v", name, addrs)
		}
		if r := testrig.RouteSet(t, nl); !slices.Contains(r, "default via 10.88.0.254 dev eth0") {
			t.Fatalf("sandbox %s routes %v", name, r)
		}
		sbs = append(sbs, sb)
	}
	exchange(t, sbs[0], sbs[1], "10.88.0.10", "10.88.0.11")
	exchange(t, sbs[1], sbs[0], "10.88.0.11", "10.88.0.10")

	for _, sb := range sbs {
		if err := sb.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	calls = p.callList()
	for _, want := range []string{"ReleaseAddress 10.88.0.10", "ReleaseAddress 10.88.0.11", "ReleaseAddress 10.88.0.254", "ReleasePool pool-1"} {
		if !slices.Contains(calls, want) {
			t.Fatalf("plugin did not see %q: %v", want, calls)
		}
	}
	if addrs, pools := p.held(); len(addrs) != 0 || len(pools) != 0 {
		t.Fatalf("plugin still holds addresses %v pools %v", addrs, pools)
	}
	if got := testrig.LinkNames(t, host.Netlink); strings.Join(got, ",") != "lo" {
		t.Fatalf("host links left: %v", got)
	}
}

// TestRemoteIPAMFailures checks that a plugin's refusal at each step fails
// the operation with the plugin's message and gives back what was taken.
func TestRemoteIPAMFailures(t *testing.T) {
	t.Parallel()
	c, _, dir := testrig.NewPluginController(t, testrig.PluginTimeout)
	p := newPoolPlugin()
	testrig.Publish(t, dir, "myipam", testrig.ViaSocket, ipam.NewHandler(p))
	opt := libnetwork.NetworkOptionIpam("myipam", "", nil, nil, nil)

	for _, method := range []string{"RequestPool", "RequestAddress"} {
		p.mu.Lock()
		p.failOn = method
		p.mu.Unlock()
		_, err := c.NewNetwork("bridge", "ibr", "", opt)
		if err == nil || !strings.Contains(err.Error(), "remote: pool plugin refuses "+method) {
			t.Fatalf("%s refused: got %v", method, err)
		}
		if addrs, pools := p.held(); len(addrs) != 0 || len(pools) != 0 {
			t.Fatalf("%s refused: plugin still holds addresses %v pools %v", method, addrs, pools)
		}
		if _, err := c.NetworkByName("ibr"); !types.IsNotFound(err) {
			t.Fatalf("%s refused: network listed: %v", method, err)
		}
	}

	p.mu.Lock()
	p.failOn = ""
	p.mu.Unlock()
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("bridge", "ibr", "", opt))
	p.mu.Lock()
	p.failOn = "RequestAddress"
	p.mu.Unlock()
	if _, err := n.CreateEndpoint("ep"); err == nil || !strings.Contains(err.Error(), "pool plugin refuses") {
		t.Fatalf("endpoint address refused: got %v", err)
	}
	if len(n.Endpoints()) != 0 {
		t.Fatal("failed endpoint listed")
	}
	p.mu.Lock()
	p.failOn = ""
	p.mu.Unlock()
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if addrs, pools := p.held(); len(addrs) != 0 || len(pools) != 0 {
		t.Fatalf("plugin still holds addresses %v pools %v", addrs, pools)
	}
}

// bridgeAddrs lists the IPv4 addresses on the bridges nl sees.
func bridgeAddrs(t *testing.T, nl *netlink.Handle) []string {
	t.Helper()
	links, err := nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range links {
		if l.Type() != "bridge" {
			continue
		}
		addrs, err := nl.AddrList(l, netlink.FAMILY_V4)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			out = append(out, a.IPNet.String())
		}
	}
	return out
}

// exchange serves TCP in server's namespace at ip and connects to it from
// client's, which the server must see as clientIP.
func exchange(t *testing.T, server, client *libnetwork.Sandbox, ip, clientIP string) {
	t.Helper()
	sns, _ := testrig.SandboxNS(t, server)
	cns, _ := testrig.SandboxNS(t, client)
	addr := testrig.Serve(t, sns, "tcp", net.JoinHostPort(ip, "0"), "echo")
	reply, err := testrig.FetchWithin(cns, "tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if !strings.HasPrefix(reply, "echo "+net.JoinHostPort(clientIP, "")) {
		t.Fatalf("reply %q, want it to name the client %s", reply, clientIP)
	}
}
