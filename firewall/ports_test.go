package firewall_test

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

var portCases = []firewall.PortForward{
	{Proto: types.TCP, HostPort: 8080, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 80},
	{Proto: types.UDP, HostPort: 5353, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 53},
	{Proto: types.TCP, HostIP: net.ParseIP("192.0.2.1"), HostPort: 8083, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 83},
	{Proto: types.SCTP, HostPort: 9000, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 90},
	{Proto: types.TCP, HostPort: 8080, ContainerIP: net.ParseIP("fd00:1::2"), ContainerPort: 80},
	{Proto: types.TCP, HostIP: net.ParseIP("2001:db8::1"), HostPort: 8083, ContainerIP: net.ParseIP("fd00:1::2"), ContainerPort: 83},
}

// Publishing is map elements (an SCTP port adds its checksum rule too):
// one maps transaction per family, no iptables restore for TCP and UDP.
// Unpublishing leaves exactly what was there before.
func TestPortsGolden(t *testing.T) {
	fw, fake := newFW(t, true)
	cfg := networkCases[5].cfg
	if err := fw.SetupNetwork(cfg); err != nil {
		t.Fatal(err)
	}
	before := dump(t, fake, firewall.IPv4, firewall.IPv6)
	r, u := fake.Restores(), fake.maps.Updates()
	if err := fw.SetPortForwards("ep1", cfg.Bridge, portCases[:3]); err != nil {
		t.Fatal(err)
	}
	if fake.Restores() != r || fake.maps.Updates() != u+1 {
		t.Errorf("publishing tcp/udp: %d restores and %d map updates, want 0 and 1", fake.Restores()-r, fake.maps.Updates()-u)
	}
	if err := fw.SetPortForwards("ep1", cfg.Bridge, portCases); err != nil {
		t.Fatal(err)
	}
	golden(t, "ports", dump(t, fake, firewall.IPv4, firewall.IPv6))
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
	// Changing the set: the dropped ports go, the kept ones stay untouched.
	if err := fw.SetPortForwards("ep1", cfg.Bridge, portCases[1:2]); err != nil {
		t.Fatal(err)
	}
	if es, _ := fake.maps.List(firewall.IPv4); len(es) != 1 || es[0].HostPort != 5353 {
		t.Errorf("after shrinking to one port: %v", es)
	}
	if err := fw.RemovePortForwards("ep1", "never-published"); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("after unpublishing:\n%s\nwant:\n%s", got, before)
	}
	// A host port published twice by one endpoint is refused.
	if err := fw.SetPortForwards("ep1", cfg.Bridge, []firewall.PortForward{portCases[0], portCases[0]}); !types.IsBadRequest(err) {
		t.Errorf("duplicate host port: %v, want BadRequest", err)
	}
}

// An endpoint's first publish that fails half way (the IPv6 maps refuse
// after the IPv4 ones took their elements) leaves nothing.
func TestPortsFailureRollsBack(t *testing.T) {
	fw, fake := newFW(t, true)
	before := dump(t, fake, firewall.IPv4, firewall.IPv6)
	boom := errors.New("injected")
	fake.maps.FailUpdate(func(fam firewall.Family, add, del []firewall.PortElem) error {
		if fam == firewall.IPv6 && len(add) > 0 {
			return boom
		}
		return nil
	})
	err := fw.SetPortForwards("ep1", "br-n1", portCases)
	if !errors.Is(err, boom) || !types.IsInternal(err) {
		t.Fatalf("SetPortForwards = %v, want the injected error classed Internal", err)
	}
	fake.maps.FailUpdate(nil)
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("failed publish left:\n%s", got)
	}
	if owners := fw.Owners(); len(owners) != 1 {
		t.Errorf("record still has owners %v", owners)
	}
}

// An element removed behind our back: Check names it, and unpublishing
// still succeeds.
func TestPortsExternalDelete(t *testing.T) {
	fw, fake := newFW(t, false)
	before := dump(t, fake, firewall.IPv4)
	if err := fw.SetPortForwards("ep1", "br-n1", portCases[:3]); err != nil {
		t.Fatal(err)
	}
	es, _ := fake.maps.List(firewall.IPv4)
	if err := fake.maps.Delete(es[0]); err != nil {
		t.Fatal(err)
	}
	if err := fw.Check(); err == nil || !strings.Contains(err.Error(), "port map element") {
		t.Fatalf("Check = %v, want the missing element named", err)
	}
	if err := fw.RemovePortForwards("ep1"); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4); got != before {
		t.Errorf("after unpublishing:\n%s", got)
	}
}
