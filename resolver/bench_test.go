package resolver

import (
	"net"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// BenchmarkLocalQuery measures local-name A queries over UDP from one client
// on loopback, reporting queries per second and the p99 round-trip latency.
func BenchmarkLocalQuery(b *testing.B) {
	_, addr := startResolver(b, Config{})
	conn, err := net.Dial("udp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	co := &dns.Conn{Conn: conn}
	m := new(dns.Msg)
	m.SetQuestion("c1.net1.", dns.TypeA)
	var lat []time.Duration
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		m.Id = uint16(i)
		t0 := time.Now()
		if err := co.WriteMsg(m); err != nil {
			b.Fatal(err)
		}
		resp, err := co.ReadMsg()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
		if resp.Id != m.Id || len(resp.Answer) != 1 {
			b.Fatalf("bad reply %v", resp)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "queries/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkLocalQueryParallel measures throughput with concurrent clients.
func BenchmarkLocalQueryParallel(b *testing.B) {
	_, addr := startResolver(b, Config{})
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("udp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		co := &dns.Conn{Conn: conn}
		m := new(dns.Msg)
		m.SetQuestion("c1.net1.", dns.TypeA)
		for pb.Next() {
			m.Id = dns.Id()
			if err := co.WriteMsg(m); err != nil {
				b.Error(err)
				return
			}
			if _, err := co.ReadMsg(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
}
