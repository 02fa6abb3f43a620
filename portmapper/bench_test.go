package portmapper_test

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/portmapper"
	"github.com/opencnm/libnetwork/types"
)

func benchEndpoint(i int) portmapper.Endpoint {
	return portmapper.Endpoint{ID: fmt.Sprintf("ep%d", i), Bridge: "br0", IPv4: net.IPv4(172, 30, byte(i/250), byte(2+i%250))}
}

// BenchmarkMapUnmapOne: map and unmap one port (sockets, rules, and for
// UDP the conntrack flush) with real iptables in a namespace.
func BenchmarkMapUnmapOne(b *testing.B) {
	for _, proto := range []types.Protocol{types.TCP, types.UDP} {
		b.Run(proto.String(), func(b *testing.B) { benchMapUnmapOne(b, proto) })
	}
}

func benchMapUnmapOne(b *testing.B, proto types.Protocol) {
	r := newRealRig(b, false)
	ep := benchEndpoint(0)
	bs := []types.PortBinding{{Proto: proto, Port: 80, HostPort: 8080}}
	var mapT, unmapT time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := r.pm.MapPorts(ep, bs); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := r.pm.UnmapPorts(ep.ID); err != nil {
			b.Fatal(err)
		}
		mapT += t1.Sub(t0)
		unmapT += time.Since(t1)
	}
	b.ReportMetric(float64(mapT.Microseconds())/1000/float64(b.N), "map-ms/op")
	b.ReportMetric(float64(unmapT.Microseconds())/1000/float64(b.N), "unmap-ms/op")
}

// BenchmarkMap200: one endpoint publishing 200 ports, then unmapping them.
func BenchmarkMap200(b *testing.B) {
	r := newRealRig(b, false)
	ep := benchEndpoint(0)
	var bs []types.PortBinding
	for p := 0; p < 200; p++ {
		bs = append(bs, types.PortBinding{Proto: types.TCP, Port: uint16(1000 + p), HostPort: uint16(20000 + p)})
	}
	var mapT, unmapT time.Duration
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := r.pm.MapPorts(ep, bs); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := r.pm.UnmapPorts(ep.ID); err != nil {
			b.Fatal(err)
		}
		mapT += t1.Sub(t0)
		unmapT += time.Since(t1)
	}
	b.ReportMetric(float64(mapT.Microseconds())/1000/float64(b.N), "map-ms/op")
	b.ReportMetric(float64(unmapT.Microseconds())/1000/float64(b.N), "unmap-ms/op")
}

// BenchmarkMapOneAmong: publishing one port must cost the same with 2,000
// ports already published (100 endpoints x 20) as with none.
func BenchmarkMapOneAmong(b *testing.B) {
	for _, already := range []int{0, 2000} {
		b.Run(fmt.Sprintf("published=%d", already), func(b *testing.B) {
			r := newRealRig(b, false)
			for e := 0; e < already/20; e++ {
				var bs []types.PortBinding
				for p := 0; p < 20; p++ {
					bs = append(bs, types.PortBinding{Proto: types.TCP, Port: 80, HostPort: uint16(20000 + e*20 + p)})
				}
				if _, err := r.pm.MapPorts(benchEndpoint(e+1), bs); err != nil {
					b.Fatal(err)
				}
			}
			ep := benchEndpoint(0)
			bs := []types.PortBinding{{Proto: types.TCP, Port: 53, HostPort: 8053}}
			var mapT, unmapT time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := r.pm.MapPorts(ep, bs); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := r.pm.UnmapPorts(ep.ID); err != nil {
					b.Fatal(err)
				}
				mapT += t1.Sub(t0)
				unmapT += time.Since(t1)
			}
			b.ReportMetric(float64(mapT.Microseconds())/1000/float64(b.N), "map-ms/op")
			b.ReportMetric(float64(unmapT.Microseconds())/1000/float64(b.N), "unmap-ms/op")
		})
	}
}
