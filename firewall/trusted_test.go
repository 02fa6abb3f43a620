package firewall_test

import (
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

// trustedCase is the network the trusted-interface port tests publish on:
// nat in both families.
var trustedCase = func() firewall.NetworkConfig {
	for _, tc := range networkCases {
		if tc.name == "ipv6" {
			return tc.cfg
		}
	}
	panic("no ipv6 network case")
}()

// trusted are the interfaces the ports are opened to.
var trusted = []string{"eth3", "vxlan.1"}

// trustedPorts: each published port is open to the trusted interfaces at
// the container's address and port, in both families; the same container
// port published twice is one pair of rules per interface.
var trustedPorts = []firewall.PortForward{
	{Proto: types.TCP, HostPort: 8080, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 80, Trusted: trusted},
	{Proto: types.TCP, HostIP: net.ParseIP("192.0.2.1"), HostPort: 8081, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 80, Trusted: trusted},
	{Proto: types.UDP, HostPort: 5353, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 53, Trusted: trusted},
	{Proto: types.TCP, HostPort: 8080, ContainerIP: net.ParseIP("fd00:1::2"), ContainerPort: 80, Trusted: trusted},
}

// A trusted interface reaches a published container port directly: per
// port and interface, an accept in raw PREROUTING and in filter DOCKER,
// owned by the endpoint and inserted above the network's drops. They go
// with the endpoint's ports, are pruned as unclaimed leftovers and put
// back by the repair.
func TestTrustedPortsGolden(t *testing.T) {
	fw, fake := newFW(t, true)
	if err := fw.SetupNetwork(trustedCase); err != nil {
		t.Fatal(err)
	}
	before := dump(t, fake, firewall.IPv4, firewall.IPv6)
	if strings.Contains(before, "-i eth3") {
		t.Fatalf("the network itself opens eth3:\n%s", before)
	}
	if err := fw.SetPortForwards("ep1", trustedCase.Bridge, trustedPorts); err != nil {
		t.Fatal(err)
	}
	got := dump(t, fake, firewall.IPv4, firewall.IPv6)
	golden(t, "ports-trusted", got)
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
	owner := "--comment " + firewall.EndpointOwner("ep1") + " -j ACCEPT"
	// tcp/80 and udp/53 in IPv4, tcp/80 in IPv6; two interfaces, two tables.
	if n := strings.Count(got, owner); n != 12 {
		t.Errorf("%d accepts of the endpoint, want 12:\n%s", n, got)
	}

	// The repair puts them back in order, above the drops.
	if err := fake.Restore(firewall.IPv4, "*raw\n-F PREROUTING\nCOMMIT\n*filter\n-F DOCKER\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if rep, err := fw.Repair(); err != nil || rep.Empty() {
		t.Fatalf("repair after flushing raw PREROUTING and DOCKER: %v, %v", rep, err)
	}
	if after := dump(t, fake, firewall.IPv4, firewall.IPv6); after != got {
		t.Errorf("after the repair:\n%s\nwant:\n%s", after, got)
	}

	// A restart that does not publish the endpoint again: its accepts are
	// leftovers, adopted by Setup and pruned.
	fw2 := firewall.New(fake.Fake, fake.maps, true)
	if err := fw2.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw2.SetupNetwork(trustedCase); err != nil {
		t.Fatal(err)
	}
	if err := fw2.PruneUnclaimed(); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("after pruning the unclaimed endpoint:\n%s\nwant:\n%s", got, before)
	}
	if err := fw2.SetPortForwards("ep1", trustedCase.Bridge, trustedPorts); err != nil {
		t.Fatal(err)
	}
	if err := fw2.RemovePortForwards("ep1"); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("after unpublishing:\n%s\nwant:\n%s", got, before)
	}

	// Interface and bridge names are matches of the accepts: validated;
	// a routed forward takes no trusted interfaces.
	for _, ifc := range []string{"eth+", "-j", "--goto", "-", ".x", "a b"} {
		p := trustedPorts[0]
		p.Trusted = []string{ifc}
		if err := fw2.SetPortForwards("ep1", trustedCase.Bridge, []firewall.PortForward{p}); !types.IsBadRequest(err) {
			t.Errorf("trusted interface %q: %v, want BadRequest", ifc, err)
		}
	}
	if err := fw2.SetPortForwards("ep1", "br+", trustedPorts[:1]); !types.IsBadRequest(err) {
		t.Errorf("trusted forward on bridge br+: %v, want BadRequest", err)
	}
	routed := trustedPorts[0]
	routed.Routed = true
	if err := fw2.SetPortForwards("ep1", trustedCase.Bridge, []firewall.PortForward{routed}); !types.IsBadRequest(err) {
		t.Errorf("routed forward with trusted interfaces: %v, want BadRequest", err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("after the refusals:\n%s\nwant:\n%s", got, before)
	}
}

// The kernel lists the trusted accepts exactly as the fake's golden file
// has them (canonical form), and they go with the endpoint.
func TestRealTrustedPortsMatchGolden(t *testing.T) {
	realPortsMatchGolden(t, trustedCase, trustedPorts, "ports-trusted")
}
