package nftports_test

import (
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// BenchmarkMapsUpdate times one port's element added ("add") and deleted
// ("del"), each its own transaction, in maps already holding 0 or 2,000
// elements: what a publish and an unpublish cost the kernel. It reports
// the medians in ms.
//
// Run: go test -run '^$' -bench MapsUpdate -benchtime 200x ./firewall/nftports
func BenchmarkMapsUpdate(b *testing.B) {
	for _, among := range []int{0, 2000} {
		name := "among0"
		if among > 0 {
			name = "among2000"
		}
		b.Run(name, func(b *testing.B) {
			ns := testutil.NewHostNS(b)
			m := newMaps(b, ns)
			if _, err := m.Ensure(firewall.IPv4); err != nil {
				b.Fatal(err)
			}
			ctr := netip.MustParseAddr("10.0.0.2")
			var fill []firewall.PortElem
			for i := 0; i < among; i++ {
				fill = append(fill, firewall.PortElem{Proto: types.TCP, HostPort: uint16(20000 + i), ContainerIP: ctr, ContainerPort: 80, Owner: "cnm-ep-fill"})
			}
			if len(fill) > 0 {
				if err := m.Update(firewall.IPv4, fill, nil); err != nil {
					b.Fatal(err)
				}
			}
			e := firewall.PortElem{Proto: types.TCP, HostPort: 8080, ContainerIP: ctr, ContainerPort: 80, Owner: "cnm-ep-bench"}
			var add, del []time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if err := m.Update(firewall.IPv4, []firewall.PortElem{e}, nil); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := m.Update(firewall.IPv4, nil, []firewall.PortElem{e}); err != nil {
					b.Fatal(err)
				}
				add, del = append(add, t1.Sub(t0)), append(del, time.Since(t1))
			}
			b.ReportMetric(median(add), "add-ms")
			b.ReportMetric(median(del), "del-ms")
		})
	}
}

func median(ds []time.Duration) float64 {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}
