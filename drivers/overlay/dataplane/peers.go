package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// neighTable is the part of netlink the peer entries need, in the
// network namespace; *netlink.Handle implements it, and a fake in the
// tests keeps tables in memory.
type neighTable interface {
	NeighSet(*netlink.Neigh) error
	NeighDel(*netlink.Neigh) error
	NeighList(linkIndex, family int) ([]netlink.Neigh, error)
}

// peerSet programs the entries of remote peers on one VXLAN device.
// Its claims always say what the kernel should hold; an operation whose
// kernel step fails restores the claims and the entries it touched.
type peerSet struct {
	mu    sync.Mutex
	k     neighTable
	dev   int        // VXLAN device index
	local netip.Addr // this host's VTEP: no peer may live there
	c     claims
}

func newPeerSet(k neighTable, dev int, local netip.Addr) *peerSet {
	return &peerSet{k: k, dev: dev, local: local, c: newClaims()}
}

func (s *peerSet) validate(op string, p Peer) error {
	obj := "peer " + p.ID
	switch {
	case p.ID == "":
		return invalid(op, "peer", "no endpoint ID")
	case len(p.MAC) != 6 || p.MAC[0]&1 != 0 || isZeroMAC(p.MAC):
		return invalid(op, obj, "MAC %q is not a unicast Ethernet address", p.MAC)
	case !p.IPv4.IsValid() && !p.IPv6.IsValid():
		return invalid(op, obj, "no address")
	case p.IPv4.IsValid() && !p.IPv4.Is4():
		return invalid(op, obj, "IPv4 address %s is not IPv4", p.IPv4)
	case p.IPv6.IsValid() && (!p.IPv6.Is6() || p.IPv6.Is4In6()):
		return invalid(op, obj, "IPv6 address %s is not IPv6", p.IPv6)
	case !p.VTEP.IsValid() || p.VTEP.IsUnspecified():
		return invalid(op, obj, "no VTEP address")
	case p.VTEP.Is4() != s.local.Is4():
		return invalid(op, obj, "VTEP %s is not of the family of this host's VTEP %s", p.VTEP, s.local)
	case p.VTEP == s.local:
		return invalid(op, obj, "VTEP %s is this host: local endpoints are attached, not peered", p.VTEP)
	}
	return nil
}

func isZeroMAC(mac []byte) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}

// add claims p's entries and programs those whose effective entry
// changed. Adding a peer again with the same fields does nothing (and
// reports no change); with other fields it replaces the old claims.
func (s *peerSet) add(p Peer) (changed bool, _ error) {
	p.IPv4, p.VTEP = p.IPv4.Unmap(), p.VTEP.Unmap()
	p.MAC = slices.Clone(p.MAC) // the claims keep it; the caller's slice may change
	if err := s.validate("adding", p); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, had := s.c.peers[p.ID]
	if had && old.p.equal(p) {
		return false, nil
	}
	touched := []Peer{p}
	if had {
		touched = append(touched, old.p)
	}
	snap := s.c.snapshot(touched...)
	if had {
		s.c.remove(p.ID)
	}
	s.c.add(p, s.c.next())
	chs := s.c.changes(snap)
	if err := s.sync(chs); err != nil {
		// Put the claims back as they were (old keeps its own seq, so a
		// shared key goes back to the same winner), then the kernel.
		s.c.remove(p.ID)
		if had {
			s.c.add(old.p, old.seq)
		}
		return false, errors.Join(kernelErr("adding", "peer "+p.ID, err), s.undo(chs))
	}
	return true, nil
}

// undo puts the kernel back in line with the claims for every key chs
// touched, after a sync of chs failed part way: a key still claimed gets
// its entry set again, a key no longer claimed loses what the failed
// sync may have written. It tries every key.
func (s *peerSet) undo(chs []change) error {
	var errs []error
	for _, ch := range chs {
		if cur, ok := s.c.effective(ch.k); ok {
			errs = append(errs, s.set(cur))
		} else if ch.has {
			errs = append(errs, s.del(ch.now))
		}
	}
	return errors.Join(errs...)
}

// remove drops peer id's claims; entries no other peer claims are
// deleted, entries another peer still claims are set to its value. An
// unknown id is success.
func (s *peerSet) remove(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.c.peers[id]
	if !ok {
		return nil
	}
	snap := s.c.snapshot(rec.p)
	s.c.remove(id)
	chs := s.c.changes(snap)
	if err := s.sync(chs); err != nil {
		s.c.add(rec.p, rec.seq)
		return errors.Join(kernelErr("removing", "peer "+id, err), s.undo(chs))
	}
	return nil
}

// list returns the recorded peers sorted by ID.
func (s *peerSet) list() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Peer, 0, len(s.c.peers))
	for _, r := range s.c.peers {
		out = append(out, r.p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// sync makes the kernel hold the new side of every change: set what is
// claimed, delete what no longer is. It stops at the first failure.
func (s *peerSet) sync(chs []change) error {
	for _, ch := range chs {
		var err error
		switch {
		case ch.has:
			err = s.set(ch.now)
		case ch.had:
			err = s.del(ch.was)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// set replaces the kernel's entry for e's key by e (NLM_F_REPLACE: a
// hand-made or older entry for the key is overwritten, never EEXIST).
func (s *peerSet) set(e Entry) error {
	if err := s.k.NeighSet(s.neigh(e)); err != nil {
		return fmt.Errorf("setting %s: %w", e, err)
	}
	return nil
}

// del deletes the kernel's entry e; one already gone is success. An FDB
// entry is deleted by its destination, which removes the entry with its
// last remote (netlink always sends NDA_DST, and the VXLAN driver
// refuses an empty one).
func (s *peerSet) del(e Entry) error {
	if !e.IP.IsValid() {
		return nil
	}
	if err := s.k.NeighDel(s.neigh(e)); err != nil && !gone(err) {
		return fmt.Errorf("deleting %s: %w", e, err)
	}
	return nil
}

func (s *peerSet) neigh(e Entry) *netlink.Neigh {
	if e.Kind == FDB {
		return &netlink.Neigh{LinkIndex: s.dev, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
			State: netlink.NUD_PERMANENT, HardwareAddr: e.MAC, IP: e.IP.AsSlice()}
	}
	family := netlink.FAMILY_V4
	if e.IP.Is6() {
		family = netlink.FAMILY_V6
	}
	return &netlink.Neigh{LinkIndex: s.dev, Family: family, State: netlink.NUD_PERMANENT,
		HardwareAddr: e.MAC, IP: e.IP.AsSlice()}
}
