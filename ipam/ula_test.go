package ipam

import (
	"testing"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/ipamapi"
)

// Without an IPv6 default pool, a V6 request without a pool gets a /64
// of the ULA /48 of the global ID; a configured IPv6 pool is kept as the
// only one.
func TestWithIPv6DefaultULA(t *testing.T) {
	id := [5]byte{0x12, 0x34, 0x56, 0x78, 0x9a}
	if got := ULAPool(id); got.Base != "fd12:3456:789a::/48" || got.Size != 64 {
		t.Fatalf("ULAPool: %+v", got)
	}
	a, err := New(WithIPv6Default(nil, id))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fd12:3456:789a::/64", "fd12:3456:789a:1::/64"} {
		p, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, V6: true})
		if err != nil {
			t.Fatal(err)
		}
		if p.Pool.String() != want {
			t.Fatalf("V6 pool %s, want %s", p.Pool, want)
		}
	}
	p4, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local})
	if err != nil || p4.Pool.String() != "172.17.0.0/16" {
		t.Fatalf("IPv4 defaults kept: %v %v", p4.Pool, err)
	}

	own := []*config.NetworkToSplit{{Base: "10.0.0.0/8", Size: 24}, {Base: "fd00:1::/48", Size: 64}}
	if got := WithIPv6Default(own, id); len(got) != 2 {
		t.Fatalf("configured IPv6 pool: got %d entries, want the 2 given", len(got))
	}
	v4only := []*config.NetworkToSplit{{Base: "10.0.0.0/8", Size: 24}}
	if got := WithIPv6Default(v4only, id); len(got) != 2 || got[0].Base != "10.0.0.0/8" || got[1].Base != "fd12:3456:789a::/48" || len(v4only) != 1 {
		t.Fatalf("IPv4-only pools: %+v", got)
	}
}
