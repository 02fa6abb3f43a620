package storetest

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
)

// Bench runs the provider's benchmarks:
//   - Claim: one address claim (one transaction), uncontended; p50/p99 per op;
//   - Endpoints1000: 1,000 endpoints, each with one address and a peer
//     record, created from 3 hosts; keys per endpoint and time per endpoint;
//   - LeaseExpiry: a dead host's claims freed, measured from its last
//     acknowledged renewal; reported beside the TTL.
func Bench(b *testing.B, s Suite) {
	b.Run("Claim", func(b *testing.B) {
		st := store(b, s.New(b), Timeout)
		ctx := context.Background()
		lat := make([]time.Duration, 0, b.N)
		a := netip.MustParseAddr("10.0.0.0")
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			a = a.Next()
			start := time.Now()
			if err := st.Claim(ctx, "o", globalstore.NoLease, globalstore.Address("n1", a)); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		b.ReportMetric(float64(Percentile(lat, 50).Microseconds()), "p50-µs")
		b.ReportMetric(float64(Percentile(lat, 99).Microseconds()), "p99-µs")
	})
	b.Run("Endpoints1000", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			c := s.New(b)
			sts := []*globalstore.Store{store(b, c, Timeout), store(b, c, Timeout), store(b, c, Timeout)}
			var leases []globalstore.LeaseID
			for h, st := range sts {
				leases = append(leases, session(b, st, fmt.Sprint("h", h)).Lease())
			}
			ctx := context.Background()
			if err := sts[0].CreateNetwork(ctx, globalstore.Network{ID: "n1", Name: "blue", Driver: "overlay",
				Claims: []globalstore.Claim{globalstore.VNI(4096), globalstore.Pool("GlobalDefault", netip.MustParsePrefix("10.0.0.0/16"))}}); err != nil {
				b.Fatal(err)
			}
			kvs0, _, _ := sts[0].KV().List(ctx, "/test/")
			b.StartTimer()
			start := time.Now()
			a := netip.MustParseAddr("10.0.0.1")
			errs := make(chan error, 3)
			for h, st := range sts {
				go func() {
					var err error
					for j := h; j < 1000 && err == nil; j += 3 {
						addr := addrN(a, j)
						e := ep("n1", fmt.Sprint("e", j), fmt.Sprint("c", j), fmt.Sprint("h", h), addr.String())
						if err = st.CreateEndpoint(ctx, leases[h], e); err == nil {
							err = st.PutPeer(ctx, leases[h], globalstore.Peer{EndpointID: e.ID, NetworkID: "n1", Host: e.Host,
								VTEP: netip.MustParseAddr("192.0.2.1"), MAC: e.MAC, IPs: []netip.Addr{addr}})
						}
					}
					errs <- err
				}()
			}
			for range sts {
				if err := <-errs; err != nil {
					b.Fatal(err)
				}
			}
			took := time.Since(start)
			b.StopTimer()
			kvs, _, err := sts[0].KV().List(ctx, "/test/")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(kvs)-len(kvs0))/1000, "keys/endpoint")
			b.ReportMetric(float64(took.Microseconds())/1000, "µs/endpoint")
			b.StartTimer()
		}
	})
	b.Run("LeaseExpiry", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			c := s.New(b)
			dead, other := store(b, c, Timeout), store(b, c, Timeout)
			ss, err := dead.OpenSession(context.Background(), globalstore.Host{ID: "dead"}, TestTTL)
			if err != nil {
				b.Fatal(err)
			}
			cl := globalstore.Address("n1", netip.MustParseAddr("10.0.0.2"))
			if err := dead.Claim(context.Background(), "e1", ss.Lease(), cl); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			ss.Abandon()
			freed := waitFree(b, other, cl, TestTTL+20*time.Second)
			b.ReportMetric(float64(freed.Sub(ss.Renewed()).Milliseconds()), "ms-to-free")
			b.ReportMetric(float64(TestTTL.Milliseconds()), "ms-TTL")
		}
	})
}

// addrN is the n-th address after a.
func addrN(a netip.Addr, n int) netip.Addr {
	for ; n > 0; n-- {
		a = a.Next()
	}
	return a
}
