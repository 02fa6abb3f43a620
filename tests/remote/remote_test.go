package libnetwork_test

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// routeSet renders the IPv4 routes of nl as "dst via gw dev" strings.
func routeSet(t *testing.T, nl *netlink.Handle) []string {
	t.Helper()
	routes, err := nl.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range routes {
		dst := "default"
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones > 0 {
				dst = r.Dst.String()
			}
		}
		s := dst
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		if l, err := nl.LinkByIndex(r.LinkIndex); err == nil {
			s += " dev " + l.Attrs().Name
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func ipamConf(pool, gw string) libnetwork.NetworkOption {
	return libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: pool, Gateway: gw}}, nil, nil)
}

// TestRemoteDriverLifecycle drives a network plugin that hands over veths
// through the whole controller: network, endpoints, join (the plugin's link
// moved into the sandbox and configured there), leave (the link given back
// to the host under its own name), sandbox delete with a joined endpoint,
// and teardown, over each way a plugin can be published.
func TestRemoteDriverLifecycle(t *testing.T) {
	for _, how := range []transport{viaSocket, viaTCPSpec, viaTCPJSON} {
		t.Run(string(how), func(t *testing.T) {
			c, host, dir := newPluginController(t, 5*testTimeout)
			p := newVethPlugin(t, host)
			publish(t, dir, "vethnet", how, network.NewHandler(p))
			remoteLifecycle(t, c, host.Netlink, p)
		})
	}
}

func remoteLifecycle(t *testing.T, c *libnetwork.Controller, hostNL *netlink.Handle, p *vethPlugin) {
	n, err := c.NewNetwork("vethnet", "rnet", "", ipamConf("10.77.0.0/24", "10.77.0.1"))
	if err != nil {
		t.Fatalf("NewNetwork on the plugin: %v", err)
	}
	if n.Type() != "vethnet" || p.count("CreateNetwork "+n.ID()) != 1 {
		t.Fatalf("network type %q, plugin calls %v", n.Type(), p.callList())
	}
	p.mu.Lock()
	pool, gw := p.pools[n.ID()], p.gws[n.ID()]
	p.mu.Unlock()
	if pool != "10.77.0.0/24" || gw != "10.77.0.1" {
		t.Fatalf("plugin got pool %q gateway %q", pool, gw)
	}

	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep1"))
	pe := p.ep(ep.ID())
	if pe == nil || !p.hostHas(pe.host) || !p.hostHas(pe.peer) {
		t.Fatalf("plugin did not make its veth: %+v", pe)
	}
	if mac := ep.Info().Iface().MacAddress(); mac.String() != p.mac {
		t.Fatalf("endpoint MAC %v, want the plugin's %s", mac, p.mac)
	}
	if a := ep.Info().Iface().Address(); a == nil || a.String() != "10.77.0.2/24" {
		t.Fatalf("endpoint address %v", a)
	}

	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("c1"))
	t.Cleanup(func() { _ = sb.Delete() })
	if err := ep.Join(sb); err != nil {
		t.Fatalf("Join: %v", err)
	}
	_, sbNL := sandboxNS(t, sb)
	checkJoined(t, sbNL, p)
	if p.hostHas(pe.peer) {
		t.Fatalf("container end %s still in the host namespace", pe.peer)
	}
	if !p.hostHas(pe.host) {
		t.Fatalf("host end %s gone", pe.host)
	}
	info := ep.Info()
	if info.Gateway().String() != "10.77.0.1" || len(info.StaticRoutes()) != 2 || info.Sandbox() != sb {
		t.Fatalf("endpoint info: gw %v routes %v sandbox %v", info.Gateway(), info.StaticRoutes(), info.Sandbox())
	}
	di, err := ep.DriverInfo()
	if err != nil {
		t.Fatalf("DriverInfo: %v", err)
	}
	if di["veth.host"] != pe.host || di["veth.peer"] != pe.peer {
		t.Fatalf("DriverInfo lacks the plugin's EndpointOperInfo: %v", di)
	}
	if mac, ok := di[netlabel.MacAddress].(net.HardwareAddr); !ok || mac.String() != p.mac {
		t.Fatalf("DriverInfo MAC %v", di[netlabel.MacAddress])
	}
	if p.count("ProgramExternalConnectivity "+ep.ID()) != 1 {
		t.Fatalf("gateway endpoint not programmed for external connectivity: %v", p.callList())
	}

	// Leave gives the link back to the host namespace under its own name,
	// before the plugin hears of it.
	if err := ep.Leave(sb); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if got := linkNames(t, sbNL); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after leave: %v", got)
	}
	if seen, called := p.linkSeen("Leave " + ep.ID()); !called || !seen {
		t.Fatalf("plugin's Leave: called %v, container end back in host %v", called, seen)
	}
	if p.count("RevokeExternalConnectivity "+ep.ID()) != 1 {
		t.Fatalf("external connectivity not revoked: %v", p.callList())
	}
	if l, err := hostNL.LinkByName(pe.peer); err != nil || l.Attrs().Flags&net.FlagUp != 0 {
		t.Fatalf("container end back in host: %v (up %v)", err, l != nil && l.Attrs().Flags&net.FlagUp != 0)
	}

	// The same link joins again under the same name.
	if err := ep.Join(sb); err != nil {
		t.Fatalf("second Join: %v", err)
	}
	checkJoined(t, sbNL, p)
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if err := ep.Delete(false); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if seen, called := p.linkSeen("DeleteEndpoint " + ep.ID()); !called || !seen {
		t.Fatalf("plugin's DeleteEndpoint: called %v, link in host %v", called, seen)
	}
	if p.hostHas(pe.host) || p.hostHas(pe.peer) {
		t.Fatal("plugin's veth survived DeleteEndpoint")
	}

	// Deleting a sandbox with a joined remote endpoint also hands the link
	// back: the plugin, not the dying namespace, owns it.
	ep2 := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep2"))
	pe2 := p.ep(ep2.ID())
	if err := ep2.Join(sb); err != nil {
		t.Fatal(err)
	}
	if got := linkNames(t, sbNL); strings.Join(got, ",") != "eth0,lo" {
		t.Fatalf("sandbox links: %v", got)
	}
	if err := sb.Delete(); err != nil {
		t.Fatalf("sandbox Delete: %v", err)
	}
	if seen, called := p.linkSeen("Leave " + ep2.ID()); !called || !seen {
		t.Fatalf("sandbox delete: plugin's Leave called %v, link back in host %v", called, seen)
	}
	if seen, called := p.linkSeen("DeleteEndpoint " + ep2.ID()); !called || !seen {
		t.Fatalf("sandbox delete: plugin's DeleteEndpoint called %v, link in host %v", called, seen)
	}
	if p.hostHas(pe2.peer) {
		t.Fatal("veth of ep2 survived")
	}

	if err := n.Delete(); err != nil {
		t.Fatalf("network Delete: %v", err)
	}
	if p.count("DeleteNetwork "+n.ID()) != 1 {
		t.Fatalf("plugin calls: %v", p.callList())
	}
	if got := linkNames(t, hostNL); strings.Join(got, ",") != "lo" {
		t.Fatalf("host links left: %v", got)
	}
	if _, err := c.NetworkByName("rnet"); !types.IsNotFound(err) {
		t.Fatalf("network still listed: %v", err)
	}
}

// checkJoined looks inside the sandbox for what the plugin's join asked for.
func checkJoined(t *testing.T, sbNL *netlink.Handle, p *vethPlugin) {
	t.Helper()
	if got := linkNames(t, sbNL); strings.Join(got, ",") != "eth0,lo" {
		t.Fatalf("sandbox links: %v", got)
	}
	l, err := sbNL.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if l.Attrs().HardwareAddr.String() != p.mac || l.Attrs().Flags&net.FlagUp == 0 {
		t.Fatalf("eth0: MAC %v up %v", l.Attrs().HardwareAddr, l.Attrs().Flags&net.FlagUp != 0)
	}
	addrs, err := sbNL.AddrList(l, netlink.FAMILY_V4)
	if err != nil || len(addrs) != 1 || addrs[0].IPNet.String() != "10.77.0.2/24" {
		t.Fatalf("eth0 addresses %v %v", addrs, err)
	}
	want := []string{"10.77.0.0/24 dev eth0", "10.98.0.0/24 dev eth0", "10.99.0.0/16 via 10.77.0.254 dev eth0", "default via 10.77.0.1 dev eth0"}
	if got := routeSet(t, sbNL); !slices.Equal(got, want) {
		t.Fatalf("sandbox routes\n got %v\nwant %v", got, want)
	}
}
