package dataplane

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/types"
)

const perm = "state 0x80"

var localVTEP = netip.MustParseAddr("192.168.100.1")

func mac(last byte) net.HardwareAddr { return net.HardwareAddr{2, 0x42, 10, 0, 0, last} }

func peer(id string, last byte, vtep string) Peer {
	return Peer{ID: id, MAC: mac(last), IPv4: netip.AddrFrom4([4]byte{10, 0, 0, last}),
		IPv6: netip.MustParseAddr("fd00::" + string(rune('0'+last%10))), VTEP: netip.MustParseAddr(vtep)}
}

func newFakeSet() (*peerSet, *fakeTable) {
	f := newFakeTable(7)
	return newPeerSet(f, 7, localVTEP), f
}

func TestAddRemovePeerIdempotent(t *testing.T) {
	s, f := newFakeSet()
	p := peer("a", 2, "192.168.100.2")
	for range 2 {
		if _, err := s.add(p); err != nil {
			t.Fatal(err)
		}
	}
	if f.calls != 3 {
		t.Errorf("adding a peer twice made %d kernel changes, want 3 (fdb, v4, v6 once)", f.calls)
	}
	wantDump(t, f,
		"fdb 02:42:0a:00:00:02 dst 192.168.100.2 "+perm,
		"neigh 10.0.0.2 lladdr 02:42:0a:00:00:02 "+perm,
		"neigh fd00::2 lladdr 02:42:0a:00:00:02 "+perm)
	// Entries removed behind the set's back are "already gone".
	delete(f.neigh, p.IPv4)
	for range 2 {
		if err := s.remove("a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.remove("never-added"); err != nil {
		t.Fatal(err)
	}
	wantDump(t, f)
	if got := s.list(); len(got) != 0 {
		t.Errorf("peers left: %v", got)
	}
}

// Two peers claiming the same MAC and address (the address reused on
// another host before its old peer is gone): the newest claim is in the
// kernel, removing either leaves the other's, removing both deletes.
func TestSharedEntriesAreReferenceCounted(t *testing.T) {
	s, f := newFakeSet()
	old := peer("old", 2, "192.168.100.2")
	moved := peer("moved", 2, "192.168.100.3")
	moved.IPv6 = netip.Addr{}
	other := peer("other", 9, "192.168.100.3")
	other.IPv6 = old.IPv6 // same IPv6 address, another MAC
	for _, p := range []Peer{old, moved, other} {
		if _, err := s.add(p); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.c.refs(Entry{Kind: FDB, MAC: old.MAC}.key()); got != 2 {
		t.Errorf("fdb %s has %d claims, want 2", old.MAC, got)
	}
	wantDump(t, f,
		"fdb 02:42:0a:00:00:02 dst 192.168.100.3 "+perm,
		"fdb 02:42:0a:00:00:09 dst 192.168.100.3 "+perm,
		"neigh 10.0.0.2 lladdr 02:42:0a:00:00:02 "+perm,
		"neigh 10.0.0.9 lladdr 02:42:0a:00:00:09 "+perm,
		"neigh fd00::2 lladdr 02:42:0a:00:00:09 "+perm)

	// The newest claim goes: the older one is programmed again.
	if err := s.remove("moved"); err != nil {
		t.Fatal(err)
	}
	wantDump(t, f,
		"fdb 02:42:0a:00:00:02 dst 192.168.100.2 "+perm,
		"fdb 02:42:0a:00:00:09 dst 192.168.100.3 "+perm,
		"neigh 10.0.0.2 lladdr 02:42:0a:00:00:02 "+perm,
		"neigh 10.0.0.9 lladdr 02:42:0a:00:00:09 "+perm,
		"neigh fd00::2 lladdr 02:42:0a:00:00:09 "+perm)
	// An older claim goes: nothing of the newer one changes.
	calls := f.calls
	if err := s.remove("old"); err != nil {
		t.Fatal(err)
	}
	if f.calls-calls != 2 {
		t.Errorf("removing the old peer made %d changes, want 2 (its fdb and v4 neighbour)", f.calls-calls)
	}
	wantDump(t, f,
		"fdb 02:42:0a:00:00:09 dst 192.168.100.3 "+perm,
		"neigh 10.0.0.9 lladdr 02:42:0a:00:00:09 "+perm,
		"neigh fd00::2 lladdr 02:42:0a:00:00:09 "+perm)
	if err := s.remove("other"); err != nil {
		t.Fatal(err)
	}
	wantDump(t, f)
	if len(s.c.byKey) != 0 {
		t.Errorf("claims left: %v", s.c.byKey)
	}
}

// A peer added again with other fields replaces its own claims.
func TestAddPeerAgainReplacesIt(t *testing.T) {
	s, f := newFakeSet()
	p := peer("a", 2, "192.168.100.2")
	if _, err := s.add(p); err != nil {
		t.Fatal(err)
	}
	p.VTEP = netip.MustParseAddr("192.168.100.4")
	p.IPv6 = netip.Addr{}
	if _, err := s.add(p); err != nil {
		t.Fatal(err)
	}
	wantDump(t, f,
		"fdb 02:42:0a:00:00:02 dst 192.168.100.4 "+perm,
		"neigh 10.0.0.2 lladdr 02:42:0a:00:00:02 "+perm)
	if got := s.list(); len(got) != 1 || !got[0].equal(p) {
		t.Errorf("peers %v, want only %v", got, p)
	}
}

// A kernel change failing part way leaves the claims and the kernel as
// they were, shared entries included.
func TestPeerChangesUndoThemselves(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   func(s *peerSet) error
	}{
		{"add", func(s *peerSet) error { _, err := s.add(peer("new", 2, "192.168.100.5")); return err }},
		{"update", func(s *peerSet) error { _, err := s.add(peer("b", 2, "192.168.100.5")); return err }},
		{"remove", func(s *peerSet) error { return s.remove("b") }},
	} {
		for failAt := 1; ; failAt++ {
			s, f := newFakeSet()
			a := peer("a", 2, "192.168.100.2")
			b := peer("b", 2, "192.168.100.3") // shares every key with a
			b.IPv4 = netip.MustParseAddr("10.0.0.3")
			for _, p := range []Peer{a, b} {
				if _, err := s.add(p); err != nil {
					t.Fatal(err)
				}
			}
			before, peers := f.dump(), s.list()
			start := f.calls
			f.fail = func(call int, _ *netlink.Neigh, _ bool) error {
				if call-start == failAt {
					return unix.ENOBUFS
				}
				return nil
			}
			err := tc.op(s)
			if err == nil {
				if failAt == 1 {
					t.Fatalf("%s: no kernel change to fail", tc.name)
				}
				break // failAt is past the last change
			}
			if !errors.Is(err, unix.ENOBUFS) || !types.IsInternal(err) {
				t.Errorf("%s failing at change %d: %v, want an Internal error wrapping ENOBUFS", tc.name, failAt, err)
			}
			f.fail = nil
			if got := f.dump(); !slices.Equal(got, before) {
				t.Errorf("%s failing at change %d left the kernel\n  %q\nwant\n  %q", tc.name, failAt, got, before)
			}
			if got := s.list(); !slices.EqualFunc(got, peers, Peer.equal) {
				t.Errorf("%s failing at change %d left peers %v, want %v", tc.name, failAt, got, peers)
			}
		}
	}
}

func TestPeerValidation(t *testing.T) {
	s, _ := newFakeSet()
	good := peer("a", 2, "192.168.100.2")
	for name, mut := range map[string]func(p *Peer){
		"no ID":         func(p *Peer) { p.ID = "" },
		"short MAC":     func(p *Peer) { p.MAC = p.MAC[:5] },
		"multicast MAC": func(p *Peer) { p.MAC = net.HardwareAddr{1, 0, 0x5e, 0, 0, 1} },
		"zero MAC":      func(p *Peer) { p.MAC = make(net.HardwareAddr, 6) },
		"no address":    func(p *Peer) { p.IPv4, p.IPv6 = netip.Addr{}, netip.Addr{} },
		"v6 as v4":      func(p *Peer) { p.IPv4 = p.IPv6 },
		"v4 as v6":      func(p *Peer) { p.IPv6 = p.IPv4 },
		"no VTEP":       func(p *Peer) { p.VTEP = netip.Addr{} },
		"VTEP family":   func(p *Peer) { p.VTEP = netip.MustParseAddr("fd00:100::2") },
		"local VTEP":    func(p *Peer) { p.VTEP = localVTEP },
	} {
		p := good
		mut(&p)
		_, err := s.add(p)
		var inv *InvalidError
		if !errors.As(err, &inv) || !types.IsBadRequest(err) {
			t.Errorf("%s: %v, want an InvalidError (BadRequest)", name, err)
		}
	}
	if got := s.list(); len(got) != 0 {
		t.Errorf("invalid peers were recorded: %v", got)
	}
}
