package ipam

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/types"
)

// DefaultLocalPools returns upstream's predefined local pools: 172.17-19/16,
// then 172.20/14, 172.24/14 and 172.28/14 split into /16s, then
// 192.168.0.0/16 split into /20s. It returns a fresh slice every call.
func DefaultLocalPools() []*config.NetworkToSplit {
	return []*config.NetworkToSplit{
		{Base: "172.17.0.0/16", Size: 16},
		{Base: "172.18.0.0/16", Size: 16},
		{Base: "172.19.0.0/16", Size: 16},
		{Base: "172.20.0.0/14", Size: 16},
		{Base: "172.24.0.0/14", Size: 16},
		{Base: "172.28.0.0/14", Size: 16},
		{Base: "192.168.0.0/16", Size: 20},
	}
}

// DefaultGlobalPools returns the predefined global pools: 10.0.0.0/8 split
// into /24s.
func DefaultGlobalPools() []*config.NetworkToSplit {
	return []*config.NetworkToSplit{{Base: "10.0.0.0/8", Size: 24}}
}

// splitter is a validated NetworkToSplit. Its candidates (base split into
// prefixes of size bits) are never materialised: they are walked with
// 128-bit arithmetic, so fd00::/8 split into /64s costs nothing.
type splitter struct {
	base netip.Prefix
	size int
}

func parseSplitter(n *config.NetworkToSplit) (splitter, error) {
	if n == nil {
		return splitter{}, types.BadRequestErrorf("invalid default address pool: nil entry")
	}
	base, err := netip.ParsePrefix(strings.TrimSpace(n.Base))
	if err != nil {
		return splitter{}, types.BadRequestErrorf("invalid default address pool %q (size %d): %w", n.Base, n.Size, err)
	}
	base = base.Masked()
	if n.Size < base.Bits() || n.Size > base.Addr().BitLen() {
		return splitter{}, types.BadRequestErrorf("invalid default address pool %q: size %d must be between %d and %d",
			n.Base, n.Size, base.Bits(), base.Addr().BitLen())
	}
	return splitter{base: base, size: n.Size}, nil
}

// family indexes per-family state: 0 for IPv4, 1 for IPv6.
func family(v6 bool) int {
	if v6 {
		return 1
	}
	return 0
}

func familyName(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// pos is a position in a family's candidate sequence: the candidate of
// splitter j that starts at addr. j == len(list) is the end.
type pos struct {
	j    int
	addr u128
}

func (p pos) less(q pos) bool { return p.j < q.j || (p.j == q.j && p.addr.cmp(q.addr) < 0) }

// blocker is something that kept a candidate from being chosen.
type blocker struct {
	prefix netip.Prefix
	pool   bool // an allocated pool of the space, else an excluded prefix
}

// pickResult is the outcome of a candidate scan.
type pickResult struct {
	pool netip.Prefix
	next pos // position after pool, the new cursor
	ok   bool
}

// scan walks candidates of list from start until the end or until limit
// (exclusive), returning the first candidate that no blocker overlaps.
// blockedBy returns, for a candidate, the overlapping blocker that reaches
// furthest (so one jump skips every candidate it covers). Each blocker can
// cause at most one jump per splitter, so the walk is bounded by the number
// of blockers, however many candidates the splitters hold.
func scan(list []splitter, start pos, limit *pos, blockedBy func(netip.Prefix) (blocker, bool), seen func(cand netip.Prefix, b blocker)) pickResult {
	for j := start.j; j < len(list); j++ {
		sp := list[j]
		is4 := sp.base.Addr().Is4()
		end := lastOf(sp.base)
		cur := u128From(sp.base.Addr())
		if j == start.j {
			cur = start.addr
		}
		for {
			here := pos{j: j, addr: cur}
			if limit != nil && !here.less(*limit) {
				return pickResult{}
			}
			cand := netip.PrefixFrom(cur.addr(is4), sp.size)
			candLast := lastOf(cand)
			b, blocked := blockedBy(cand)
			if !blocked {
				next := pos{j: j + 1}
				if candLast.cmp(end) < 0 {
					next = pos{j: j, addr: candLast.addOne()}
				} else if next.j < len(list) {
					next.addr = u128From(list[next.j].base.Addr())
				}
				return pickResult{pool: cand, next: next, ok: true}
			}
			seen(cand, b)
			// Prefixes nest, so the blocker either contains the
			// candidate or lies inside it; resume after whichever ends
			// later, which is aligned to the candidate size.
			skip := candLast
			if bl := lastOf(b.prefix.Masked()); bl.cmp(skip) > 0 {
				skip = bl
			}
			if skip.cmp(end) >= 0 {
				break
			}
			cur = skip.addOne()
		}
	}
	return pickResult{}
}

// noPoolError builds the error for an exhausted candidate list, naming up
// to four distinct reasons.
func noPoolError(as string, v6 bool, reasons []string, total int) error {
	if total == 0 {
		return fmt.Errorf("no available %s pool in address space %s: no default %s pools configured: %w",
			familyName(v6), as, familyName(v6), ipamapi.ErrNoAvailablePool)
	}
	msg := strings.Join(reasons, ", ")
	if total > len(reasons) {
		msg += fmt.Sprintf(" and %d more", total-len(reasons))
	}
	return fmt.Errorf("no available %s pool in address space %s: %s: %w", familyName(v6), as, msg, ipamapi.ErrNoAvailablePool)
}

// ULAPool returns the IPv6 default pool moby 27 adds when no IPv6 default
// pool is configured: the unique local /48 fdXX:XXXX:XXXX::/48 whose 40-bit
// global ID is globalID (RFC 4193: random, and kept, per host), split into
// /64s.
func ULAPool(globalID [5]byte) *config.NetworkToSplit {
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], globalID[:])
	return &config.NetworkToSplit{Base: netip.PrefixFrom(netip.AddrFrom16(a), 48).String(), Size: 64}
}

// WithIPv6Default returns pools (DefaultLocalPools when empty) with
// ULAPool(globalID) appended unless pools already hold an IPv6 entry, so
// that an IPv6 network without a pool of its own gets a /64, as in moby 27.
// A malformed entry is left for New to report.
func WithIPv6Default(pools []*config.NetworkToSplit, globalID [5]byte) []*config.NetworkToSplit {
	if len(pools) == 0 {
		pools = DefaultLocalPools()
	}
	for _, p := range pools {
		if p == nil {
			continue
		}
		if b, err := netip.ParsePrefix(strings.TrimSpace(p.Base)); err == nil && b.Addr().Is6() {
			return pools
		}
	}
	return append(append([]*config.NetworkToSplit(nil), pools...), ULAPool(globalID))
}
