package ipam

import (
	"net/netip"
	"testing"

	"github.com/opencnm/libnetwork/ipamapi"
)

func TestNullIPAM(t *testing.T) {
	n := NewNull()
	l, g, err := n.GetDefaultAddressSpaces()
	if err != nil || l != "null" || g != "null" {
		t.Fatalf("spaces %q %q %v", l, g, err)
	}
	for _, tc := range []struct {
		name string
		req  ipamapi.PoolRequest
		want class
		is   error
	}{
		{"wrong space", ipamapi.PoolRequest{AddressSpace: local}, badRequest, ipamapi.ErrInvalidAddressSpace},
		{"specific pool", ipamapi.PoolRequest{AddressSpace: "null", Pool: "10.0.0.0/8"}, badRequest, ipamapi.ErrInvalidPool},
		{"sub-pool", ipamapi.PoolRequest{AddressSpace: "null", SubPool: "10.0.0.0/24"}, badRequest, ipamapi.ErrInvalidSubPool},
		{"v6", ipamapi.PoolRequest{AddressSpace: "null", V6: true}, badRequest, ipamapi.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.RequestPool(tc.req)
			checkClass(t, err, tc.want, tc.is)
		})
	}
	p, err := n.RequestPool(ipamapi.PoolRequest{AddressSpace: "null"})
	if err != nil || p.PoolID != "null/0.0.0.0/0" || p.Pool != netip.MustParsePrefix("0.0.0.0/0") {
		t.Fatalf("got %+v %v", p, err)
	}
	// Requesting it again is fine: every null network shares it.
	if _, err := n.RequestPool(ipamapi.PoolRequest{AddressSpace: "null"}); err != nil {
		t.Fatal(err)
	}
	x, meta, err := n.RequestAddress(p.PoolID, netip.MustParseAddr("10.0.0.1"), nil)
	if err != nil || x.IsValid() || meta != nil {
		t.Fatalf("RequestAddress = %v %v %v, want zero prefix", x, meta, err)
	}
	checkClass(t, n.ReleaseAddress(p.PoolID, netip.Addr{}), ok, nil)
	checkClass(t, n.ReleasePool(p.PoolID), ok, nil)
	checkClass(t, n.ReleasePool(p.PoolID), ok, nil)
	checkClass(t, n.ReleasePool("LocalDefault/10.0.0.0/8"), notFound, ipamapi.ErrPoolNotFound)
	_, _, err = n.RequestAddress("x", netip.Addr{}, nil)
	checkClass(t, err, notFound, ipamapi.ErrPoolNotFound)
	checkClass(t, n.ReleaseAddress("x", netip.Addr{}), notFound, ipamapi.ErrPoolNotFound)
	if c := n.Capabilities(); c.RequiresMACAddress || c.RequiresRequestReplay {
		t.Fatalf("capabilities %+v", c)
	}
}
