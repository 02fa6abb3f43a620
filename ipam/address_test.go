package ipam

import (
	"net/netip"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
)

var serial = map[string]string{ipamapi.AllocSerialPrefix: "true"}

func mustAddr(t testing.TB, a ipamapi.Ipam, id string, prefer string, opts map[string]string) netip.Prefix {
	t.Helper()
	var p netip.Addr
	if prefer != "" {
		p = netip.MustParseAddr(prefer)
	}
	got, _, err := a.RequestAddress(id, p, opts)
	if err != nil {
		t.Fatalf("RequestAddress(%s, %q): %v", id, prefer, err)
	}
	return got
}

func TestRequestAddressRules(t *testing.T) {
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.5.5.0/24"})
	gw := mustAddr(t, a, p.PoolID, "", map[string]string{ipamapi.RequestAddressType: netlabel.Gateway})
	if gw.String() != "10.5.5.1/24" {
		t.Fatalf("gateway %s", gw)
	}
	if got := mustAddr(t, a, p.PoolID, "", nil); got.String() != "10.5.5.2/24" {
		t.Fatalf("got %s", got)
	}
	if got := mustAddr(t, a, p.PoolID, "10.5.5.200", nil); got.String() != "10.5.5.200/24" {
		t.Fatalf("got %s", got)
	}
	if got := mustAddr(t, a, p.PoolID, "::ffff:10.5.5.201", nil); got.String() != "10.5.5.201/24" {
		t.Fatalf("v4-mapped prefer: got %s", got)
	}
	for _, tc := range []struct {
		name   string
		id     string
		prefer string
		want   class
		is     error
	}{
		{"unknown pool", local + "/10.6.0.0/16", "", notFound, ipamapi.ErrPoolNotFound},
		{"unknown subpool", p.PoolID + "/10.5.5.0/25", "", notFound, ipamapi.ErrPoolNotFound},
		{"malformed id", "nonsense", "", badRequest, ipamapi.ErrInvalidPool},
		{"bad space", "Other/10.5.5.0/24", "", badRequest, ipamapi.ErrInvalidAddressSpace},
		{"outside", p.PoolID, "10.5.6.1", badRequest, ipamapi.ErrIPOutOfRange},
		{"other family", p.PoolID, "fd00::1", badRequest, ipamapi.ErrIPOutOfRange},
		{"network address", p.PoolID, "10.5.5.0", badRequest, ipamapi.ErrIPOutOfRange},
		{"broadcast", p.PoolID, "10.5.5.255", badRequest, ipamapi.ErrIPOutOfRange},
		{"taken", p.PoolID, "10.5.5.200", forbidden, ipamapi.ErrIPAlreadyAllocated},
		{"gateway taken", p.PoolID, "10.5.5.1", forbidden, ipamapi.ErrIPAlreadyAllocated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pr netip.Addr
			if tc.prefer != "" {
				pr = netip.MustParseAddr(tc.prefer)
			}
			_, _, err := a.RequestAddress(tc.id, pr, nil)
			checkClass(t, err, tc.want, tc.is)
		})
	}
}

func TestReleaseAddressRules(t *testing.T) {
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.5.5.0/24"})
	x := mustAddr(t, a, p.PoolID, "", nil).Addr()
	y := mustAddr(t, a, p.PoolID, "", nil).Addr()
	for _, tc := range []struct {
		name string
		id   string
		addr netip.Addr
		want class
		is   error
	}{
		{"invalid addr", p.PoolID, netip.Addr{}, badRequest, ipamapi.ErrInvalidRequest},
		{"outside", p.PoolID, netip.MustParseAddr("10.5.6.1"), badRequest, ipamapi.ErrIPOutOfRange},
		{"network", p.PoolID, netip.MustParseAddr("10.5.5.0"), badRequest, ipamapi.ErrIPOutOfRange},
		{"broadcast", p.PoolID, netip.MustParseAddr("10.5.5.255"), badRequest, ipamapi.ErrIPOutOfRange},
		{"unknown pool", local + "/10.6.0.0/16", x, notFound, ipamapi.ErrPoolNotFound},
		{"malformed id", "x/y", x, badRequest, ipamapi.ErrInvalidPool},
		{"not allocated", p.PoolID, netip.MustParseAddr("10.5.5.77"), forbidden, ipamapi.ErrIPNotAllocated},
		{"release", p.PoolID, x, ok, nil},
		{"double release", p.PoolID, x, forbidden, ipamapi.ErrIPNotAllocated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkClass(t, a.ReleaseAddress(tc.id, tc.addr), tc.want, tc.is)
		})
	}
	// No state change from the failures: y still held, network and
	// broadcast still reserved, x free again and the lowest.
	got, err := a.Allocated(p.PoolID)
	if err != nil || len(got) != 1 || got[0] != y {
		t.Fatalf("allocated %v, %v; want [%s]", got, err, y)
	}
	if z := mustAddr(t, a, p.PoolID, "", nil).Addr(); z != x {
		t.Fatalf("got %s, want reused %s", z, x)
	}
}

// TestExhaustionAndReuse fills pools of every IPv4 size from /16 to /32
// (and small IPv6 ones), checks the count, the order and that reserved
// addresses never appear, then reuses released addresses lowest first.
func TestExhaustionAndReuse(t *testing.T) {
	for _, tc := range []struct {
		pool  string
		count int
		first string
		last  string
	}{
		{"10.0.0.0/16", 65534, "10.0.0.1", "10.0.255.254"},
		{"10.0.0.0/24", 254, "10.0.0.1", "10.0.0.254"},
		{"10.0.0.0/29", 6, "10.0.0.1", "10.0.0.6"},
		{"10.0.0.0/30", 2, "10.0.0.1", "10.0.0.2"},
		{"10.0.0.0/31", 2, "10.0.0.0", "10.0.0.1"},
		{"10.0.0.7/32", 1, "10.0.0.7", "10.0.0.7"},
		{"fd00::/120", 255, "fd00::1", "fd00::ff"},
		{"fd00::/127", 2, "fd00::", "fd00::1"},
	} {
		t.Run(tc.pool, func(t *testing.T) {
			a := newAlloc(t)
			pfx := netip.MustParsePrefix(tc.pool)
			p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: tc.pool, V6: pfx.Addr().Is6()})
			var got []netip.Addr
			for {
				x, _, err := a.RequestAddress(p.PoolID, netip.Addr{}, nil)
				if err != nil {
					checkClass(t, err, noService, ipamapi.ErrNoAvailableIPs)
					break
				}
				if x.Bits() != pfx.Bits() {
					t.Fatalf("mask %s", x)
				}
				if len(got) > 0 && !got[len(got)-1].Less(x.Addr()) {
					t.Fatalf("%s after %s: not ascending", x, got[len(got)-1])
				}
				got = append(got, x.Addr())
			}
			if len(got) != tc.count || got[0].String() != tc.first || got[len(got)-1].String() != tc.last {
				t.Fatalf("got %d addresses %s..%s", len(got), got[0], got[len(got)-1])
			}
			// Release a few (high first), then they come back lowest first.
			idx := []int{len(got) - 1}
			if len(got) > 2 {
				idx = append(idx, len(got)/2)
			}
			if len(got) > 1 {
				idx = append(idx, 0)
			}
			for _, i := range idx {
				checkClass(t, a.ReleaseAddress(p.PoolID, got[i]), ok, nil)
			}
			for k := len(idx) - 1; k >= 0; k-- {
				if x := mustAddr(t, a, p.PoolID, "", nil).Addr(); x != got[idx[k]] {
					t.Fatalf("reuse got %s, want %s", x, got[idx[k]])
				}
			}
		})
	}
}

func TestSerialAllocationWraps(t *testing.T) {
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/29"}) // .1-.6
	var seq []string
	for i := 0; i < 4; i++ {
		seq = append(seq, mustAddr(t, a, p.PoolID, "", serial).Addr().String())
	}
	checkClass(t, a.ReleaseAddress(p.PoolID, netip.MustParseAddr("10.0.0.2")), ok, nil)
	// Serial continues after .4 instead of reusing .2 ...
	seq = append(seq, mustAddr(t, a, p.PoolID, "", serial).Addr().String())
	seq = append(seq, mustAddr(t, a, p.PoolID, "", serial).Addr().String())
	// ... then wraps to the freed .2.
	seq = append(seq, mustAddr(t, a, p.PoolID, "", serial).Addr().String())
	want := "10.0.0.1 10.0.0.2 10.0.0.3 10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.2"
	if got := join(seq); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	_, _, err := a.RequestAddress(p.PoolID, netip.Addr{}, serial)
	checkClass(t, err, noService, ipamapi.ErrNoAvailableIPs)
	// Non-serial after releases takes the lowest.
	checkClass(t, a.ReleaseAddress(p.PoolID, netip.MustParseAddr("10.0.0.5")), ok, nil)
	checkClass(t, a.ReleaseAddress(p.PoolID, netip.MustParseAddr("10.0.0.3")), ok, nil)
	if x := mustAddr(t, a, p.PoolID, "", nil).Addr().String(); x != "10.0.0.3" {
		t.Fatalf("got %s", x)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// TestSubPoolAddresses is upstream's example: in sub-pool 10.2.2.0/24 of
// 10.2.0.0/16 the sub-pool's network address 10.2.2.0 is allocatable and
// addresses carry the /16 mask; preferred addresses may lie anywhere in
// the master (a gateway outside --ip-range).
func TestSubPoolAddresses(t *testing.T) {
	a := newAlloc(t)
	s := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16", SubPool: "10.2.2.0/24"})
	if gw := mustAddr(t, a, s.PoolID, "10.2.0.1", nil); gw.String() != "10.2.0.1/16" {
		t.Fatalf("gateway %s", gw)
	}
	var got []netip.Addr
	for {
		x, _, err := a.RequestAddress(s.PoolID, netip.Addr{}, nil)
		if err != nil {
			checkClass(t, err, noService, ipamapi.ErrNoAvailableIPs)
			break
		}
		if x.Bits() != 16 {
			t.Fatalf("mask of %s", x)
		}
		got = append(got, x.Addr())
	}
	if len(got) != 256 || got[0].String() != "10.2.2.0" || got[255].String() != "10.2.2.255" {
		t.Fatalf("sub-pool gave %d addresses %v..%v", len(got), got[0], got[len(got)-1])
	}
	_, _, err := a.RequestAddress(s.PoolID, netip.MustParseAddr("10.3.0.1"), nil)
	checkClass(t, err, badRequest, ipamapi.ErrIPOutOfRange)
	// The master's own network address stays reserved in a sub-pool at
	// the start of the master.
	s0 := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16", SubPool: "10.2.0.0/30"})
	var s0got []string
	for i := 0; i < 2; i++ {
		s0got = append(s0got, mustAddr(t, a, s0.PoolID, "", nil).Addr().String())
	}
	if join(s0got) != "10.2.0.2 10.2.0.3" {
		t.Fatalf("got %v", s0got)
	}
	// Serial in a sub-pool wraps inside the sub-pool.
	s9 := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16", SubPool: "10.2.9.0/30"})
	var s9got []string
	for i := 0; i < 4; i++ {
		s9got = append(s9got, mustAddr(t, a, s9.PoolID, "", serial).Addr().String())
	}
	checkClass(t, a.ReleaseAddress(s9.PoolID, netip.MustParseAddr("10.2.9.1")), ok, nil)
	s9got = append(s9got, mustAddr(t, a, s9.PoolID, "", serial).Addr().String())
	if join(s9got) != "10.2.9.0 10.2.9.1 10.2.9.2 10.2.9.3 10.2.9.1" {
		t.Fatalf("got %v", s9got)
	}
	// Snapshot covers the master, sub-pools included.
	all, err := a.Allocated(s.PoolID)
	if err != nil || len(all) != 1+256+2+4 {
		t.Fatalf("Allocated: %d, %v", len(all), err)
	}
}

func TestIPv6Pools(t *testing.T) {
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "2001:db8::/64", V6: true})
	if x := mustAddr(t, a, p.PoolID, "", nil); x.String() != "2001:db8::1/64" {
		t.Fatalf("got %s", x)
	}
	hi := "2001:db8::ffff:ffff:ffff:fffe"
	if x := mustAddr(t, a, p.PoolID, hi, nil); x.String() != hi+"/64" {
		t.Fatalf("got %s", x)
	}
	// The 2^64-1 cap: the very last address of a /64 is out of range.
	_, _, err := a.RequestAddress(p.PoolID, netip.MustParseAddr("2001:db8::ffff:ffff:ffff:ffff"), nil)
	checkClass(t, err, badRequest, ipamapi.ErrIPOutOfRange)
	// A /48: addresses beyond the first 2^64-1 are out of range.
	q := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "2001:db9::/48", V6: true})
	_, _, err = a.RequestAddress(q.PoolID, netip.MustParseAddr("2001:db9:0:1::1"), nil)
	checkClass(t, err, badRequest, ipamapi.ErrIPOutOfRange)
	mustAddr(t, a, q.PoolID, "2001:db9::abcd", nil)
	// A sub-pool beyond the cap is refused; one inside it works.
	_, err = a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Pool: "2001:db9::/48", SubPool: "2001:db9:0:1::/64", V6: true})
	checkClass(t, err, badRequest, ipamapi.ErrInvalidSubPool)
	s := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "2001:db9::/48", SubPool: "2001:db9::8000:0:0:0/65", V6: true})
	if x := mustAddr(t, a, s.PoolID, "", nil); x.String() != "2001:db9:0:0:8000::/48" {
		t.Fatalf("sub-pool of /48 gave %s", x)
	}
	// Snapshot and restore by replay.
	snap, err := a.Allocated(p.PoolID)
	if err != nil || len(snap) != 2 {
		t.Fatalf("snapshot %v %v", snap, err)
	}
	b := newAlloc(t)
	p2 := mustPool(t, b, ipamapi.PoolRequest{AddressSpace: local, Pool: "2001:db8::/64", V6: true})
	for _, x := range snap {
		mustAddr(t, b, p2.PoolID, x.String(), nil)
	}
	if x := mustAddr(t, b, p2.PoolID, "", nil); x.String() != "2001:db8::2/64" {
		t.Fatalf("after restore got %s", x)
	}
}

// TestConcurrentAllocRelease: many goroutines allocate and release on one
// pool; no address is ever held by two of them at once.
func TestConcurrentAllocRelease(t *testing.T) {
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.7.0.0/22"}) // 1022 addresses
	var (
		mu    sync.Mutex
		owner = map[netip.Addr]int{}
		wg    sync.WaitGroup
	)
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			var mine []netip.Addr
			for i := 0; i < 400; i++ {
				opts := map[string]string(nil)
				if (g+i)%3 == 0 {
					opts = serial
				}
				x, _, err := a.RequestAddress(p.PoolID, netip.Addr{}, opts)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if o, dup := owner[x.Addr()]; dup {
					mu.Unlock()
					t.Errorf("%s handed to %d while held by %d", x, g, o)
					return
				}
				owner[x.Addr()] = g
				mu.Unlock()
				mine = append(mine, x.Addr())
				if len(mine) > 40 {
					r := mine[0]
					mine = mine[1:]
					mu.Lock()
					delete(owner, r)
					mu.Unlock()
					if err := a.ReleaseAddress(p.PoolID, r); err != nil {
						errs <- err
						return
					}
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, _ := a.Allocated(p.PoolID)
	if len(got) != len(owner) {
		t.Fatalf("allocator holds %d, goroutines hold %d", len(got), len(owner))
	}
}

// TestConcurrentPoolRequests: parallel driver-chosen pool requests never
// return the same pool.
func TestConcurrentPoolRequests(t *testing.T) {
	a := newAlloc(t)
	var wg sync.WaitGroup
	res := make(chan netip.Prefix, 31)
	for i := 0; i < 31; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local})
			if err != nil {
				t.Error(err)
				return
			}
			res <- p.Pool
		}()
	}
	wg.Wait()
	close(res)
	seen := map[netip.Prefix]bool{}
	for p := range res {
		if seen[p] {
			t.Fatalf("pool %s handed out twice", p)
		}
		seen[p] = true
	}
	if len(seen) != 31 {
		t.Fatalf("got %d pools", len(seen))
	}
}
