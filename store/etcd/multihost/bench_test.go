package multihost_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
)

// envN is the positive integer in env, else def.
func envN(env string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(env)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkOverlayLifecycle takes MH_LIFECYCLE_N containers (default 50)
// through create+join (CreateEndpoint, NewSandbox, Join) and teardown
// (Leave, Sandbox.Delete, Endpoint.Delete) on an overlay network and,
// interleaved one by one in the same run, on a bridge network of the same
// host, and reports both medians and their ratio. Another host has a
// container on the overlay, so every join publishes a peer that host
// programs, as in a real cluster. Two modes:
//
//   - warm: another container stays on each network on the host, so the
//     overlay's data plane exists throughout (the usual case);
//   - cold: each container is the network's only one on the host, so its
//     join builds the overlay's data plane and its leave deletes it.
//
// Run: go test -run '^$' -bench OverlayLifecycle -benchtime 1x ./multihost (in store/etcd).
func BenchmarkOverlayLifecycle(b *testing.B) {
	n := envN("MH_LIFECYCLE_N", 50)
	for _, warm := range []bool{true, false} {
		b.Run(map[bool]string{true: "warm", false: "cold"}[warm], func(b *testing.B) {
			for range b.N {
				lifecycle(b, n, warm)
			}
		})
	}
}

func lifecycle(b *testing.B, n int, warm bool) {
	l := newLab(b, 2, testrig.ClusterOptions{})
	h := l.host(1)
	overlay(b, h, "ov", "10.100.0.0/22", "")
	run(b, l.host(2), "ov", "far")
	br, err := h.Controller().NewNetwork("bridge", "br", "",
		libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{bridge.BridgeName: "br-bench"}}),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.101.0.0/22"}}, nil, nil))
	if err != nil {
		b.Fatal(err)
	}
	ov := netOn(b, h, "ov")
	if warm {
		testrig.JoinNew(b, h.Controller(), ov, "keep-overlay")
		testrig.JoinNew(b, h.Controller(), br, "keep-bridge")
	}
	up := map[string][]time.Duration{}
	down := map[string][]testrig.TeardownTimes{}
	for i := range n {
		for _, nw := range []*libnetwork.Network{ov, br} {
			name := fmt.Sprintf("%s-%d", nw.Type(), i)
			t0 := time.Now()
			ep, sb := testrig.JoinNew(b, h.Controller(), nw, name)
			up[nw.Type()] = append(up[nw.Type()], time.Since(t0))
			down[nw.Type()] = append(down[nw.Type()], testrig.TimedTeardown(b, ep, sb))
		}
	}
	total := func(ts []testrig.TeardownTimes, f func(testrig.TeardownTimes) time.Duration) []time.Duration {
		var out []time.Duration
		for _, t := range ts {
			out = append(out, f(t))
		}
		return out
	}
	for _, m := range []struct {
		what string
		d    func(typ string) []time.Duration
	}{
		{"join", func(typ string) []time.Duration { return up[typ] }},
		{"teardown", func(typ string) []time.Duration { return total(down[typ], testrig.TeardownTimes.Total) }},
		{"leave", func(typ string) []time.Duration {
			return total(down[typ], func(t testrig.TeardownTimes) time.Duration { return t.Leave })
		}},
		{"sbdelete", func(typ string) []time.Duration {
			return total(down[typ], func(t testrig.TeardownTimes) time.Duration { return t.SandboxDelete })
		}},
	} {
		o, br := testrig.MedianMs(m.d("overlay")), testrig.MedianMs(m.d("bridge"))
		if m.what == "join" || m.what == "teardown" {
			b.ReportMetric(o, m.what+"-overlay-p50-ms")
			b.ReportMetric(br, m.what+"-bridge-p50-ms")
			b.ReportMetric(o/br, m.what+"-overlay/bridge")
		}
		b.Logf("%s over %d containers: overlay p50 %.2f ms (p95 %.2f), bridge p50 %.2f ms (p95 %.2f): %.2fx",
			m.what, n, o, testrig.PercentileMs(m.d("overlay"), 0.95), br, testrig.PercentileMs(m.d("bridge"), 0.95), o/br)
	}
}

// BenchmarkFirstPacket measures, MH_FIRSTPACKET_N times (default 30), the
// time from a Join on host A returning until the first datagram a
// container on host B keeps sending (one a millisecond, from before the
// join) arrives in the new container: the store write of the peer, the
// watch to B, B's FDB and neighbour programming, and B's container
// resolving the address, all on the clock. Reports p50 and p99.
func BenchmarkFirstPacket(b *testing.B) {
	n := envN("MH_FIRSTPACKET_N", 30)
	for range b.N {
		l := newLab(b, 2, testrig.ClusterOptions{})
		overlay(b, l.host(1), "ov", "10.102.0.0/22", "")
		sender := run(b, l.host(2), "ov", "sender")
		nw := netOn(b, l.host(1), "ov")
		var lat []time.Duration
		for i := range n {
			name := fmt.Sprintf("new-%d", i)
			ep, err := nw.CreateEndpoint(name)
			if err != nil {
				b.Fatal(err)
			}
			ip, _ := netip.AddrFromSlice(ep.Info().Iface().Address().IP.To4())
			sb := sandbox(b, l.host(1), name)
			ns, _ := sandboxNS(b, sb)
			var pc net.PacketConn
			if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", ":7000"); return err }); err != nil {
				b.Fatal(err)
			}
			stop := keepSending(b, sender, netip.AddrPortFrom(ip, 7000))
			if err := ep.Join(sb); err != nil {
				b.Fatal(err)
			}
			joined := time.Now()
			_ = pc.SetReadDeadline(joined.Add(10 * time.Second))
			if _, _, err := pc.ReadFrom(make([]byte, 16)); err != nil {
				b.Fatalf("%s: no datagram from %s within 10 s of the join: %v", name, sender.h.ID, err)
			}
			lat = append(lat, time.Since(joined))
			stop()
			pc.Close()
			testrig.TimedTeardown(b, ep, sb)
		}
		p50, p99 := testrig.PercentileMs(lat, 0.5), testrig.PercentileMs(lat, 0.99)
		b.ReportMetric(p50, "first-packet-p50-ms")
		b.ReportMetric(p99, "first-packet-p99-ms")
		b.Logf("first packet after the join, %d joins: p50 %.2f ms, p99 %.2f ms, max %.2f ms", n, p50, p99, testrig.PercentileMs(lat, 1))
	}
}

// keepSending sends a datagram from c to dst every millisecond until the
// returned function is called; send errors (no route or neighbour yet)
// are the point of the exercise and are ignored.
func keepSending(b *testing.B, c *ctr, dst netip.AddrPort) func() {
	var conn net.Conn
	if err := c.ns.Do(func() (err error) { conn, err = net.Dial("udp4", dst.String()); return err }); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			_, _ = conn.Write([]byte("hi"))
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-stopped; conn.Close() }
}

// BenchmarkEndpoints1000 creates MH_ENDPOINTS_N endpoints (default 1,000)
// on one overlay network from 3 hosts at once (4 goroutines each) and
// reports the wall time, the time per endpoint and the etcd keys each
// endpoint added (record, name claim, address claim; a joined endpoint
// adds its peer record).
func BenchmarkEndpoints1000(b *testing.B) {
	total := envN("MH_ENDPOINTS_N", 1000)
	const workers = 4
	for range b.N {
		l := newLab(b, 3, testrig.ClusterOptions{})
		overlay(b, l.host(1), "many", "10.104.0.0/20", "")
		st := l.store(b)
		before := countKeys(b, st)
		var wg sync.WaitGroup
		errs := make(chan error, len(l.Hosts)*workers)
		start := time.Now()
		for hi, h := range l.Hosts {
			nw := netOn(b, h, "many")
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := hi*workers + w; i < total; i += len(l.Hosts) * workers {
						if _, err := nw.CreateEndpoint(fmt.Sprintf("e%d", i)); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
		}
		wg.Wait()
		took := time.Since(start)
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		keys := float64(countKeys(b, st)-before) / float64(total)
		b.ReportMetric(took.Seconds(), "create-all-s")
		b.ReportMetric(float64(took.Microseconds())/1000/float64(total), "ms/endpoint")
		b.ReportMetric(keys, "etcd-keys/endpoint")
		b.Logf("%d endpoints from 3 hosts: %v (%.2f ms each, wall), %.2f etcd keys per endpoint", total, took.Round(time.Millisecond),
			float64(took.Microseconds())/1000/float64(total), keys)
	}
}

// countKeys is how many keys the store holds under its prefix.
func countKeys(b *testing.B, st *globalstore.Store) int {
	kvs, _, err := st.KV().List(context.Background(), "/opencnm/")
	if err != nil {
		b.Fatal(err)
	}
	return len(kvs)
}
