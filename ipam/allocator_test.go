package ipam

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/types"
)

const (
	local  = ipamapi.LocalDefaultAddressSpace
	global = ipamapi.GlobalDefaultAddressSpace
)

func newAlloc(t testing.TB, pools ...*config.NetworkToSplit) *Allocator {
	t.Helper()
	a, err := New(pools)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

func mustPool(t testing.TB, a ipamapi.Ipam, req ipamapi.PoolRequest) ipamapi.AllocatedPool {
	t.Helper()
	p, err := a.RequestPool(req)
	if err != nil {
		t.Fatalf("RequestPool(%+v): %v", req, err)
	}
	return p
}

// class names the error class for table tests.
type class int

const (
	ok class = iota
	notFound
	badRequest
	forbidden
	noService
)

func checkClass(t *testing.T, err error, want class, is error) {
	t.Helper()
	got := map[class]bool{
		notFound:   types.IsNotFound(err),
		badRequest: types.IsBadRequest(err),
		forbidden:  types.IsForbidden(err),
		noService:  types.IsNoService(err),
	}
	if want == ok {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want class %d", want)
	}
	if !types.IsClassed(err) {
		t.Fatalf("error %q is not classed", err)
	}
	for c, v := range got {
		if v != (c == want) {
			t.Fatalf("error %q: class %d is %v (want class %d)", err, c, v, want)
		}
	}
	if is != nil && !errors.Is(err, is) {
		t.Fatalf("error %q does not wrap %q", err, is)
	}
}

func TestNewValidatesPools(t *testing.T) {
	for _, n := range []*config.NetworkToSplit{
		nil,
		{Base: "not-a-cidr", Size: 24},
		{Base: "10.0.0.0/16", Size: 8},
		{Base: "10.0.0.0/16", Size: 33},
		{Base: "fd00::/8", Size: 129},
		{Base: "10.0.0.0", Size: 24},
	} {
		_, err := New([]*config.NetworkToSplit{{Base: "172.80.0.0/16", Size: 24}, n})
		checkClass(t, err, badRequest, nil)
		if n != nil && !strings.Contains(err.Error(), n.Base) {
			t.Errorf("error %q does not name %q", err, n.Base)
		}
	}
}

func TestDefaultAddressSpacesAndCapabilities(t *testing.T) {
	a := newAlloc(t)
	l, g, err := a.GetDefaultAddressSpaces()
	if err != nil || l != local || g != global {
		t.Fatalf("got %q %q %v", l, g, err)
	}
	if c := a.Capabilities(); !c.RequiresRequestReplay || c.RequiresMACAddress {
		t.Fatalf("capabilities %+v", c)
	}
}

// TestDefaultLocalSequence walks the whole predefined local list: 3 + 3*4
// /16s, then 16 /20s of 192.168.0.0/16, then exhaustion.
func TestDefaultLocalSequence(t *testing.T) {
	a := newAlloc(t)
	var want []string
	for i := 17; i <= 31; i++ {
		want = append(want, "172."+strconv.Itoa(i)+".0.0/16")
	}
	for i := 0; i < 256; i += 16 {
		want = append(want, "192.168."+strconv.Itoa(i)+".0/20")
	}
	for _, w := range want {
		p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local})
		if p.Pool.String() != w || p.PoolID != local+"/"+w {
			t.Fatalf("got %s (%s), want %s", p.Pool, p.PoolID, w)
		}
	}
	_, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local})
	checkClass(t, err, noService, ipamapi.ErrNoAvailablePool)
}

func TestDefaultGlobal(t *testing.T) {
	a := newAlloc(t)
	for _, w := range []string{"10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"} {
		if p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: global}); p.Pool.String() != w {
			t.Fatalf("got %s, want %s", p.Pool, w)
		}
	}
}

func TestRequestPoolErrors(t *testing.T) {
	a := newAlloc(t)
	mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.10.0.0/16"})
	for _, tc := range []struct {
		name string
		req  ipamapi.PoolRequest
		want class
		is   error
	}{
		{"empty space", ipamapi.PoolRequest{}, badRequest, ipamapi.ErrInvalidAddressSpace},
		{"unknown space", ipamapi.PoolRequest{AddressSpace: "foo", Pool: "10.0.0.0/8"}, badRequest, ipamapi.ErrInvalidAddressSpace},
		{"unknown space default", ipamapi.PoolRequest{AddressSpace: "foo"}, badRequest, ipamapi.ErrInvalidAddressSpace},
		{"bad pool", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.300/8"}, badRequest, ipamapi.ErrInvalidPool},
		{"pool without mask", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.1"}, badRequest, ipamapi.ErrInvalidPool},
		{"v6 flag v4 pool", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/8", V6: true}, badRequest, ipamapi.ErrInvalidPool},
		{"v4 flag v6 pool", ipamapi.PoolRequest{AddressSpace: local, Pool: "fd00::/64"}, badRequest, ipamapi.ErrInvalidPool},
		{"subpool without pool", ipamapi.PoolRequest{AddressSpace: local, SubPool: "10.0.0.0/24"}, badRequest, ipamapi.ErrInvalidSubPool},
		{"bad subpool", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.20.0.0/16", SubPool: "x"}, badRequest, ipamapi.ErrInvalidSubPool},
		{"subpool outside", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.20.0.0/16", SubPool: "10.21.0.0/24"}, badRequest, ipamapi.ErrInvalidSubPool},
		{"subpool larger", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.20.0.0/16", SubPool: "10.0.0.0/8"}, badRequest, ipamapi.ErrInvalidSubPool},
		{"subpool family", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.20.0.0/16", SubPool: "fd00::/64"}, badRequest, ipamapi.ErrInvalidSubPool},
		{"same pool", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.10.0.0/16"}, forbidden, ipamapi.ErrPoolOverlap},
		{"same pool unmasked", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.10.3.4/16"}, forbidden, ipamapi.ErrPoolOverlap},
		{"inside", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.10.1.0/24"}, forbidden, ipamapi.ErrPoolOverlap},
		{"around", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/8"}, forbidden, ipamapi.ErrPoolOverlap},
		{"around with subpool", ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/8", SubPool: "10.1.0.0/24"}, forbidden, ipamapi.ErrPoolOverlap},
		{"no v6 defaults", ipamapi.PoolRequest{AddressSpace: local, V6: true}, noService, ipamapi.ErrNoAvailablePool},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.RequestPool(tc.req)
			checkClass(t, err, tc.want, tc.is)
		})
	}
	// The overlap error names both pools.
	_, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Pool: "10.10.1.0/24"})
	if !strings.Contains(err.Error(), "10.10.1.0/24") || !strings.Contains(err.Error(), "10.10.0.0/16") {
		t.Fatalf("overlap error does not name both pools: %v", err)
	}
}

func TestSamePoolInBothSpaces(t *testing.T) {
	a := newAlloc(t)
	l := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.0.0.0/8"})
	g := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: global, Pool: "10.0.0.0/8"})
	if l.PoolID == g.PoolID {
		t.Fatalf("same ID %s in both spaces", l.PoolID)
	}
	// The global default list (10/8 split) is now blocked in the global
	// space only.
	_, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: global})
	checkClass(t, err, noService, ipamapi.ErrNoAvailablePool)
	if err := a.ReleasePool(l.PoolID); err != nil {
		t.Fatal(err)
	}
	if err := a.ReleasePool(g.PoolID); err != nil {
		t.Fatal(err)
	}
}

func TestReleasePoolErrors(t *testing.T) {
	a := newAlloc(t)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local})
	checkClass(t, a.ReleasePool(p.PoolID), ok, nil)
	checkClass(t, a.ReleasePool(p.PoolID), notFound, ipamapi.ErrPoolNotFound)
	checkClass(t, a.ReleasePool(local+"/10.9.0.0/16"), notFound, ipamapi.ErrPoolNotFound)
	checkClass(t, a.ReleasePool("garbage"), badRequest, ipamapi.ErrInvalidPool)
	checkClass(t, a.ReleasePool(local+"/10.9.0.0"), badRequest, ipamapi.ErrInvalidPool)
	checkClass(t, a.ReleasePool("Other/10.9.0.0/16"), badRequest, ipamapi.ErrInvalidAddressSpace)
	// A double release did not disturb a pool allocated in between.
	q := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local})
	checkClass(t, a.ReleasePool(p.PoolID), notFound, nil)
	if _, _, err := a.RequestAddress(q.PoolID, netip.Addr{}, nil); err != nil {
		t.Fatal(err)
	}
}

// TestReleasedPoolNotReusedFirst: a released pool comes back only after the
// rest of the list.
func TestReleasedPoolNotReusedFirst(t *testing.T) {
	a := newAlloc(t, &config.NetworkToSplit{Base: "10.0.0.0/22", Size: 24})
	p1 := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local})
	p2 := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local})
	checkClass(t, a.ReleasePool(p1.PoolID), ok, nil)
	var got []string
	for i := 0; i < 3; i++ {
		got = append(got, mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local}).Pool.String())
	}
	want := "10.0.2.0/24 10.0.3.0/24 10.0.0.0/24"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %v, want %s (p2 %s)", got, want, p2.Pool)
	}
	_, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local})
	checkClass(t, err, noService, ipamapi.ErrNoAvailablePool)
}

func TestExcludeRespected(t *testing.T) {
	a := newAlloc(t)
	excl := []netip.Prefix{
		netip.MustParsePrefix("172.16.0.0/12"),   // host route covering all 172 pools
		netip.MustParsePrefix("192.168.0.77/20"), // unmasked, blocks 192.168.0.0/20
		netip.MustParsePrefix("fd00::/8"),        // other family: ignored
		{},                                       // invalid: ignored
	}
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Exclude: excl})
	if p.Pool.String() != "192.168.16.0/20" {
		t.Fatalf("got %s", p.Pool)
	}
	// An explicit pool ignores Exclude.
	mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "172.17.0.0/16", Exclude: excl})

	// Exhaustion names what blocked: allocated pools and exclusions.
	b := newAlloc(t, &config.NetworkToSplit{Base: "10.0.0.0/23", Size: 24})
	mustPool(t, b, ipamapi.PoolRequest{AddressSpace: local})
	_, err := b.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Exclude: []netip.Prefix{netip.MustParsePrefix("10.0.1.0/24")}})
	checkClass(t, err, noService, ipamapi.ErrNoAvailablePool)
	for _, s := range []string{"10.0.1.0/24 overlaps excluded 10.0.1.0/24", "10.0.0.0/24 overlaps pool " + local + "/10.0.0.0/24"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	excl = append(excl, netip.MustParsePrefix("192.168.0.0/16"))
	_, err = a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Exclude: excl})
	checkClass(t, err, noService, ipamapi.ErrNoAvailablePool)
	for _, s := range []string{"overlaps excluded 172.16.0.0/12", "overlaps excluded 192.168.0.0/16"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func TestCustomPoolsIncludingHugeIPv6(t *testing.T) {
	a := newAlloc(t,
		&config.NetworkToSplit{Base: "10.99.0.0/16", Size: 24},
		&config.NetworkToSplit{Base: "fd00::/8", Size: 64},
	)
	p := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local})
	if p.Pool.String() != "10.99.0.0/24" {
		t.Fatalf("got %s", p.Pool)
	}
	// The first 2^56 /64s are excluded but one: found without enumerating.
	v6 := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, V6: true,
		Exclude: []netip.Prefix{netip.MustParsePrefix("fd00::/9"), netip.MustParsePrefix("fd80::/10"), netip.MustParsePrefix("fdc0::/11")}})
	if v6.Pool.String() != "fde0::/64" {
		t.Fatalf("got %s", v6.Pool)
	}
	v6b := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, V6: true})
	if v6b.Pool.String() != "fde0:0:0:1::/64" {
		t.Fatalf("got %s", v6b.Pool)
	}
	_, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, V6: true, Exclude: []netip.Prefix{netip.MustParsePrefix("::/0")}})
	checkClass(t, err, noService, ipamapi.ErrNoAvailablePool)
	addr, _, err := a.RequestAddress(v6.PoolID, netip.Addr{}, nil)
	if err != nil || addr.String() != "fde0::1/64" {
		t.Fatalf("got %s, %v", addr, err)
	}
}

func TestSubPoolRefcount(t *testing.T) {
	a := newAlloc(t)
	s1 := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16", SubPool: "10.2.2.0/24"})
	if s1.PoolID != local+"/10.2.0.0/16/10.2.2.0/24" || s1.Pool.String() != "10.2.0.0/16" {
		t.Fatalf("got %+v", s1)
	}
	s2 := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16", SubPool: "10.2.3.0/24"})
	_, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16", SubPool: "10.2.2.0/24"})
	checkClass(t, err, forbidden, ipamapi.ErrPoolOverlap)
	// The implicitly created master is allocated: a plain request of it
	// or an overlapping pool fails; its own ID was never handed out.
	_, err = a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16"})
	checkClass(t, err, forbidden, ipamapi.ErrPoolOverlap)
	checkClass(t, a.ReleasePool(local+"/10.2.0.0/16"), notFound, ipamapi.ErrPoolNotFound)

	// Both sub-pools share the master bitmap.
	x, _, err := a.RequestAddress(s1.PoolID, netip.MustParseAddr("10.2.3.5"), nil)
	checkClass(t, err, ok, nil)
	_, _, err = a.RequestAddress(s2.PoolID, x.Addr(), nil)
	checkClass(t, err, forbidden, ipamapi.ErrIPAlreadyAllocated)

	checkClass(t, a.ReleasePool(s1.PoolID), ok, nil)
	checkClass(t, a.ReleasePool(s1.PoolID), notFound, ipamapi.ErrPoolNotFound)
	// The master lives on with s2 and keeps its addresses.
	_, _, err = a.RequestAddress(s2.PoolID, x.Addr(), nil)
	checkClass(t, err, forbidden, ipamapi.ErrIPAlreadyAllocated)
	checkClass(t, a.ReleasePool(s2.PoolID), ok, nil)
	// Now it is gone and can be requested whole, fresh.
	m := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16"})
	_, _, err = a.RequestAddress(m.PoolID, x.Addr(), nil)
	checkClass(t, err, ok, nil)
	// A sub-pool of an explicitly held master adds a reference to it.
	s3 := mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16", SubPool: "10.2.0.0/16"})
	checkClass(t, a.ReleasePool(m.PoolID), ok, nil)
	_, _, err = a.RequestAddress(s3.PoolID, x.Addr(), nil)
	checkClass(t, err, forbidden, ipamapi.ErrIPAlreadyAllocated)
	checkClass(t, a.ReleasePool(s3.PoolID), ok, nil)
	_, _, err = a.RequestAddress(s3.PoolID, netip.Addr{}, nil)
	checkClass(t, err, notFound, ipamapi.ErrPoolNotFound)
}
