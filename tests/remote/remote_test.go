package remote

import (
	"net"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// TestRemoteDriverLifecycle drives a network plugin that hands over veths
// through the whole controller: network, endpoints, join (the plugin's link
// moved into the sandbox and configured there), leave (the link given back
// to the host under its own name), sandbox delete with a joined endpoint,
// and teardown, over each way a plugin can be published.
func TestRemoteDriverLifecycle(t *testing.T) {
	t.Parallel()
	for _, how := range []testrig.Transport{testrig.ViaSocket, testrig.ViaTCPSpec, testrig.ViaTCPJSON} {
		t.Run(string(how), func(t *testing.T) {
			c, host, dir := testrig.NewPluginController(t, 5*testrig.PluginTimeout)
			p := testrig.NewVethPlugin(t, host)
			testrig.Publish(t, dir, "vethnet", how, network.NewHandler(p))
			remoteLifecycle(t, c, host.Netlink, p)
		})
	}
}

func remoteLifecycle(t *testing.T, c *libnetwork.Controller, hostNL *netlink.Handle, p *testrig.VethPlugin) {
	n, err := c.NewNetwork("vethnet", "rnet", "", testrig.IPAMOpt("10.77.0.0/24", "10.77.0.1"))
	if err != nil {
		t.Fatalf("NewNetwork on the plugin: %v", err)
	}
	if n.Type() != "vethnet" || p.Count("CreateNetwork "+n.ID()) != 1 {
		t.Fatalf("network type %q, plugin calls %v", n.Type(), p.CallList())
	}
	p.Mu.Lock()
	pool, gw := p.Pools[n.ID()], p.NetGateways[n.ID()]
	p.Mu.Unlock()
	if pool != "10.77.0.0/24" || gw != "10.77.0.1" {
		t.Fatalf("plugin got pool %q gateway %q", pool, gw)
	}

	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep1"))
	pe := p.Endpoint(ep.ID())
	if pe == nil || !p.HostHas(pe.Host) || !p.HostHas(pe.Peer) {
		t.Fatalf("plugin did not make its veth: %+v", pe)
	}
	if mac := ep.Info().Iface().MacAddress(); mac.String() != p.Mac {
		t.Fatalf("endpoint MAC %v, want the plugin's %s", mac, p.Mac)
	}
	if a := ep.Info().Iface().Address(); a == nil || a.String() != "10.77.0.2/24" {
		t.Fatalf("endpoint address %v", a)
	}

	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c1"))
	t.Cleanup(func() { _ = sb.Delete() })
	if err := ep.Join(sb); err != nil {
		t.Fatalf("Join: %v", err)
	}
	_, sbNL := testrig.SandboxNS(t, sb)
	testrig.CheckJoined(t, sbNL, p)
	if p.HostHas(pe.Peer) {
		t.Fatalf("container end %s still in the host namespace", pe.Peer)
	}
	if !p.HostHas(pe.Host) {
		t.Fatalf("host end %s gone", pe.Host)
	}
	info := ep.Info()
	if info.Gateway().String() != "10.77.0.1" || len(info.StaticRoutes()) != 2 || info.Sandbox() != sb {
		t.Fatalf("endpoint info: gw %v routes %v sandbox %v", info.Gateway(), info.StaticRoutes(), info.Sandbox())
	}
	di, err := ep.DriverInfo()
	if err != nil {
		t.Fatalf("DriverInfo: %v", err)
	}
	if di["veth.host"] != pe.Host || di["veth.peer"] != pe.Peer {
		t.Fatalf("DriverInfo lacks the plugin's EndpointOperInfo: %v", di)
	}
	if mac, ok := di[netlabel.MacAddress].(net.HardwareAddr); !ok || mac.String() != p.Mac {
		t.Fatalf("DriverInfo MAC %v", di[netlabel.MacAddress])
	}
	if p.Count("ProgramExternalConnectivity "+ep.ID()) != 1 {
		t.Fatalf("gateway endpoint not programmed for external connectivity: %v", p.CallList())
	}

	// Leave gives the link back to the host namespace under its own name,
	// before the plugin hears of it.
	if err := ep.Leave(sb); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if got := testrig.LinkNames(t, sbNL); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after leave: %v", got)
	}
	if seen, called := p.LinkSeen("Leave " + ep.ID()); !called || !seen {
		t.Fatalf("plugin's Leave: called %v, container end back in host %v", called, seen)
	}
	if p.Count("RevokeExternalConnectivity "+ep.ID()) != 1 {
		t.Fatalf("external connectivity not revoked: %v", p.CallList())
	}
	if l, err := hostNL.LinkByName(pe.Peer); err != nil || l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatalf("container end back in host: %v (up %v)", err, l != nil && l.Attrs().Flags&net.FlagUp != 0)
	}

	// The same link joins again under the same name.
	if err := ep.Join(sb); err != nil {
		t.Fatalf("second Join: %v", err)
	}
	testrig.CheckJoined(t, sbNL, p)
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if err := ep.Delete(false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if seen, called := p.LinkSeen("DeleteEndpoint " + ep.ID()); !called || !seen {
		t.Fatalf("plugin's DeleteEndpoint: called %v, link in host %v", called, seen)
	}
	if p.HostHas(pe.Host) || p.HostHas(pe.Peer) {
		t.Fatal("plugin's veth survived DeleteEndpoint")
	}

	// Deleting a sandbox with a joined remote endpoint also hands the link
	// back: the plugin, not the dying namespace, owns it.
	ep2 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep2"))
	pe2 := p.Endpoint(ep2.ID())
	if err := ep2.Join(sb); err != nil {
		t.Fatal(err)
	}
	if got := testrig.LinkNames(t, sbNL); strings.Join(got, ",") != "eth0,lo" {
		t.Fatalf("sandbox links: %v", got)
	}
	if err := sb.Delete(); err != nil {
		t.Fatalf("sandbox Delete: %v", err)
	}
	if seen, called := p.LinkSeen("Leave " + ep2.ID()); !called || !seen {
		t.Fatalf("sandbox delete: plugin's Leave called %v, link back in host %v", called, seen)
	}
	if seen, called := p.LinkSeen("DeleteEndpoint " + ep2.ID()); !called || !seen {
		t.Fatalf("sandbox delete: plugin's DeleteEndpoint called %v, link in host %v", called, seen)
	}
	if p.HostHas(pe2.Peer) {
		t.Fatal("veth of ep2 survived")
	}

	if err := n.Delete(); err != nil {
		t.Fatalf("network Delete: %v", err)
	}
	if p.Count("DeleteNetwork "+n.ID()) != 1 {
		t.Fatalf("plugin calls: %v", p.CallList())
	}
	if got := testrig.LinkNames(t, hostNL); strings.Join(got, ",") != "lo" {
		t.Fatalf("host links left: %v", got)
	}
	if _, err := c.NetworkByName("rnet"); !types.IsNotFound(err) {
		t.Fatalf("network still listed: %v", err)
	}
}
