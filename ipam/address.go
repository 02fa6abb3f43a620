package ipam

import (
	"fmt"
	"net/netip"

	"github.com/opencnm/libnetwork/ipamapi"
)

// addrRange returns the ordinals [lo, hi) automatic allocation draws from:
// the whole master pool, or the sub-pool's range (whose own network and
// broadcast addresses are allocatable, as upstream).
func (m *master) addrRange(sub netip.Prefix) (lo, hi uint64) {
	if !sub.IsValid() {
		return 0, m.bits.size
	}
	lo, _ = offsetOf(m.prefix, sub.Addr())
	hi = m.bits.size
	if n := poolSize(sub); n < hi-lo {
		hi = lo + n
	}
	return lo, hi
}

// RequestAddress allocates an address of the pool and returns it with the
// master pool's mask. A valid prefer is reserved if free; it may lie
// anywhere in the master pool, even outside the ID's sub-pool (as upstream,
// so a gateway outside --ip-range works). Otherwise the lowest free address
// of the (sub-)pool is taken, or with opts[ipamapi.AllocSerialPrefix] ==
// "true" the next free one after the last serially handed out, wrapping.
// Gateway requests are not special.
func (a *Allocator) RequestAddress(id string, prefer netip.Addr, opts map[string]string) (netip.Prefix, map[string]string, error) {
	serial := opts[ipamapi.AllocSerialPrefix] == "true"

	a.mu.Lock()
	defer a.mu.Unlock()
	ref, err := a.lookup(id)
	if err != nil {
		return netip.Prefix{}, nil, fmt.Errorf("request address: %w", err)
	}
	m := ref.m
	if prefer.IsValid() {
		if m.prefix.Addr().Is4() {
			prefer = prefer.Unmap()
		}
		o, ok := offsetOf(m.prefix, prefer)
		if !ok {
			return netip.Prefix{}, nil, fmt.Errorf("request address %s from pool %s: %w", prefer, id, ipamapi.ErrIPOutOfRange)
		}
		if m.isReserved(o) {
			return netip.Prefix{}, nil, fmt.Errorf("request address %s from pool %s: reserved network or broadcast address: %w", prefer, id, ipamapi.ErrIPOutOfRange)
		}
		if !m.bits.set(o) {
			return netip.Prefix{}, nil, fmt.Errorf("request address %s from pool %s: %w", prefer, id, ipamapi.ErrIPAlreadyAllocated)
		}
		return netip.PrefixFrom(prefer, m.prefix.Bits()), nil, nil
	}
	lo, hi := m.addrRange(ref.sub)
	var o uint64
	var ok bool
	if serial {
		start := m.next
		if start < lo || start >= hi {
			start = lo
		}
		if o, ok = m.bits.findFree(start, hi); !ok {
			o, ok = m.bits.findFree(lo, start)
		}
	} else {
		o, ok = m.bits.findFree(lo, hi)
	}
	if !ok {
		return netip.Prefix{}, nil, fmt.Errorf("request address from pool %s: %w", id, ipamapi.ErrNoAvailableIPs)
	}
	m.bits.set(o)
	if serial {
		m.next = o + 1
	}
	return netip.PrefixFrom(addrAt(m.prefix, o), m.prefix.Bits()), nil, nil
}

// ReleaseAddress gives back an address of the pool (anywhere in the master
// pool, like RequestAddress's prefer). Releasing an address that is not
// allocated is ErrIPNotAllocated and changes nothing, so a double release
// cannot corrupt the pool.
func (a *Allocator) ReleaseAddress(id string, addr netip.Addr) error {
	if !addr.IsValid() {
		return fmt.Errorf("release address from pool %s: invalid address: %w", id, ipamapi.ErrInvalidRequest)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ref, err := a.lookup(id)
	if err != nil {
		return fmt.Errorf("release address %s: %w", addr, err)
	}
	m := ref.m
	if m.prefix.Addr().Is4() {
		addr = addr.Unmap()
	}
	o, ok := offsetOf(m.prefix, addr)
	if !ok || m.isReserved(o) {
		return fmt.Errorf("release address %s from pool %s: %w", addr, id, ipamapi.ErrIPOutOfRange)
	}
	if !m.bits.clear(o) {
		return fmt.Errorf("release address %s from pool %s: %w", addr, id, ipamapi.ErrIPNotAllocated)
	}
	return nil
}

// Allocated returns the addresses currently allocated in the master pool
// the ID refers to (all its sub-pools included, reserved addresses
// excluded), in ascending order. Replaying them as preferred addresses
// into a fresh allocator restores the pool's state.
func (a *Allocator) Allocated(id string) ([]netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ref, err := a.lookup(id)
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	m := ref.m
	out := make([]netip.Addr, 0, m.bits.count-uint64(len(m.reserved)))
	m.bits.forEach(func(o uint64) {
		if !m.isReserved(o) {
			out = append(out, addrAt(m.prefix, o))
		}
	})
	return out, nil
}
