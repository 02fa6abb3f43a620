package ipam

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/opencnm/libnetwork/ipamapi"
)

const slash16Hosts = 65534

// fillAndDrain allocates every address of a /16 pool and releases them all.
func fillAndDrain(tb testing.TB, a *Allocator, id string, addrs []netip.Addr) {
	for i := range addrs {
		x, _, err := a.RequestAddress(id, netip.Addr{}, nil)
		if err != nil {
			tb.Fatalf("allocation %d: %v", i, err)
		}
		addrs[i] = x.Addr()
	}
	if _, _, err := a.RequestAddress(id, netip.Addr{}, nil); err == nil {
		tb.Fatal("pool not full after 65534 allocations")
	}
	for _, x := range addrs {
		if err := a.ReleaseAddress(id, x); err != nil {
			tb.Fatal(err)
		}
	}
}

// TestSlash16UnderBudget is the requirement as a test: all 65,534
// addresses of a /16 allocated and released in under 50 ms in total (the
// budget is loosened under the race detector, which slows everything).
func TestSlash16UnderBudget(t *testing.T) {
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/16"})
	addrs := make([]netip.Addr, slash16Hosts)
	fillAndDrain(t, a, p.PoolID, addrs) // warm up
	best := time.Duration(1 << 62)
	for i := 0; i < 3; i++ {
		start := time.Now()
		fillAndDrain(t, a, p.PoolID, addrs)
		best = min(best, time.Since(start))
	}
	budget := 50 * time.Millisecond
	if raceEnabled {
		budget *= 20
	}
	t.Logf("/16 fill+drain: %v (budget %v)", best, budget)
	if best > budget {
		t.Fatalf("/16 fill+drain took %v, budget %v", best, budget)
	}
}

// bitmapBytes is the memory the bitmap's nodes occupy.
func bitmapBytes(b *bitmap) uintptr {
	var n uintptr = unsafe.Sizeof(*b)
	var walk func(in *inner, level int)
	walk = func(in *inner, level int) {
		n += unsafe.Sizeof(*in) + uintptr(cap(in.kids)+cap(in.leaves))*unsafe.Sizeof(uintptr(0))
		for u := in.used; u != 0; u &= u - 1 {
			j := 0
			for ; u&(1<<j) == 0; j++ {
			}
			if level == 1 {
				n += unsafe.Sizeof(leaf{})
			} else {
				walk(in.kids[j], level-1)
			}
		}
	}
	if b.height == 0 {
		n += unsafe.Sizeof(leaf{})
	} else {
		walk(b.root, b.height)
	}
	return n
}

// TestSlash16Memory: a full /16 pool's bitmap stays under 16 KiB, measured
// both structurally and with the runtime's heap statistics.
func TestSlash16Memory(t *testing.T) {
	const copies = 64
	heap := measureHeap(func() any {
		bs := make([]*bitmap, 0, copies)
		for range copies {
			b := newBitmap(1 << 16)
			for o := uint64(0); o < 1<<16; o++ {
				b.set(o)
			}
			bs = append(bs, b)
		}
		return bs
	}) / copies
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/16"})
	for i := 0; i < slash16Hosts; i++ {
		mustAddr(t, a, p.PoolID, "", nil)
	}
	structural := bitmapBytes(a.ids[p.PoolID].m.bits)
	t.Logf("full /16 bitmap: %d bytes structural, %d bytes allocated", structural, heap)
	if structural > 16<<10 || heap > 16<<10 {
		t.Fatalf("full /16 bitmap uses %d bytes (heap %d), budget 16 KiB", structural, heap)
	}
	// An untouched IPv6 /64 costs a root node only.
	// A fresh IPv6 /64 (network address reserved) costs one path of
	// small nodes and a leaf.
	n := bitmapBytes(newMaster(netip.MustParsePrefix("fd00::/64")).bits)
	t.Logf("fresh /64 bitmap: %d bytes", n)
	if n > 2<<10 {
		t.Fatalf("fresh /64 bitmap uses %d bytes", n)
	}
}

// measureHeap returns the bytes build allocates (runtime TotalAlloc delta).
// It is an upper bound on what build's result keeps live, and unlike a
// HeapAlloc delta it is not disturbed by unrelated garbage being collected.
func measureHeap(build func() any) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v := build()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(v)
	return after.TotalAlloc - before.TotalAlloc
}

// TestRequestAddressDoesNotAllocate: the steady-state request/release path
// makes no heap allocations.
func TestRequestAddressDoesNotAllocate(t *testing.T) {
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/16"})
	n := testing.AllocsPerRun(1000, func() {
		x, _, err := a.RequestAddress(p.PoolID, netip.Addr{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.ReleaseAddress(p.PoolID, x.Addr()); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per request+release", n)
	}
}

// BenchmarkAllocateReleaseSlash16: one op is all 65,534 addresses of a /16
// allocated and then released.
func BenchmarkAllocateReleaseSlash16(b *testing.B) {
	a := newAlloc(b)
	p := mustPool(b, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/16"})
	addrs := make([]netip.Addr, slash16Hosts)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		fillAndDrain(b, a, p.PoolID, addrs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(2*slash16Hosts), "ns/addr-op")
}

// BenchmarkRequestAddressAtFill: cost of taking the lowest free address of
// a /16 filled (from the bottom, upstream's worst case) to 1%, 50% and 99%.
// Each op is a request plus the release that keeps the fill constant.
func BenchmarkRequestAddressAtFill(b *testing.B) {
	for _, pct := range []int{1, 50, 99} {
		b.Run(fmt.Sprintf("%dpct", pct), func(b *testing.B) {
			for _, mode := range []struct {
				name string
				opts map[string]string
			}{{"lowest", nil}, {"serial", serial}} {
				b.Run(mode.name, func(b *testing.B) {
					a := newAlloc(b)
					p := mustPool(b, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/16"})
					for i := 0; i < slash16Hosts*pct/100; i++ {
						mustAddr(b, a, p.PoolID, "", nil)
					}
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						x, _, err := a.RequestAddress(p.PoolID, netip.Addr{}, mode.opts)
						if err != nil {
							b.Fatal(err)
						}
						if err := a.ReleaseAddress(p.PoolID, x.Addr()); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		})
	}
}

// BenchmarkSlash16Memory reports the heap bytes of one fully allocated /16.
func BenchmarkSlash16Memory(b *testing.B) {
	var heap uint64
	for b.Loop() {
		heap = measureHeap(func() any {
			a := newAlloc(b)
			p := mustPool(b, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/16"})
			for i := 0; i < slash16Hosts; i++ {
				mustAddr(b, a, p.PoolID, "", nil)
			}
			return a
		})
	}
	b.ReportMetric(float64(heap), "bytes/full-slash16-allocator")
}

// BenchmarkRequestPoolDefault: a driver-chosen pool from a long list, with
// many pools already allocated (global space, 10/8 split into /24s).
func BenchmarkRequestPoolDefault(b *testing.B) {
	a := newAlloc(b)
	for i := 0; i < 1000; i++ {
		mustPool(b, a, ipamapi.PoolRequest{AddressSpace: global})
	}
	b.ResetTimer()
	for b.Loop() {
		p, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: global})
		if err != nil {
			b.Fatal(err)
		}
		if err := a.ReleasePool(p.PoolID); err != nil {
			b.Fatal(err)
		}
	}
}
