package dataplane

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func repairs(r Report) []string {
	var out []string
	for _, x := range r.Repairs {
		out = append(out, x.String())
	}
	return out
}

// Reconcile repairs every kind of drift, reports each repair once, and
// says nothing of entries that match.
func TestReconcileRepairsDrift(t *testing.T) {
	s, f := newFakeSet()
	a, b, c := peer("a", 2, "192.168.100.2"), peer("b", 3, "192.168.100.2"), peer("c", 4, "192.168.100.3")
	for _, p := range []Peer{a, b, c} {
		if _, err := s.add(p); err != nil {
			t.Fatal(err)
		}
	}
	clean := f.dump()
	rep, err := s.reconcile([]Peer{a, b, c})
	if err != nil || len(rep.Repairs)+len(rep.Added)+len(rep.Removed) != 0 {
		t.Fatalf("reconcile of a clean table: %+v, %v; want nothing done", rep, err)
	}

	// By hand: a's FDB entry and b's IPv6 neighbour deleted, c's FDB
	// pointed at another host, b's IPv4 neighbour given another MAC, a's
	// IPv4 neighbour made reachable instead of permanent, a remote and an
	// all-zero flood entry appended, a stray neighbour added.
	delete(f.fdb, a.MAC.String())
	delete(f.neigh, b.IPv6)
	f.fdb[c.MAC.String()] = []fakeRemote{{dst: netip.MustParseAddr("192.168.100.9"), state: netlink.NUD_PERMANENT}}
	f.neigh[b.IPv4] = fakeNeigh{mac: mac(99), state: netlink.NUD_PERMANENT}
	f.neigh[a.IPv4] = fakeNeigh{mac: a.MAC, state: netlink.NUD_REACHABLE}
	f.fdb[b.MAC.String()] = append(f.fdb[b.MAC.String()], fakeRemote{dst: netip.MustParseAddr("192.168.100.8"), state: netlink.NUD_PERMANENT})
	f.fdb["00:00:00:00:00:00"] = []fakeRemote{{dst: netip.MustParseAddr("192.168.100.2"), state: netlink.NUD_PERMANENT}}
	f.neigh[netip.MustParseAddr("10.0.0.77")] = fakeNeigh{mac: mac(77), state: netlink.NUD_PERMANENT}
	// Entries the kernel made itself are left alone.
	f.neigh[netip.MustParseAddr("fe80::1")] = fakeNeigh{mac: mac(55), state: netlink.NUD_STALE}

	rep, err = s.reconcile([]Peer{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"deleted fdb 00:00:00:00:00:00 dst 192.168.100.2",
		"deleted fdb 02:42:0a:00:00:03 dst 192.168.100.8",
		"deleted neigh 10.0.0.77 lladdr 02:42:0a:00:00:4d",
		"restored fdb 02:42:0a:00:00:02 dst 192.168.100.2",
		"changed fdb 02:42:0a:00:00:04 dst 192.168.100.3",
		"changed neigh 10.0.0.2 lladdr 02:42:0a:00:00:02",
		"changed neigh 10.0.0.3 lladdr 02:42:0a:00:00:03",
		"restored neigh fd00::3 lladdr 02:42:0a:00:00:03",
	}
	if got := repairs(rep); !slices.Equal(got, want) {
		t.Errorf("repairs:\n  %q\nwant\n  %q", got, want)
	}
	delete(f.neigh, netip.MustParseAddr("fe80::1"))
	wantDump(t, f, clean...)
}

// With several remotes of a MAC, the desired one stays wherever it is;
// with none of them desired, the first is replaced and the rest deleted.
func TestReconcileKeepsTheDesiredRemote(t *testing.T) {
	s, f := newFakeSet()
	a, b := peer("a", 2, "192.168.100.2"), peer("b", 3, "192.168.100.2")
	for _, p := range []Peer{a, b} {
		if _, err := s.add(p); err != nil {
			t.Fatal(err)
		}
	}
	clean := f.dump()
	f.fdb[a.MAC.String()] = []fakeRemote{
		{dst: netip.MustParseAddr("192.168.100.8"), state: netlink.NUD_PERMANENT},
		{dst: a.VTEP, state: netlink.NUD_PERMANENT},
	}
	f.fdb[b.MAC.String()] = []fakeRemote{
		{dst: netip.MustParseAddr("192.168.100.6"), state: netlink.NUD_PERMANENT},
		{dst: netip.MustParseAddr("192.168.100.7"), state: netlink.NUD_PERMANENT},
	}
	rep, err := s.reconcile([]Peer{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := repairs(rep), []string{
		"deleted fdb 02:42:0a:00:00:02 dst 192.168.100.8",
		"deleted fdb 02:42:0a:00:00:03 dst 192.168.100.7",
		"changed fdb 02:42:0a:00:00:03 dst 192.168.100.2",
	}; !slices.Equal(got, want) {
		t.Errorf("repairs %q, want %q", got, want)
	}
	wantDump(t, f, clean...)
}

// The desired set replaces the recorded one: new peers are programmed,
// missing ones removed, and neither counts as a repair.
func TestReconcileReplacesThePeerSet(t *testing.T) {
	s, f := newFakeSet()
	a, b, c := peer("a", 2, "192.168.100.2"), peer("b", 3, "192.168.100.2"), peer("c", 4, "192.168.100.3")
	for _, p := range []Peer{a, b} {
		if _, err := s.add(p); err != nil {
			t.Fatal(err)
		}
	}
	b2 := b
	b2.VTEP = netip.MustParseAddr("192.168.100.3")
	rep, err := s.reconcile([]Peer{b2, c})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Added, []string{"b", "c"}) || !slices.Equal(rep.Removed, []string{"a"}) || len(rep.Repairs) != 0 {
		t.Errorf("report %+v, want b and c added, a removed, no repairs", rep)
	}
	ref, rf := newFakeSet()
	for _, p := range []Peer{b2, c} {
		if _, err := ref.add(p); err != nil {
			t.Fatal(err)
		}
	}
	wantDump(t, f, rf.dump()...)
	if _, err := s.reconcile([]Peer{c, c}); err == nil {
		t.Error("a desired set listing a peer twice was accepted")
	}
}

// A failing repair does not stop the others; the next reconcile retries.
func TestReconcileGoesOnAfterAFailure(t *testing.T) {
	s, f := newFakeSet()
	a, b := peer("a", 2, "192.168.100.2"), peer("b", 3, "192.168.100.3")
	for _, p := range []Peer{a, b} {
		if _, err := s.add(p); err != nil {
			t.Fatal(err)
		}
	}
	clean := f.dump()
	f.fdb, f.neigh = map[string][]fakeRemote{}, map[netip.Addr]fakeNeigh{}
	f.fail = func(_ int, n *netlink.Neigh, _ bool) error {
		if n.Family == unix.AF_BRIDGE && n.HardwareAddr[5] == 2 {
			return unix.ENOBUFS
		}
		return nil
	}
	rep, err := s.reconcile([]Peer{a, b})
	if err == nil || len(rep.Repairs) != 5 {
		t.Fatalf("reconcile with one failing entry: %d repairs, %v; want 5 and the error", len(rep.Repairs), err)
	}
	f.fail = nil
	rep, err = s.reconcile([]Peer{a, b})
	if err != nil || len(rep.Repairs) != 1 {
		t.Fatalf("second reconcile: %v, %v; want the one failed entry repaired", repairs(rep), err)
	}
	wantDump(t, f, clean...)
}
