package bridge

import (
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// BenchmarkEndpointLifecycle measures the driver's share of a container's
// network lifecycle: CreateEndpoint+Join into its own sandbox namespace,
// then (with all b.N endpoints on the bridge) Leave+DeleteEndpoint. It
// reports median and p95 per phase in ms, per Join step (via the
// failure-injection hook, used here as a stopwatch), and how long the
// background reaper then needs to delete every retired veth.
// Run: go test -run '^$' -bench EndpointLifecycle -benchtime 200x ./drivers/bridge/
func BenchmarkEndpointLifecycle(b *testing.B) {
	// all-then-all: every endpoint joins, then every one leaves.
	// interleaved: each leaves right after the next one joined, so the
	// reaper's deletes run while later joins happen.
	b.Run("all-then-all", func(b *testing.B) { benchLifecycle(b, false) })
	b.Run("interleaved", func(b *testing.B) { benchLifecycle(b, true) })
}

func benchLifecycle(b *testing.B, interleave bool) {
	testutil.RequireRoot(b)
	d, _ := newTestDriver(b, nil)
	if err := d.CreateNetwork(netReq(b, joinNID, "10.200.0.1/16", nil)); err != nil {
		b.Fatal(err)
	}
	sbs := make([]*testutil.HostNS, b.N)
	for i := range sbs {
		sbs[i] = testutil.NewNamedNS(b, fmt.Sprintf("sb%d", i))
	}

	stepTimes := map[string][]time.Duration{}
	var last time.Time
	d.failAfter = func(step string) error {
		now := time.Now()
		stepTimes[step] = append(stepTimes[step], now.Sub(last))
		last = now
		return nil
	}

	join := make([]time.Duration, 0, b.N)
	leave := make([]time.Duration, 0, b.N)
	leaveOne := func(i int) {
		eid := fmt.Sprintf("ep%d", i)
		start := time.Now()
		if err := d.Leave(joinNID, eid); err != nil {
			b.Fatal(err)
		}
		if err := d.DeleteEndpoint(joinNID, eid); err != nil {
			b.Fatal(err)
		}
		leave = append(leave, time.Since(start))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		eid := fmt.Sprintf("ep%d", i)
		ip := net.IPv4(10, 200, byte((i+2)>>8), byte(i+2))
		start := time.Now()
		if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: eid,
			Interface: driverapi.Interface{Address: &net.IPNet{IP: ip, Mask: net.CIDRMask(16, 32)}}}); err != nil {
			b.Fatal(err)
		}
		last = time.Now()
		stepTimes["create-endpoint"] = append(stepTimes["create-endpoint"], last.Sub(start))
		if _, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: eid, SandboxKey: sbs[i].Path(), IfaceName: ifname0}); err != nil {
			b.Fatal(err)
		}
		join = append(join, time.Since(start))
		if interleave && i > 0 {
			leaveOne(i - 1)
		}
	}
	for i := len(leave); i < b.N; i++ {
		leaveOne(i)
	}
	start := time.Now()
	if err := d.reaper.flush(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(ms(time.Since(start)), "reap-all-ms")
	b.StopTimer()
	d.failAfter = nil

	b.ReportMetric(ms(pct(join, 50)), "join-p50-ms")
	b.ReportMetric(ms(pct(join, 95)), "join-p95-ms")
	b.ReportMetric(ms(pct(leave, 50)), "leave-p50-ms")
	b.ReportMetric(ms(pct(leave, 95)), "leave-p95-ms")
	for _, s := range []string{"create-endpoint", "veth", "master", "port", "neighbours"} {
		b.ReportMetric(ms(pct(stepTimes[s], 50)), s+"-p50-ms")
	}
	if err := d.DeleteNetwork(joinNID); err != nil {
		b.Fatal(err)
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
