package firewall_test

import (
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/iptables"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// routedCase is the network the routed port tests publish on: IPv4
// routed, IPv6 nat.
var routedCase = networkCases[len(networkCases)-2].cfg

// routedPorts: in the routed family no host port (a given one is
// ignored), in the nat family a DNAT as ever. The same container port
// twice is one rule.
var routedPorts = []firewall.PortForward{
	{Proto: types.TCP, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 80, Routed: true},
	{Proto: types.UDP, HostPort: 5353, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 53, Routed: true},
	{Proto: types.SCTP, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 90, Routed: true},
	{Proto: types.TCP, HostIP: net.ParseIP("192.0.2.1"), ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 80, Routed: true},
	{Proto: types.TCP, HostPort: 8080, ContainerIP: net.ParseIP("fd00:1::2"), ContainerPort: 80},
}

// A routed family's published ports are accepts of the container
// address and port, owned by the endpoint and inserted at the top of
// filter DOCKER (above the network's drop): no map element. Unpublishing
// or pruning them as an unclaimed leftover leaves what was there before.
func TestRoutedPortsGolden(t *testing.T) {
	fw, fake := newFW(t, true)
	if err := fw.SetupNetwork(routedCase); err != nil {
		t.Fatal(err)
	}
	before := dump(t, fake, firewall.IPv4, firewall.IPv6)
	if err := fw.SetPortForwards("ep1", routedCase.Bridge, routedPorts); err != nil {
		t.Fatal(err)
	}
	got := dump(t, fake, firewall.IPv4, firewall.IPv6)
	golden(t, "ports-routed", got)
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
	owner := "--comment " + firewall.EndpointOwner("ep1") + " -j ACCEPT"
	if n := strings.Count(got, owner); n != 3 {
		t.Errorf("%d accepts of the endpoint, want 3 (tcp/80, udp/53, sctp/90):\n%s", n, got)
	}
	if es, _ := fake.maps.List(firewall.IPv4); len(es) != 0 {
		t.Errorf("IPv4 is routed, yet map elements: %v", es)
	}
	if es, _ := fake.maps.List(firewall.IPv6); len(es) != 1 || es[0].HostPort != 8080 {
		t.Errorf("IPv6 map elements: %v, want the one of 8080", es)
	}

	// A restart that does not set the endpoint up again: its accepts are
	// leftovers, adopted by Setup and pruned.
	fw2 := firewall.New(fake.Fake, fake.maps, true)
	if err := fw2.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw2.SetupNetwork(routedCase); err != nil {
		t.Fatal(err)
	}
	if err := fw2.PruneUnclaimed(); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("after pruning the unclaimed endpoint:\n%s\nwant:\n%s", got, before)
	}

	if err := fw2.SetPortForwards("ep1", routedCase.Bridge, routedPorts); err != nil {
		t.Fatal(err)
	}
	if err := fw2.RemovePortForwards("ep1"); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("after unpublishing:\n%s\nwant:\n%s", got, before)
	}
	// The bridge is a match of the accept: validated.
	if err := fw2.SetPortForwards("ep1", "br+", routedPorts[:1]); !types.IsBadRequest(err) {
		t.Errorf("routed forward on bridge br+: %v, want BadRequest", err)
	}
	// A nat forward still needs its host port.
	bad := routedPorts[4]
	bad.HostPort = 0
	if err := fw2.SetPortForwards("ep1", routedCase.Bridge, []firewall.PortForward{bad}); !types.IsBadRequest(err) {
		t.Errorf("nat forward without a host port: %v, want BadRequest", err)
	}
}

// The routed accepts, removed by another tool, are put back by the
// repair at the top of DOCKER, above the network's drop.
func TestRoutedPortsRepaired(t *testing.T) {
	fw, fake := newFW(t, true)
	if err := fw.SetupNetwork(routedCase); err != nil {
		t.Fatal(err)
	}
	if err := fw.SetPortForwards("ep1", routedCase.Bridge, routedPorts); err != nil {
		t.Fatal(err)
	}
	want := dump(t, fake, firewall.IPv4, firewall.IPv6)
	if err := fake.Restore(firewall.IPv4, "*filter\n-F DOCKER\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	rep, err := fw.Repair()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Empty() {
		t.Fatal("nothing repaired after DOCKER was flushed")
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != want {
		t.Errorf("after the repair:\n%s\nwant:\n%s", got, want)
	}
}

// The kernel lists the routed accepts exactly as the fake's golden file
// has them (canonical form), and they go with the endpoint.
func TestRealRoutedPortsMatchGolden(t *testing.T) {
	realPortsMatchGolden(t, routedCase, routedPorts, "ports-routed")
}

// realPortsMatchGolden publishes ports on the network cfg in a real
// namespace: the kernel's listing must be the golden file gold (the fake's
// canonical form), Check must find nothing missing, and unpublishing must
// give back the listing from before.
func realPortsMatchGolden(t *testing.T, cfg firewall.NetworkConfig, ports []firewall.PortForward, gold string) {
	t.Helper()
	host := testutil.NewHostNS(t)
	run := iptables.New(host.NS)
	maps := newRealMaps(t, host)
	fw := firewall.New(run, maps, true)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw.SetupNetwork(cfg); err != nil {
		t.Fatal(err)
	}
	before := realDump(t, run, maps, firewall.IPv4, firewall.IPv6)
	if err := fw.SetPortForwards("ep1", cfg.Bridge, ports); err != nil {
		t.Fatal(err)
	}
	golden(t, gold, realDump(t, run, maps, firewall.IPv4, firewall.IPv6))
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
	if err := fw.RemovePortForwards("ep1"); err != nil {
		t.Fatal(err)
	}
	if got := realDump(t, run, maps, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("after unpublishing:\n%s\nwant:\n%s", got, before)
	}
}
