package dataplane

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/internal/testutil"
)

var families = []struct {
	name string
	v6   bool
}{{"IPv4", false}, {"IPv6", true}}

// Three hosts, one container each: every pair talks TCP and UDP over
// both families.
func TestThreeHostsTalk(t *testing.T) {
	l := newLab(t, 3, 1500, false)
	l.networks(0)
	cs := []*container{l.container(1, 1), l.container(2, 2), l.container(3, 3)}
	l.mesh(cs...)
	for _, a := range cs {
		for _, b := range cs {
			if a == b {
				continue
			}
			for _, f := range families {
				// Fatal: with the data plane broken every pair would wait
				// out its timeout.
				if err := tcp(a, b, f.v6); err != nil {
					t.Fatalf("%s TCP %s → %s: %v", f.name, a.name, b.name, err)
				}
				if err := udp(a, b, f.v6, 64, 10*time.Second, false); err != nil {
					t.Fatalf("%s UDP %s → %s: %v", f.name, a.name, b.name, err)
				}
			}
		}
	}
}

// Removing a peer stops traffic to it at once (its FDB entry is gone, so
// even a sender that still knows its MAC gets nowhere), and leaves the
// entries of the other peers, also those behind the same host.
func TestRemovePeerStopsOnlyItsTraffic(t *testing.T) {
	l := newLab(t, 3, 1500, false)
	l.networks(0)
	c1, c2, c2b, c3 := l.container(1, 1), l.container(2, 2), l.container(2, 12), l.container(3, 3)
	l.mesh(c1, c2, c2b, c3)
	for _, to := range []*container{c2, c2b, c3} {
		must(t, tcp(c1, to, false)) // c1 now holds c2's MAC in its neighbour cache
	}
	h1 := l.hosts[0].net
	must(t, h1.RemovePeer(c2.peer.ID))
	must(t, h1.RemovePeer(c2.peer.ID)) // again: already gone
	for _, f := range families {
		if !blocked(c1, c2, f.v6) {
			t.Errorf("%s: c1 still reaches c2 after its peer was removed", f.name)
		}
		for _, to := range []*container{c2b, c3} {
			if err := tcp(c1, to, f.v6); err != nil {
				t.Errorf("%s: c1 → %s after removing c2: %v", f.name, to.name, err)
			}
		}
	}
	want := []string{
		fmt.Sprintf("%s dst %s permanent=true", c2b.peer.MAC, c2b.peer.VTEP),
		fmt.Sprintf("%s dst %s permanent=true", c3.peer.MAC, c3.peer.VTEP),
	}
	slices.Sort(want)
	if got := fdbOf(t, h1); !slices.Equal(got, want) {
		t.Errorf("h1 fdb after removing c2:\n  %q\nwant\n  %q", got, want)
	}
	for _, e := range neighOf(t, h1) {
		if netip.MustParseAddr(e[:len(e)-len(" lladdr 02:42:0a:00:00:02")]) == c2.peer.IPv4 {
			t.Errorf("h1 still has c2's neighbour entry %s", e)
		}
	}
	// Programmed again, c2 is reachable again.
	must(t, h1.AddPeer(c2.peer))
	if err := tcp(c1, c2, false); err != nil {
		t.Errorf("c1 → c2 after adding the peer back: %v", err)
	}
}

// An endpoint that moved (its address, and the MAC derived from it,
// reused on h3 while h2's record still exists): the entries follow the
// newest claim, and removing either peer leaves the other's in place.
func TestSharedEntryInKernel(t *testing.T) {
	l := newLab(t, 3, 1500, false)
	l.networks(0)
	c1, c2 := l.container(1, 1), l.container(2, 2)
	l.mesh(c1, c2)
	h1 := l.hosts[0].net
	moved := c2.peer
	moved.ID, moved.VTEP = "ep-moved", l.hosts[2].vtep
	must(t, h1.AddPeer(moved))
	fdb := func(vtep netip.Addr) []string {
		return []string{fmt.Sprintf("%s dst %s permanent=true", c2.peer.MAC, vtep)}
	}
	if got := fdbOf(t, h1); !slices.Equal(got, fdb(moved.VTEP)) {
		t.Errorf("fdb with both claims: %q, want the newest (%s)", got, moved.VTEP)
	}
	must(t, h1.RemovePeer(moved.ID))
	if got := fdbOf(t, h1); !slices.Equal(got, fdb(c2.peer.VTEP)) {
		t.Errorf("fdb after removing the newer claim: %q, want %q", got, fdb(c2.peer.VTEP))
	}
	if err := tcp(c1, c2, false); err != nil {
		t.Errorf("c1 → c2 after the shared entry went back to h2: %v", err)
	}
	if err := tcp(c1, c2, true); err != nil {
		t.Errorf("IPv6 c1 → c2 after the shared entry went back to h2: %v", err)
	}
}

// Entries deleted or changed by hand stop traffic; Reconcile puts them
// back, says what it fixed, and traffic flows again.
func TestReconcileRepairsKernelDrift(t *testing.T) {
	l := newLab(t, 2, 1500, false)
	l.networks(0)
	c1, c2 := l.container(1, 1), l.container(2, 2)
	l.mesh(c1, c2)
	must(t, tcp(c1, c2, false))
	h1 := l.hosts[0].net
	desired := h1.Peers()
	cleanFDB, cleanNeigh := fdbOf(t, h1), neighOf(t, h1)

	fdb := h1.peer.neigh(Entry{Kind: FDB, MAC: c2.peer.MAC, IP: c2.peer.VTEP})
	must(t, h1.nl.NeighDel(fdb))
	wrong := h1.peer.neigh(Entry{Kind: Neighbour, MAC: mac(99), IP: c2.peer.IPv6})
	must(t, h1.nl.NeighSet(wrong))
	if !blocked(c1, c2, false) {
		t.Fatal("c1 still reaches c2 with its FDB entry deleted")
	}

	rep, err := h1.Reconcile(desired)
	must(t, err)
	want := []string{
		fmt.Sprintf("restored fdb %s dst %s", c2.peer.MAC, c2.peer.VTEP),
		fmt.Sprintf("changed neigh %s lladdr %s", c2.peer.IPv6, c2.peer.MAC),
	}
	if got := repairs(rep); !slices.Equal(got, want) || len(rep.Added)+len(rep.Removed) != 0 {
		t.Errorf("reconcile report %+v, want repairs %q only", rep, want)
	}
	if got := fdbOf(t, h1); !slices.Equal(got, cleanFDB) {
		t.Errorf("fdb after reconcile %q, want %q", got, cleanFDB)
	}
	if got := neighOf(t, h1); !slices.Equal(got, cleanNeigh) {
		t.Errorf("neighbours after reconcile %q, want %q", got, cleanNeigh)
	}
	for _, f := range families {
		if err := tcp(c1, c2, f.v6); err != nil {
			t.Errorf("%s c1 → c2 after reconcile: %v", f.name, err)
		}
	}
	rep, err = h1.Reconcile(desired)
	if err != nil || len(rep.Repairs) != 0 {
		t.Errorf("second reconcile: %+v, %v; want nothing to repair", rep, err)
	}
}

// Over an IPv6 underlay both overlay families work, with 70 bytes of
// overhead.
func TestIPv6Underlay(t *testing.T) {
	l := newLab(t, 2, 1500, true)
	l.networks(0)
	c1, c2 := l.container(1, 1), l.container(2, 2)
	l.mesh(c1, c2)
	for _, f := range families {
		if err := tcp(c1, c2, f.v6); err != nil {
			t.Errorf("%s TCP over an IPv6 underlay: %v", f.name, err)
		}
		if err := udp(c2, c1, f.v6, 64, 10*time.Second, false); err != nil {
			t.Errorf("%s UDP over an IPv6 underlay: %v", f.name, err)
		}
	}
	assertMTUs(t, l, []*container{c1, c2}, 1500-OverheadIPv6)
}

// Two networks on the same hosts share the host's UDP socket and stay
// apart: the same address on both reaches only its own network's
// container.
func TestNetworksStayApart(t *testing.T) {
	l := newLab(t, 2, 1500, false)
	l.networks(0)
	a1, a2 := l.container(1, 1), l.container(2, 2)
	l.mesh(a1, a2)
	nets := make([]*Network, 2)
	for i, h := range l.hosts {
		cfg := l.config(h, 0)
		cfg.VNI = l.vni + 1
		n, err := Create(cfg)
		must(t, err)
		t.Cleanup(func() { _ = n.Delete() })
		nets[i] = n
	}
	b1 := &container{name: "b1", ns: testutil.NewNamedNS(t, "b1"), host: &labHost{net: nets[0]}}
	b2 := &container{name: "b2", ns: testutil.NewNamedNS(t, "b2"), host: &labHost{net: nets[1]}}
	for _, c := range []*container{b1, b2} {
		p, err := c.host.net.Attach(EndpointConfig{ID: "ep" + c.name, NS: c.ns.NS, IfName: "eth0",
			// The same addresses as a1 and a2, other MACs.
			MAC:  net.HardwareAddr{2, 0, 0, 0, 0x0b, c.name[1] - '0'},
			IPv4: prefix(fmt.Sprintf("10.0.0.%c/24", c.name[1]))})
		must(t, err)
		c.peer = p
	}
	must(t, nets[0].AddPeer(b2.peer))
	must(t, nets[1].AddPeer(b1.peer))
	if err := tcp(a1, a2, false); err != nil {
		t.Errorf("network A: %v", err)
	}
	if err := tcp(b1, b2, false); err != nil {
		t.Errorf("network B: %v", err)
	}
	// a1 sends to 10.0.0.2 on A: b2 (the same address on B) must see nothing.
	if !blocked(a1, b2, false) {
		t.Error("a datagram from network A reached network B")
	}
}

// An endpoint with an IPv6 address only gets its MAC from that address
// and is reached over the overlay like any other.
func TestIPv6OnlyEndpoint(t *testing.T) {
	l := newLab(t, 2, 1500, false)
	l.networks(0)
	c1 := l.container(1, 1)
	c2 := &container{name: "c2", ns: testutil.NewNamedNS(t, "c2"), host: l.hosts[1]}
	p, err := c2.host.net.Attach(EndpointConfig{ID: "epc2", NS: c2.ns.NS, IfName: "eth0", IPv6: prefix("fd00:db8::2/64")})
	must(t, err)
	c2.peer = p
	if p.IPv4.IsValid() || p.MAC.String() != "02:42:00:00:00:02" {
		t.Errorf("IPv6-only peer %+v, want no IPv4 and MAC 02:42:00:00:00:02", p)
	}
	l.mesh(c1, c2)
	if err := tcp(c1, c2, true); err != nil {
		t.Error(err)
	}
}
