package ipam

import (
	"net/netip"
	"testing"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/types"
)

// requireClassed fails if err is non-nil but carries no class.
func requireClassed(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil && !types.IsClassed(err) {
		t.Fatalf("%s: unclassed error %v", what, err)
	}
}

// FuzzRequestPool: any pool request either fails with a classed error or
// returns an ID that round-trips, works for addresses and releases once.
func FuzzRequestPool(f *testing.F) {
	f.Add("LocalDefault", "10.2.0.0/16", "10.2.2.0/24", false)
	f.Add("GlobalDefault", "", "", false)
	f.Add("LocalDefault", "fd00::/8", "fd00::/64", true)
	f.Add("LocalDefault", "10.0.0.1/33", "", false)
	f.Add("x", "::/0", "::/0", true)
	f.Fuzz(func(t *testing.T, as, pool, sub string, v6 bool) {
		a, err := New(nil)
		if err != nil {
			t.Fatal(err)
		}
		mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16"})
		p, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: as, Pool: pool, SubPool: sub, V6: v6})
		requireClassed(t, "RequestPool", err)
		if err != nil {
			return
		}
		gotAS, gotPool, _, err := parsePoolID(p.PoolID)
		if err != nil || gotAS != as || gotPool != p.Pool {
			t.Fatalf("id %q does not round-trip: %v", p.PoolID, err)
		}
		x, _, err := a.RequestAddress(p.PoolID, netip.Addr{}, nil)
		requireClassed(t, "RequestAddress", err)
		if err == nil {
			if !p.Pool.Contains(x.Addr()) || x.Bits() != p.Pool.Bits() {
				t.Fatalf("address %s not in %s", x, p.Pool)
			}
			if err := a.ReleaseAddress(p.PoolID, x.Addr()); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.ReleasePool(p.PoolID); err != nil {
			t.Fatal(err)
		}
		if err := a.ReleasePool(p.PoolID); !types.IsNotFound(err) {
			t.Fatalf("second release: %v", err)
		}
	})
}

// FuzzPoolID: arbitrary pool IDs and addresses never panic and always give
// classed errors.
func FuzzPoolID(f *testing.F) {
	f.Add("LocalDefault/10.2.0.0/16", "10.2.0.1")
	f.Add("LocalDefault/10.2.0.0/16/10.2.2.0/24", "10.2.2.0")
	f.Add("/", "")
	f.Add("LocalDefault/10.2.0.0/16/", "::1")
	f.Fuzz(func(t *testing.T, id, addr string) {
		a, err := New(nil)
		if err != nil {
			t.Fatal(err)
		}
		mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "10.2.0.0/16", SubPool: "10.2.2.0/24"})
		mustPool(t, a, ipamapi.PoolRequest{AddressSpace: local, Pool: "fd00::/64", V6: true})
		ip, _ := netip.ParseAddr(addr)
		_, _, err = a.RequestAddress(id, ip, nil)
		requireClassed(t, "RequestAddress", err)
		requireClassed(t, "ReleaseAddress", a.ReleaseAddress(id, ip))
		_, err = a.Allocated(id)
		requireClassed(t, "Allocated", err)
		requireClassed(t, "ReleasePool", a.ReleasePool(id))
	})
}

// FuzzNetworkToSplit: any default-pool configuration either is rejected
// with BadRequest or yields pools of the configured size inside the base.
func FuzzNetworkToSplit(f *testing.F) {
	f.Add("172.80.0.0/16", 24)
	f.Add("fd00::/8", 64)
	f.Add("0.0.0.0/0", 0)
	f.Add("::/0", 128)
	f.Add("10.0.0.0/8", -1)
	f.Fuzz(func(t *testing.T, base string, size int) {
		a, err := New([]*config.NetworkToSplit{{Base: base, Size: size}})
		if err != nil {
			if !types.IsBadRequest(err) {
				t.Fatalf("New: %v is not BadRequest", err)
			}
			return
		}
		b := netip.MustParsePrefix(base).Masked()
		for i := 0; i < 3; i++ {
			p, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, V6: b.Addr().Is6()})
			if err != nil {
				if !types.IsNoService(err) {
					t.Fatalf("RequestPool: %v", err)
				}
				return
			}
			if p.Pool.Bits() != size || !b.Contains(p.Pool.Addr()) {
				t.Fatalf("pool %s not a /%d of %s", p.Pool, size, b)
			}
		}
	})
}

// FuzzAddressOps drives request/release sequences against a model of the
// held addresses: nothing is handed out twice, releases agree with it.
func FuzzAddressOps(f *testing.F) {
	f.Add("10.0.0.0/28", "", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add("10.0.0.0/16", "10.0.2.0/30", []byte{1, 1, 1, 0, 0, 0, 2, 2, 2})
	f.Add("fd00::/64", "", []byte{3, 3, 3, 0, 9, 9})
	f.Fuzz(func(t *testing.T, pool, sub string, ops []byte) {
		pfx, err := netip.ParsePrefix(pool)
		if err != nil {
			return
		}
		a, err := New(nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := a.RequestPool(ipamapi.PoolRequest{AddressSpace: local, Pool: pool, SubPool: sub, V6: pfx.Addr().Is6()})
		requireClassed(t, "RequestPool", err)
		if err != nil {
			return
		}
		held := map[netip.Addr]bool{}
		base := p.Pool.Addr()
		for i := 0; i+1 < len(ops); i += 2 {
			// Candidate address: base plus a small offset.
			cand := base
			for k := 0; k < int(ops[i+1]%32); k++ {
				cand = cand.Next()
			}
			switch ops[i] % 4 {
			case 0, 1:
				var prefer netip.Addr
				if ops[i]%4 == 1 {
					prefer = cand
				}
				opts := map[string]string(nil)
				if ops[i+1]&0x80 != 0 {
					opts = serial
				}
				x, _, err := a.RequestAddress(p.PoolID, prefer, opts)
				requireClassed(t, "RequestAddress", err)
				if err == nil {
					if held[x.Addr()] {
						t.Fatalf("%s handed out twice", x)
					}
					held[x.Addr()] = true
				} else if prefer.IsValid() && held[prefer] && !types.IsForbidden(err) {
					t.Fatalf("taken %s: %v", prefer, err)
				}
			default:
				err := a.ReleaseAddress(p.PoolID, cand)
				requireClassed(t, "ReleaseAddress", err)
				if (err == nil) != held[cand] {
					t.Fatalf("release %s: %v, held %v", cand, err, held[cand])
				}
				delete(held, cand)
			}
		}
		got, err := a.Allocated(p.PoolID)
		if err != nil || len(got) != len(held) {
			t.Fatalf("Allocated %d %v, model %d", len(got), err, len(held))
		}
	})
}
