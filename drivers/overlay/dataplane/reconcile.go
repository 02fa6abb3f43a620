package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Report says what a Reconcile changed.
type Report struct {
	Added   []string // IDs of peers that were not recorded, or recorded with other fields
	Removed []string // IDs of recorded peers not in the desired set
	// Repairs are the kernel entries that had drifted from the claims of
	// peers the set already held unchanged: deleted or changed by hand, or
	// added by hand (Removed repairs).
	Repairs []Repair
}

// Action says how a Repair fixed an entry.
type Action string

const (
	Restored Action = "restored" // the entry was missing and was set again
	Changed  Action = "changed"  // the entry pointed elsewhere or was not permanent, and was set again
	Deleted  Action = "deleted"  // no peer claims the entry, and it was deleted
)

// Repair is one drifted entry Reconcile fixed; Entry is the entry as
// programmed, or for Deleted as it was found.
type Repair struct {
	Action Action
	Entry  Entry
}

func (r Repair) String() string { return string(r.Action) + " " + r.Entry.String() }

// reconcile makes the recorded peers exactly desired, then diffs every
// FDB and neighbour entry of the device against the claims and fixes
// what differs. It goes through every entry even when one fails, and
// returns what it did with the joined errors; the claims are the desired
// set either way, so the next reconcile retries what failed.
func (s *peerSet) reconcile(desired []Peer) (Report, error) {
	var rep Report
	want := make(map[string]Peer, len(desired))
	norm := make([]Peer, 0, len(desired))
	for _, p := range desired {
		p.IPv4, p.VTEP = p.IPv4.Unmap(), p.VTEP.Unmap()
		p.MAC = slices.Clone(p.MAC)
		if err := s.validate("reconciling", p); err != nil {
			return rep, err
		}
		if _, dup := want[p.ID]; dup {
			return rep, invalid("reconciling", "peer "+p.ID, "listed twice")
		}
		want[p.ID] = p
		norm = append(norm, p)
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	touched := map[key]bool{}
	touch := func(p Peer) {
		for _, e := range p.entries() {
			touched[e.key()] = true
		}
	}
	for id, rec := range s.c.peers {
		if _, ok := want[id]; !ok {
			touch(rec.p)
			s.c.remove(id)
			rep.Removed = append(rep.Removed, id)
		}
	}
	for _, p := range norm {
		rec, ok := s.c.peers[p.ID]
		if ok && rec.p.equal(p) {
			continue
		}
		if ok {
			touch(rec.p)
			s.c.remove(p.ID)
		}
		touch(p)
		s.c.add(p, s.c.next())
		rep.Added = append(rep.Added, p.ID)
	}
	slices.Sort(rep.Added)
	slices.Sort(rep.Removed)

	fixes, err := s.diff()
	if err != nil {
		return rep, kernelErr("reconciling", "entries", err)
	}
	var errs []error
	for _, f := range fixes {
		var err error
		if f.Action == Deleted {
			err = s.del(f.Entry)
		} else {
			err = s.set(f.Entry)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !touched[f.Entry.key()] {
			rep.Repairs = append(rep.Repairs, f)
		}
	}
	if len(errs) > 0 {
		return rep, kernelErr("reconciling", "entries", errors.Join(errs...))
	}
	return rep, nil
}

// diff lists the kernel's entries on the device and returns the fixes
// that make them the claims' desired entries: deletions first, then
// sets, each sorted by key. A MAC may have several FDB remotes (one
// appended by hand): the desired one stays, or if it is missing the
// first listed is replaced by it (NLM_F_REPLACE rewrites the first
// remote), and every other remote is deleted.
func (s *peerSet) diff() ([]Repair, error) {
	have, err := s.kernelEntries()
	if err != nil {
		return nil, err
	}
	want := s.c.desired()
	var dels, sets []Repair
	state := map[key]Action{} // per wanted key: "" ok, Changed, or absent (Restored)
	for _, h := range have {
		k := h.e.key()
		w, ok := want[k]
		if !ok {
			dels = append(dels, Repair{Action: Deleted, Entry: h.e})
			continue
		}
		act, seen := state[k]
		matches := h.permanent && h.e.equal(w)
		switch {
		case h.e.Kind == FDB && seen && (act == "" || matches):
			// A second remote of a MAC already settled: delete it, unless
			// it is the desired one found after a wrong first one.
			if matches {
				state[k] = ""
				// The wrong first one was to be replaced; delete it instead.
				dels = append(dels, Repair{Action: Deleted, Entry: firstRemote(have, k)})
			} else {
				dels = append(dels, Repair{Action: Deleted, Entry: h.e})
			}
		case h.e.Kind == FDB && seen:
			dels = append(dels, Repair{Action: Deleted, Entry: h.e})
		case matches:
			state[k] = ""
		default:
			state[k] = Changed
		}
	}
	for k, w := range want {
		act, seen := state[k]
		switch {
		case !seen:
			sets = append(sets, Repair{Action: Restored, Entry: w})
		case act == Changed:
			sets = append(sets, Repair{Action: Changed, Entry: w})
		}
	}
	byKey := func(a, b Repair) int { return compareKeys(a.Entry.key(), b.Entry.key()) }
	slices.SortFunc(dels, byKey)
	slices.SortFunc(sets, byKey)
	return append(dels, sets...), nil
}

// firstRemote returns the first listed kernel entry with key k.
func firstRemote(have []kernelEntry, k key) Entry {
	for _, h := range have {
		if h.e.key() == k {
			return h.e
		}
	}
	return Entry{}
}

type kernelEntry struct {
	e         Entry
	permanent bool
}

// kernelEntries lists the device's own FDB entries (NTF_SELF; the
// bridge's entries for the port are NTF_MASTER and not ours) and its
// neighbour entries. Neighbour entries that are not permanent are the
// kernel's unless they are for an address a peer claims.
func (s *peerSet) kernelEntries() ([]kernelEntry, error) {
	var out []kernelEntry
	fdb, err := s.k.NeighList(s.dev, unix.AF_BRIDGE)
	if err != nil {
		return nil, fmt.Errorf("listing fdb entries: %w", err)
	}
	for _, n := range fdb {
		if n.Flags&netlink.NTF_SELF == 0 || n.Flags&netlink.NTF_MASTER != 0 || len(n.HardwareAddr) != 6 {
			continue
		}
		ip, _ := netip.AddrFromSlice(n.IP)
		out = append(out, kernelEntry{e: Entry{Kind: FDB, MAC: n.HardwareAddr, IP: ip.Unmap()},
			permanent: n.State&netlink.NUD_PERMANENT != 0})
	}
	want := s.c.desired()
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		ns, err := s.k.NeighList(s.dev, family)
		if err != nil {
			return nil, fmt.Errorf("listing neighbour entries: %w", err)
		}
		for _, n := range ns {
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			if family == netlink.FAMILY_V4 {
				ip = ip.Unmap()
			}
			e := Entry{Kind: Neighbour, MAC: net.HardwareAddr(n.HardwareAddr), IP: ip}
			perm := n.State&netlink.NUD_PERMANENT != 0
			if _, claimed := want[e.key()]; !perm && !claimed {
				continue
			}
			out = append(out, kernelEntry{e: e, permanent: perm})
		}
	}
	return out, nil
}
