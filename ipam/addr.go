package ipam

import (
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
)

// u128 is an address as a 128-bit unsigned integer (IPv4 addresses use the
// low 32 bits), so candidate pools and offsets can be computed without
// big.Int or per-byte loops.
type u128 struct{ hi, lo uint64 }

func u128From(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return u128{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// addr converts back; is4 selects the family.
func (x u128) addr(is4 bool) netip.Addr {
	if is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(x.lo))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], x.hi)
	binary.BigEndian.PutUint64(b[8:], x.lo)
	return netip.AddrFrom16(b)
}

func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

// addOne returns x+1 (wrapping at 2^128; callers never add to the last address).
func (x u128) addOne() u128 {
	lo, c := bits.Add64(x.lo, 1, 0)
	return u128{hi: x.hi + c, lo: lo}
}

// hostMask returns the low n bits set (n in 0..128).
func hostMask(n int) u128 {
	switch {
	case n <= 0:
		return u128{}
	case n < 64:
		return u128{lo: 1<<uint(n) - 1}
	case n < 128:
		return u128{hi: 1<<uint(n-64) - 1, lo: math.MaxUint64}
	}
	return u128{hi: math.MaxUint64, lo: math.MaxUint64}
}

// lastOf returns the highest address of p as a u128.
func lastOf(p netip.Prefix) u128 {
	x := u128From(p.Addr())
	m := hostMask(p.Addr().BitLen() - p.Bits())
	return u128{hi: x.hi | m.hi, lo: x.lo | m.lo}
}

// poolSize is the number of ordinals a master pool's bitmap covers. Pools
// with 64 or more host bits are capped at 2^64-1 ordinals: only the first
// 2^64-1 addresses of such a pool can be allocated (as upstream).
func poolSize(p netip.Prefix) uint64 {
	host := p.Addr().BitLen() - p.Bits()
	if host >= 64 {
		return math.MaxUint64
	}
	return 1 << uint(host)
}

// offsetOf returns a's offset from p's network address. ok is false if a is
// not inside p or lies beyond the 2^64-1 cap of a large IPv6 pool.
func offsetOf(p netip.Prefix, a netip.Addr) (uint64, bool) {
	if !a.IsValid() || a.Is4() != p.Addr().Is4() || !p.Contains(a) {
		return 0, false
	}
	x, base := u128From(a), u128From(p.Addr())
	lo, borrow := bits.Sub64(x.lo, base.lo, 0)
	hi, _ := bits.Sub64(x.hi, base.hi, borrow)
	if hi != 0 || lo >= poolSize(p) {
		return 0, false
	}
	return lo, true
}

// addrAt returns the address at offset off from p's network address. off
// must be below poolSize(p).
func addrAt(p netip.Prefix, off uint64) netip.Addr {
	base := u128From(p.Addr())
	lo, c := bits.Add64(base.lo, off, 0)
	return u128{hi: base.hi + c, lo: lo}.addr(p.Addr().Is4())
}
