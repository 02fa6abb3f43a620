package ipam

import (
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/ipamapi"
)

// Allocator is the built-in IPAM driver. It keeps all state in memory (the
// controller restores it by replaying requests, see Capabilities) and is
// safe for concurrent use: one mutex guards everything, and parsing and
// error formatting happen outside it where possible.
type Allocator struct {
	mu     sync.Mutex
	spaces map[string]*space  // LocalDefault and GlobalDefault
	ids    map[string]poolRef // every pool ID currently held
}

// poolRef is what a held pool ID names: a master pool, and the sub-pool
// when the ID is a sub-pool's (zero otherwise).
type poolRef struct {
	space *space
	m     *master
	sub   netip.Prefix
}

// space is one address space: its predefined candidates, the rotating
// cursors into them, and the master pools allocated in it.
type space struct {
	name      string
	splitters [2][]splitter // per family
	cursor    [2]pos        // per family: where the next driver-chosen search starts
	masters   map[netip.Prefix]*master
}

// master is an allocated pool with its address bitmap. It lives while its
// own pool ID or any of its sub-pool IDs is held.
type master struct {
	prefix   netip.Prefix
	whole    bool                      // the pool's own ID is held
	subs     map[netip.Prefix]struct{} // sub-pool IDs held
	bits     *bitmap
	reserved []uint64 // ordinals never handed out (network, IPv4 broadcast)
	next     uint64   // serial allocation resumes here
}

var _ ipamapi.Ipam = (*Allocator)(nil)

// New returns the built-in allocator. localPools replaces the predefined
// local pools (nil or empty keeps DefaultLocalPools); entries may be IPv4 or
// IPv6, and IPv6 entries are what a V6 request without a pool draws from.
// The global space always uses DefaultGlobalPools.
func New(localPools []*config.NetworkToSplit) (*Allocator, error) {
	if len(localPools) == 0 {
		localPools = DefaultLocalPools()
	}
	a := &Allocator{spaces: map[string]*space{}, ids: map[string]poolRef{}}
	for _, s := range []struct {
		name  string
		pools []*config.NetworkToSplit
	}{
		{ipamapi.LocalDefaultAddressSpace, localPools},
		{ipamapi.GlobalDefaultAddressSpace, DefaultGlobalPools()},
	} {
		sp := &space{name: s.name, masters: map[netip.Prefix]*master{}}
		for _, n := range s.pools {
			spl, err := parseSplitter(n)
			if err != nil {
				return nil, err
			}
			f := family(spl.base.Addr().Is6())
			sp.splitters[f] = append(sp.splitters[f], spl)
		}
		for f := range sp.splitters {
			if len(sp.splitters[f]) > 0 {
				sp.cursor[f] = pos{addr: u128From(sp.splitters[f][0].base.Addr())}
			}
		}
		a.spaces[s.name] = sp
	}
	return a, nil
}

// GetDefaultAddressSpaces returns LocalDefault and GlobalDefault.
func (a *Allocator) GetDefaultAddressSpaces() (string, string, error) {
	return ipamapi.LocalDefaultAddressSpace, ipamapi.GlobalDefaultAddressSpace, nil
}

// Capabilities says the controller must replay pool and address requests
// after a restart (that is how in-memory state comes back); no MAC needed.
func (a *Allocator) Capabilities() ipamapi.Capability {
	return ipamapi.Capability{RequiresRequestReplay: true}
}

func newMaster(p netip.Prefix) *master {
	m := &master{prefix: p, subs: map[netip.Prefix]struct{}{}, bits: newBitmap(poolSize(p))}
	// The network address is never handed out, nor the IPv4 broadcast.
	// Point-to-point sizes (IPv4 /31-/32, IPv6 /127-/128) use every address.
	host := p.Addr().BitLen() - p.Bits()
	if host >= 2 {
		m.reserved = append(m.reserved, 0)
		if p.Addr().Is4() {
			m.reserved = append(m.reserved, m.bits.size-1)
		}
	}
	for _, o := range m.reserved {
		m.bits.set(o)
	}
	return m
}

func (m *master) isReserved(o uint64) bool {
	for _, r := range m.reserved {
		if r == o {
			return true
		}
	}
	return false
}

func poolID(as string, pool, sub netip.Prefix) string {
	if sub.IsValid() {
		return as + "/" + pool.String() + "/" + sub.String()
	}
	return as + "/" + pool.String()
}

// parsePoolID splits "<AS>/<pool>[/<subpool>]".
func parsePoolID(id string) (as string, pool, sub netip.Prefix, err error) {
	as, rest, ok := strings.Cut(id, "/")
	parts := strings.Split(rest, "/")
	if !ok || as == "" || (len(parts) != 2 && len(parts) != 4) {
		return "", pool, sub, fmt.Errorf("malformed pool id %q: %w", id, ipamapi.ErrInvalidPool)
	}
	if pool, err = netip.ParsePrefix(parts[0] + "/" + parts[1]); err != nil {
		return "", pool, sub, fmt.Errorf("malformed pool id %q: %w: %v", id, ipamapi.ErrInvalidPool, err)
	}
	if len(parts) == 4 {
		if sub, err = netip.ParsePrefix(parts[2] + "/" + parts[3]); err != nil {
			return "", pool, sub, fmt.Errorf("malformed pool id %q: %w: %v", id, ipamapi.ErrInvalidPool, err)
		}
	}
	return as, pool, sub, nil
}

func (a *Allocator) space(as string) (*space, error) {
	sp, ok := a.spaces[as]
	if !ok {
		return nil, fmt.Errorf("address space %q: %w", as, ipamapi.ErrInvalidAddressSpace)
	}
	return sp, nil
}

// overlapping returns an allocated master in sp overlapping p.
func (sp *space) overlapping(p netip.Prefix) (*master, bool) {
	for _, m := range sp.masters {
		if m.prefix.Overlaps(p) {
			return m, true
		}
	}
	return nil, false
}

// RequestPool allocates a pool. With no Pool the driver picks the first
// predefined pool of the family, after the one it handed out last, that
// overlaps no allocated pool of the space and no req.Exclude prefix. With a
// Pool, that pool is reserved (overlap with a pool of the same space is
// ErrPoolOverlap); with a SubPool too, the sub-pool is reserved and shares
// the master pool with other sub-pools of it.
func (a *Allocator) RequestPool(req ipamapi.PoolRequest) (ipamapi.AllocatedPool, error) {
	if req.Pool == "" {
		if req.SubPool != "" {
			return ipamapi.AllocatedPool{}, fmt.Errorf("request pool: sub-pool %q without a pool: %w", req.SubPool, ipamapi.ErrInvalidSubPool)
		}
		return a.requestDefault(req)
	}
	pool, err := netip.ParsePrefix(strings.TrimSpace(req.Pool))
	if err != nil {
		return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %q: %w: %v", req.Pool, ipamapi.ErrInvalidPool, err)
	}
	pool = pool.Masked()
	if pool.Addr().Is6() != req.V6 {
		return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %s: not an %s pool: %w", pool, familyName(req.V6), ipamapi.ErrInvalidPool)
	}
	var sub netip.Prefix
	if req.SubPool != "" {
		if sub, err = netip.ParsePrefix(strings.TrimSpace(req.SubPool)); err != nil {
			return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %s: sub-pool %q: %w: %v", pool, req.SubPool, ipamapi.ErrInvalidSubPool, err)
		}
		sub = sub.Masked()
		if sub.Addr().Is6() != pool.Addr().Is6() || sub.Bits() < pool.Bits() || !pool.Contains(sub.Addr()) {
			return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %s: sub-pool %s is not inside the pool: %w", pool, sub, ipamapi.ErrInvalidSubPool)
		}
		if _, ok := offsetOf(pool, sub.Addr()); !ok {
			return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %s: sub-pool %s starts beyond the first 2^64-1 addresses, the allocatable part of the pool: %w", pool, sub, ipamapi.ErrInvalidSubPool)
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	sp, err := a.space(req.AddressSpace)
	if err != nil {
		return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %s: %w", pool, err)
	}
	id := poolID(sp.name, pool, sub)
	m := sp.masters[pool]
	switch {
	case m != nil && !sub.IsValid():
		return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %s: pool %s is already allocated: %w", id, pool, ipamapi.ErrPoolOverlap)
	case m != nil:
		if _, dup := m.subs[sub]; dup {
			return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %s: sub-pool already allocated: %w", id, ipamapi.ErrPoolOverlap)
		}
	default:
		if o, bad := sp.overlapping(pool); bad {
			return ipamapi.AllocatedPool{}, fmt.Errorf("request pool %s: overlaps %s: %w", id, poolID(sp.name, o.prefix, netip.Prefix{}), ipamapi.ErrPoolOverlap)
		}
		m = newMaster(pool)
		sp.masters[pool] = m
	}
	if sub.IsValid() {
		m.subs[sub] = struct{}{}
	} else {
		m.whole = true
	}
	a.ids[id] = poolRef{space: sp, m: m, sub: sub}
	return ipamapi.AllocatedPool{PoolID: id, Pool: pool}, nil
}

func (a *Allocator) requestDefault(req ipamapi.PoolRequest) (ipamapi.AllocatedPool, error) {
	exclude := make([]netip.Prefix, 0, len(req.Exclude))
	for _, p := range req.Exclude {
		if p.IsValid() && p.Addr().Is6() == req.V6 {
			exclude = append(exclude, p.Masked())
		}
	}
	f := family(req.V6)

	a.mu.Lock()
	defer a.mu.Unlock()
	sp, err := a.space(req.AddressSpace)
	if err != nil {
		return ipamapi.AllocatedPool{}, fmt.Errorf("request pool: %w", err)
	}
	list := sp.splitters[f]
	if len(list) == 0 {
		return ipamapi.AllocatedPool{}, noPoolError(sp.name, req.V6, nil, 0)
	}
	blockedBy := func(c netip.Prefix) (blocker, bool) {
		var best blocker
		var bestLast u128
		found := false
		consider := func(p netip.Prefix, pool bool) {
			if !p.Overlaps(c) {
				return
			}
			if l := lastOf(p); !found || l.cmp(bestLast) > 0 {
				best, bestLast, found = blocker{prefix: p, pool: pool}, l, true
			}
		}
		for _, p := range exclude {
			consider(p, false)
		}
		for p := range sp.masters {
			consider(p, true)
		}
		return best, found
	}
	const maxReasons = 4
	var reasons []string
	distinct := map[blocker]bool{}
	seen := func(c netip.Prefix, b blocker) {
		if distinct[b] {
			return
		}
		distinct[b] = true
		if len(reasons) < maxReasons {
			what := "excluded " + b.prefix.String()
			if b.pool {
				what = "pool " + poolID(sp.name, b.prefix, netip.Prefix{})
			}
			reasons = append(reasons, fmt.Sprintf("%s overlaps %s", c, what))
		}
	}
	start := sp.cursor[f]
	if start.j >= len(list) {
		start = pos{addr: u128From(list[0].base.Addr())}
	}
	r := scan(list, start, nil, blockedBy, seen)
	if !r.ok {
		r = scan(list, pos{addr: u128From(list[0].base.Addr())}, &start, blockedBy, seen)
	}
	if !r.ok {
		return ipamapi.AllocatedPool{}, noPoolError(sp.name, req.V6, reasons, len(distinct))
	}
	sp.cursor[f] = r.next
	m := newMaster(r.pool)
	m.whole = true
	sp.masters[r.pool] = m
	id := poolID(sp.name, r.pool, netip.Prefix{})
	a.ids[id] = poolRef{space: sp, m: m}
	return ipamapi.AllocatedPool{PoolID: id, Pool: r.pool}, nil
}

// ReleasePool gives back a pool ID. The master pool and its addresses go
// when its own ID and all its sub-pool IDs are released. An unknown or
// already released ID is ErrPoolNotFound (NotFound) and changes nothing.
func (a *Allocator) ReleasePool(id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ref, err := a.lookup(id)
	if err != nil {
		return fmt.Errorf("release pool: %w", err)
	}
	delete(a.ids, id)
	m := ref.m
	if ref.sub.IsValid() {
		delete(m.subs, ref.sub)
	} else {
		m.whole = false
	}
	if !m.whole && len(m.subs) == 0 {
		delete(ref.space.masters, m.prefix)
	}
	return nil
}

// lookup resolves a held pool ID under a.mu. For an ID that is not held it
// tells a malformed ID or unknown space (BadRequest) from a pool that is
// simply not allocated (NotFound).
func (a *Allocator) lookup(id string) (poolRef, error) {
	if ref, ok := a.ids[id]; ok {
		return ref, nil
	}
	as, _, _, err := parsePoolID(id)
	if err != nil {
		return poolRef{}, err
	}
	if _, err := a.space(as); err != nil {
		return poolRef{}, fmt.Errorf("pool %s: %w", id, err)
	}
	return poolRef{}, fmt.Errorf("pool %s: %w", id, ipamapi.ErrPoolNotFound)
}
