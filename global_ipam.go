package libnetwork

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/ipam"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// globalIPAM is the default IPAM of one global network: it hands out
// candidates (a pool no global network holds, the pool's first address as
// gateway, the lowest free address) from the mirror and what this host has
// in flight, and never writes: the network's or endpoint's one transaction
// claims them, and a lost claim makes the caller ask again. After a recent
// loss in the network, an address is picked at random among the lowest
// free few instead of the lowest, so hosts racing for one spread out.
type globalIPAM struct {
	m   *mirror
	nid string
}

func (c *Controller) globalIPAMEntry(nid string) *ipamEntry {
	g := &globalIPAM{m: c.mirror, nid: nid}
	return &ipamEntry{Ipam: g, local: ipamapi.GlobalDefaultAddressSpace, global: ipamapi.GlobalDefaultAddressSpace}
}

// globalPoolID is "<space>|<pool>|<subpool>" (subpool may be empty).
func globalPoolID(space string, pool, sub netip.Prefix) string {
	id := space + "|" + pool.String() + "|"
	if sub.IsValid() {
		id += sub.String()
	}
	return id
}

func parseGlobalPoolID(id string) (space string, pool, sub netip.Prefix, err error) {
	f := strings.Split(id, "|")
	if len(f) != 3 {
		return "", pool, sub, ipamapi.ErrPoolNotFound
	}
	if pool, err = netip.ParsePrefix(f[1]); err != nil {
		return "", pool, sub, ipamapi.ErrPoolNotFound
	}
	if f[2] != "" {
		if sub, err = netip.ParsePrefix(f[2]); err != nil {
			return "", pool, sub, ipamapi.ErrPoolNotFound
		}
	}
	return f[0], pool, sub, nil
}

func (g *globalIPAM) GetDefaultAddressSpaces() (string, string, error) {
	return ipamapi.GlobalDefaultAddressSpace, ipamapi.GlobalDefaultAddressSpace, nil
}

func (g *globalIPAM) Capabilities() ipamapi.Capability { return ipamapi.Capability{} }

// RequestPool takes the user's pool if no global network overlaps it, or
// the first /24 of ipam.DefaultGlobalPools free per the mirror (IPv4
// only: a global IPv6 network names its pool).
func (g *globalIPAM) RequestPool(req ipamapi.PoolRequest) (ipamapi.AllocatedPool, error) {
	m := g.m
	var sub netip.Prefix
	if req.Pool != "" {
		p, err := netip.ParsePrefix(req.Pool)
		if err != nil || p.Addr().Is4() == req.V6 {
			return ipamapi.AllocatedPool{}, types.BadRequestErrorf("invalid pool %q: %w", req.Pool, ipamapi.ErrInvalidPool)
		}
		p = p.Masked()
		if req.SubPool != "" {
			if sub, err = netip.ParsePrefix(req.SubPool); err != nil || !p.Contains(sub.Addr()) || sub.Bits() < p.Bits() {
				return ipamapi.AllocatedPool{}, types.BadRequestErrorf("invalid sub-pool %q of %s: %w", req.SubPool, p, ipamapi.ErrInvalidSubPool)
			}
			sub = sub.Masked()
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if owner := m.poolOverlapLocked(req.AddressSpace, p, g.nid); owner != "" {
			return ipamapi.AllocatedPool{}, types.ForbiddenErrorf("pool %s overlaps the pool of %s: %w", p, owner, ipamapi.ErrPoolOverlap)
		}
		m.inflight[globalstore.Pool(req.AddressSpace, p)] = true
		return ipamapi.AllocatedPool{PoolID: globalPoolID(req.AddressSpace, p, sub), Pool: p}, nil
	}
	if req.V6 {
		return ipamapi.AllocatedPool{}, types.BadRequestErrorf("an IPv6 pool of a global network must be given (NetworkOptionIpam): %w", ipamapi.ErrNoAvailablePool)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Lowest first; after a recent loss, one of the lowest few at random.
	want := 1
	if m.contendedLocked(globalstore.ClaimPool, req.AddressSpace) || m.contendedLocked(globalstore.ClaimVNI, "") {
		want = spread
	}
	var cands []netip.Prefix
	for _, s := range ipam.DefaultGlobalPools() {
		base, err := netip.ParsePrefix(s.Base)
		if err != nil || !base.Addr().Is4() {
			continue
		}
		step := uint32(1) << (32 - s.Size)
		first := v4u(base.Masked().Addr())
		for i := uint64(0); i < uint64(1)<<(s.Size-base.Bits()) && len(cands) < want; i++ {
			p := netip.PrefixFrom(u4v(first+uint32(i)*step), s.Size)
			if m.poolOverlapLocked(req.AddressSpace, p, g.nid) != "" || overlapsAny(p, req.Exclude) {
				continue
			}
			cands = append(cands, p)
		}
	}
	if len(cands) == 0 {
		return ipamapi.AllocatedPool{}, ipamapi.ErrNoAvailablePool
	}
	p := cands[rand.IntN(len(cands))]
	m.inflight[globalstore.Pool(req.AddressSpace, p)] = true
	return ipamapi.AllocatedPool{PoolID: globalPoolID(req.AddressSpace, p, netip.Prefix{}), Pool: p}, nil
}

// spread is how many of the lowest free candidates a pick chooses from
// at random after a recent loss, so racing hosts part ways.
const spread = 64

// poolOverlapLocked names the network holding a pool of space that
// overlaps p, "" if none. Caller holds m.mu.
func (m *mirror) poolOverlapLocked(space string, p netip.Prefix, self string) string {
	for c := range m.inflight {
		if c.Kind == globalstore.ClaimPool && c.Scope == space {
			if q, err := netip.ParsePrefix(c.Name); err == nil && q.Overlaps(p) {
				return "a network being created here"
			}
		}
	}
	for _, hints := range []map[globalstore.Claim]time.Time{m.hints, m.listed} {
		for c := range hints {
			if c.Kind == globalstore.ClaimPool && c.Scope == space && fresh(hints, c) {
				if q, err := netip.ParsePrefix(c.Name); err == nil && q.Overlaps(p) {
					return "a network of another host"
				}
			}
		}
	}
	for _, n := range m.nets {
		if n.ID == self {
			continue
		}
		for _, c := range n.Claims {
			if c.Kind == globalstore.ClaimPool && c.Scope == space {
				if q, err := netip.ParsePrefix(c.Name); err == nil && q.Overlaps(p) {
					return "global network " + n.Name
				}
			}
		}
	}
	return ""
}

func overlapsAny(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if q.Overlaps(p) {
			return true
		}
	}
	return false
}

func (g *globalIPAM) ReleasePool(poolID string) error {
	space, pool, _, err := parseGlobalPoolID(poolID)
	if err != nil {
		return nil
	}
	g.m.mu.Lock()
	delete(g.m.inflight, globalstore.Pool(space, pool))
	g.m.mu.Unlock()
	return nil
}

// RequestAddress hands out prefer if it is free, the pool's first address
// for a gateway, or else a free address of the (sub-)pool.
func (g *globalIPAM) RequestAddress(poolID string, prefer netip.Addr, opts map[string]string) (netip.Prefix, map[string]string, error) {
	_, pool, sub, err := parseGlobalPoolID(poolID)
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	rng := pool
	if sub.IsValid() {
		rng = sub
	}
	gateway := opts[ipamapi.RequestAddressType] == netlabel.Gateway
	if gateway {
		rng = pool
		if !prefer.IsValid() {
			prefer = pool.Masked().Addr().Next()
		}
	}
	m := g.m
	m.mu.Lock()
	defer m.mu.Unlock()
	used := m.usedAddrsLocked(g.nid)
	free := func(a netip.Addr) bool {
		return !used[a] && !m.takenLocked(globalstore.Address(g.nid, a))
	}
	if prefer.IsValid() {
		if !rng.Contains(prefer) {
			return netip.Prefix{}, nil, ipamapi.ErrIPOutOfRange
		}
		if !free(prefer) {
			return netip.Prefix{}, nil, ipamapi.ErrIPAlreadyAllocated
		}
		m.inflight[globalstore.Address(g.nid, prefer)] = true
		return netip.PrefixFrom(prefer, pool.Bits()), nil, nil
	}
	// Lowest first; after recent losses, one of the lowest few at random,
	// as a pool is picked: spread per loss, so the more hosts race (the
	// more losses), the wider they part.
	want := 1
	if losses := m.lossesLocked(globalstore.ClaimAddress, g.nid); losses > 0 {
		want = spread * min(losses, 1024)
	}
	size := uint64(1) << min(rng.Addr().BitLen()-rng.Bits(), 24)
	var cands []netip.Addr
	for i := uint64(0); i < size && len(cands) < want; i++ {
		if a := addOffset(rng.Masked().Addr(), i); usable(pool, a) && free(a) {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return netip.Prefix{}, nil, ipamapi.ErrNoAvailableIPs
	}
	a := cands[rand.IntN(len(cands))]
	m.inflight[globalstore.Address(g.nid, a)] = true
	return netip.PrefixFrom(a, pool.Bits()), nil, nil
}

// contendedLocked reports whether a transaction lost a claim of kind in
// scope lately. Caller holds m.mu.
func (m *mirror) contendedLocked(kind globalstore.ClaimKind, scope string) bool {
	return m.lossesLocked(kind, scope) > 0
}

// lossesLocked counts the claims of kind in scope a transaction lost
// lately. Caller holds m.mu.
func (m *mirror) lossesLocked(kind globalstore.ClaimKind, scope string) int {
	n := 0
	for c := range m.hints {
		if c.Kind == kind && c.Scope == scope && fresh(m.hints, c) {
			n++
		}
	}
	return n
}

// usable reports whether a may be an endpoint's address in pool: not the
// network's own address nor, in IPv4, its broadcast.
func usable(pool netip.Prefix, a netip.Addr) bool {
	if !pool.Contains(a) || a == pool.Masked().Addr() {
		return false
	}
	if a.Is4() && pool.Bits() < 31 {
		last := v4u(pool.Masked().Addr()) | (1<<(32-pool.Bits()) - 1)
		return v4u(a) != last
	}
	return true
}

func (g *globalIPAM) ReleaseAddress(poolID string, addr netip.Addr) error {
	g.m.mu.Lock()
	delete(g.m.inflight, globalstore.Address(g.nid, addr.Unmap()))
	g.m.mu.Unlock()
	return nil
}

func v4u(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func u4v(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// addOffset is a + off (off < 2^24, so in IPv6 only the low bytes change
// and a carry stops within them for a range of at most 2^24 addresses
// starting at a masked prefix).
func addOffset(a netip.Addr, off uint64) netip.Addr {
	if a.Is4() {
		return u4v(v4u(a) + uint32(off))
	}
	b := a.As16()
	var lo uint64
	for i := 8; i < 16; i++ {
		lo = lo<<8 | uint64(b[i])
	}
	lo += off
	for i := 15; i >= 8; i-- {
		b[i] = byte(lo)
		lo >>= 8
	}
	return netip.AddrFrom16(b)
}
