package dataplane

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Peer is an endpoint on another host, as the overlay driver learns it
// from the store: its MAC, its addresses and its host's VTEP address.
type Peer struct {
	ID   string // endpoint ID: the owner of the entries the peer claims
	MAC  net.HardwareAddr
	IPv4 netip.Addr // zero if the endpoint has none
	IPv6 netip.Addr // zero if the endpoint has none
	VTEP netip.Addr // underlay address of the peer's host
}

func (p Peer) equal(o Peer) bool {
	return p.ID == o.ID && bytes.Equal(p.MAC, o.MAC) && p.IPv4 == o.IPv4 && p.IPv6 == o.IPv6 && p.VTEP == o.VTEP
}

// Kind says which table of the VXLAN device an Entry lives in.
type Kind uint8

const (
	// FDB entries map a MAC to the VTEP frames for it are sent to.
	FDB Kind = iota + 1
	// Neighbour entries map an address to its MAC; the device answers
	// ARP and neighbour solicitations from them.
	Neighbour
)

func (k Kind) String() string {
	switch k {
	case FDB:
		return "fdb"
	case Neighbour:
		return "neigh"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// Entry is one permanent entry on the VXLAN device. For FDB the MAC is
// the key and IP the VTEP; for Neighbour IP is the key and MAC its value.
type Entry struct {
	Kind Kind
	MAC  net.HardwareAddr
	IP   netip.Addr
}

func (e Entry) String() string {
	if e.Kind == FDB {
		return fmt.Sprintf("fdb %s dst %s", e.MAC, e.IP)
	}
	return fmt.Sprintf("neigh %s lladdr %s", e.IP, e.MAC)
}

func (e Entry) equal(o Entry) bool {
	return e.Kind == o.Kind && bytes.Equal(e.MAC, o.MAC) && e.IP == o.IP
}

// key identifies an entry in the kernel: the MAC of an FDB entry, the
// address of a neighbour entry.
type key struct {
	kind Kind
	mac  [6]byte
	ip   netip.Addr
}

func (e Entry) key() key {
	k := key{kind: e.Kind}
	if e.Kind == FDB {
		copy(k.mac[:], e.MAC)
	} else {
		k.ip = e.IP
	}
	return k
}

// entries are the kernel entries peer p needs: one FDB entry and one
// neighbour entry per address.
func (p Peer) entries() []Entry {
	es := []Entry{{Kind: FDB, MAC: p.MAC, IP: p.VTEP}}
	for _, ip := range []netip.Addr{p.IPv4, p.IPv6} {
		if ip.IsValid() {
			es = append(es, Entry{Kind: Neighbour, MAC: p.MAC, IP: ip})
		}
	}
	return es
}

type claim struct {
	owner string
	seq   uint64
	e     Entry
}

type peerRec struct {
	p   Peer
	seq uint64
}

// claims is the pure bookkeeping of which peers claim which kernel
// entries. Invariants: every key in byKey has at least one claim, its
// claims are sorted by seq and the last one is the entry the kernel
// should hold (the newest claim wins); a peer's claims carry its seq.
type claims struct {
	peers map[string]peerRec
	byKey map[key][]claim
	seq   uint64
}

func newClaims() claims {
	return claims{peers: map[string]peerRec{}, byKey: map[key][]claim{}}
}

// effective returns the entry the kernel should hold for k.
func (c *claims) effective(k key) (Entry, bool) {
	cl := c.byKey[k]
	if len(cl) == 0 {
		return Entry{}, false
	}
	return cl[len(cl)-1].e, true
}

// next returns a fresh sequence number, newer than every claim.
func (c *claims) next() uint64 {
	c.seq++
	return c.seq
}

// add records p's claims at seq. p.ID must not be recorded.
func (c *claims) add(p Peer, seq uint64) {
	c.peers[p.ID] = peerRec{p: p, seq: seq}
	for _, e := range p.entries() {
		k := e.key()
		cl := c.byKey[k]
		i, _ := slices.BinarySearchFunc(cl, seq, func(x claim, s uint64) int {
			switch {
			case x.seq < s:
				return -1
			case x.seq > s:
				return 1
			}
			return 0
		})
		c.byKey[k] = slices.Insert(cl, i, claim{owner: p.ID, seq: seq, e: e})
	}
}

// remove drops the claims of peer id and returns its record; ok is false
// when id is not recorded.
func (c *claims) remove(id string) (peerRec, bool) {
	rec, ok := c.peers[id]
	if !ok {
		return peerRec{}, false
	}
	delete(c.peers, id)
	for _, e := range rec.p.entries() {
		k := e.key()
		cl := slices.DeleteFunc(c.byKey[k], func(x claim) bool { return x.owner == id })
		if len(cl) == 0 {
			delete(c.byKey, k)
		} else {
			c.byKey[k] = cl
		}
	}
	return rec, true
}

// refs returns how many peers claim the entry with key k.
func (c *claims) refs(k key) int { return len(c.byKey[k]) }

// desired returns every entry the kernel should hold.
func (c *claims) desired() map[key]Entry {
	m := make(map[key]Entry, len(c.byKey))
	for k, cl := range c.byKey {
		m[k] = cl[len(cl)-1].e
	}
	return m
}

// change is what one key of the kernel must go from and to after the
// claims changed: had/was before, has/now after.
type change struct {
	k        key
	was, now Entry
	had, has bool
}

// snapshot records the effective entries of keys before a mutation;
// changes compares them with the state after it.
type snapshot map[key]change

func (c *claims) snapshot(peers ...Peer) snapshot {
	s := snapshot{}
	for _, p := range peers {
		for _, e := range p.entries() {
			k := e.key()
			if _, seen := s[k]; !seen {
				was, had := c.effective(k)
				s[k] = change{k: k, was: was, had: had}
			}
		}
	}
	return s
}

// changes lists the keys whose effective entry differs from the
// snapshot, in a stable order (FDB before neighbours, so a neighbour
// entry never points at a MAC whose FDB entry is not there yet).
func (c *claims) changes(s snapshot) []change {
	var out []change
	for k, ch := range s {
		ch.now, ch.has = c.effective(k)
		if ch.had == ch.has && (!ch.has || ch.was.equal(ch.now)) {
			continue
		}
		out = append(out, ch)
	}
	slices.SortFunc(out, func(a, b change) int { return compareKeys(a.k, b.k) })
	return out
}

func compareKeys(a, b key) int {
	if a.kind != b.kind {
		return int(a.kind) - int(b.kind)
	}
	if c := bytes.Compare(a.mac[:], b.mac[:]); c != 0 {
		return c
	}
	return a.ip.Compare(b.ip)
}
