package firewall_test

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

// Garbage collection on demand: rules and port map elements with our
// comment that appear after Setup, owned by no network or endpoint this
// process set up, are found by a later PruneUnclaimed and removed; the
// live network's rules and the live endpoint's elements stay.
func TestPruneFindsLeftoversAfterSetup(t *testing.T) {
	fw, fake := newFW(t, true)
	live := networkCases[5].cfg
	if err := fw.SetupNetwork(live); err != nil {
		t.Fatal(err)
	}
	fwd := []firewall.PortForward{{Proto: types.TCP, HostPort: 8080, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 80}}
	if err := fw.SetPortForwards("ep1", live.Bridge, fwd); err != nil {
		t.Fatal(err)
	}
	// The first prune after Setup is a restart's: nothing to drop here.
	if err := fw.PruneUnclaimed(); err != nil {
		t.Fatal(err)
	}
	want := dump(t, fake, firewall.IPv4, firewall.IPv6)

	dead, deadEP := firewall.NetworkOwner("dead"), firewall.EndpointOwner("ep-dead")
	for fam, script := range map[firewall.Family]string{
		firewall.IPv4: "*nat\n-A POSTROUTING -s 172.30.0.0/16 ! -o br-dead -m comment --comment " + dead + " -j MASQUERADE\nCOMMIT\n" +
			"*filter\n-A FORWARD -i br-dead -o br-dead -m comment --comment " + dead + " -j ACCEPT\n" +
			"-A DOCKER -d 172.30.0.2/32 ! -i br-dead -o br-dead -p tcp -m tcp --dport 80 -m comment --comment " + deadEP + " -j ACCEPT\nCOMMIT\n",
		firewall.IPv6: "*filter\n-A FORWARD -i br-dead -o br-dead -m comment --comment " + dead + " -j ACCEPT\nCOMMIT\n",
	} {
		if err := fake.Restore(fam, script); err != nil {
			t.Fatal(err)
		}
	}
	stray := firewall.PortElem{Proto: types.TCP, HostPort: 9090, ContainerIP: netip.MustParseAddr("172.30.0.2"), ContainerPort: 80, Owner: deadEP}
	if err := fake.maps.Update(firewall.IPv4, []firewall.PortElem{stray}, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump(t, fake, firewall.IPv4, firewall.IPv6), "dead") {
		t.Fatal("planting leftovers failed: the check below would prove nothing")
	}

	if err := fw.PruneUnclaimed(); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != want {
		t.Errorf("after pruning leftovers planted after Setup:\n%s\nwant:\n%s", got, want)
	}
	if err := fw.Check(); err != nil {
		t.Errorf("record and kernel disagree after the prune: %v", err)
	}
	// Nothing left to find: a third prune changes nothing.
	n := fake.Restores()
	if err := fw.PruneUnclaimed(); err != nil {
		t.Fatal(err)
	}
	if fake.Restores() != n {
		t.Errorf("a prune with nothing to drop ran %d restores", fake.Restores()-n)
	}
}
