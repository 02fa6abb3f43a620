package dataplane

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/internal/testutil"
)

// BenchmarkFirstPacket times, per iteration, from host A starting to
// attach a new endpoint (and host B programming it as a peer, as B's
// driver does when A publishes it) until the first datagram a container
// on B sends to it arrives. The sender sends every millisecond.
//
//   - fresh: B's container starts sending once B has programmed the peer.
//   - probing: it has been sending for 20 ms before, so its neighbour
//     entry for the address is unresolved and retries at its
//     retransmission interval (1 s by default).
//   - probing-tuned: the same with the container's retrans_time_ms at 10.
//
// Run with -benchtime=200x (each iteration uses a new address, so no
// neighbour state carries over; at most 60000).
func BenchmarkFirstPacket(b *testing.B) {
	for _, mode := range []string{"fresh", "probing", "probing-tuned"} {
		b.Run(mode, func(b *testing.B) { benchFirstPacket(b, mode) })
	}
}

func benchFirstPacket(b *testing.B, mode string) {
	l := newLab(b, 2, 1500, false)
	l.networks(0)
	a, hb := l.hosts[0].net, l.hosts[1].net
	cA := testutil.NewNamedNS(b, "cA")
	cB := testutil.NewNamedNS(b, "cB")
	_, err := hb.Attach(EndpointConfig{ID: "epB", NS: cB.NS, IfName: "eth0", IPv4: prefix("10.0.255.254/16")})
	must(b, err)
	if mode == "probing-tuned" {
		d, err := cB.OpenSysctlDir("net/ipv4/neigh")
		must(b, err)
		must(b, d.Write("eth0/retrans_time_ms", "10"))
	}
	var rx *net.UDPConn
	must(b, cA.Do(func() (err error) { rx, err = net.ListenUDP("udp4", &net.UDPAddr{Port: 9999}); return err }))
	defer rx.Close()
	var tx *net.UDPConn
	must(b, cB.Do(func() (err error) { tx, err = net.ListenUDP("udp4", &net.UDPAddr{}); return err }))
	defer tx.Close()

	var target atomic.Pointer[net.UDPAddr]
	var seq atomic.Uint32
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		buf := make([]byte, 4)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if to := target.Load(); to != nil {
				binary.BigEndian.PutUint32(buf, seq.Load())
				_, _ = tx.WriteTo(buf, to)
			}
			time.Sleep(time.Millisecond)
		}
	}()

	var lat, attach, peer []time.Duration
	buf := make([]byte, 16)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if i%256 == 0 || i%256 == 255 {
			ip = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), 7})
		}
		seq.Store(uint32(i))
		to := &net.UDPAddr{IP: ip.AsSlice(), Port: 9999}
		if mode != "fresh" {
			target.Store(to)
			time.Sleep(20 * time.Millisecond)
		}
		b.StartTimer()
		t0 := time.Now()
		p, err := a.Attach(EndpointConfig{ID: fmt.Sprint("epA", i), NS: cA.NS, IfName: "eth0",
			IPv4: netip.PrefixFrom(ip, 16)})
		must(b, err)
		t1 := time.Now()
		must(b, hb.AddPeer(p))
		t2 := time.Now()
		if mode == "fresh" {
			target.Store(to)
		}
		_ = rx.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			n, err := rx.Read(buf)
			must(b, err)
			if n == 4 && binary.BigEndian.Uint32(buf) == uint32(i) {
				break
			}
		}
		lat = append(lat, time.Since(t0))
		attach, peer = append(attach, t1.Sub(t0)), append(peer, t2.Sub(t1))
		b.StopTimer()
		target.Store(nil)
		must(b, hb.RemovePeer(p.ID))
		must(b, a.Detach(p.ID))
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(pct(lat, 50), "p50-ms")
	b.ReportMetric(pct(lat, 99), "p99-ms")
	b.ReportMetric(pct(attach, 50), "attach-p50-ms")
	b.ReportMetric(pct(peer, 50), "addpeer-p50-ms")
}

func pct(ds []time.Duration, p int) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[(len(s)-1)*p/100].Microseconds()) / 1000
}

// BenchmarkAddPeer is the cost of programming one remote endpoint (an
// FDB entry and two neighbour entries) on a network that already has
// b.N peers' worth of entries, and of removing it.
func BenchmarkAddPeer(b *testing.B) {
	l := newLab(b, 1, 1500, false)
	l.networks(0)
	n := l.hosts[0].net
	vtep := netip.MustParseAddr("192.168.100.2")
	peers := make([]Peer, b.N)
	for i := range peers {
		v4 := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		peers[i] = Peer{ID: fmt.Sprint("ep", i), MAC: MACFromIP(v4), IPv4: v4,
			IPv6: netip.AddrFrom16([16]byte{0xfd, 0, 12: byte(i >> 24), 13: byte(i >> 16), 14: byte(i >> 8), 15: byte(i)}), VTEP: vtep}
	}
	b.ResetTimer()
	t0 := time.Now()
	for _, p := range peers {
		must(b, n.AddPeer(p))
	}
	add := time.Since(t0)
	t0 = time.Now()
	if b.N >= 1000 {
		rep, err := n.Reconcile(peers)
		must(b, err)
		if len(rep.Repairs) != 0 {
			b.Fatalf("clean reconcile repaired %v", rep.Repairs)
		}
		b.ReportMetric(float64(time.Since(t0).Microseconds())/1000, "reconcile-ms")
	}
	t0 = time.Now()
	for _, p := range peers {
		must(b, n.RemovePeer(p.ID))
	}
	b.ReportMetric(float64(add.Microseconds())/float64(b.N), "add-µs/peer")
	b.ReportMetric(float64(time.Since(t0).Microseconds())/float64(b.N), "remove-µs/peer")
}

// BenchmarkAttachDetach is the cost of plumbing one local endpoint (veth
// into the container, MAC, MTU, two addresses, up, waiting until it is
// reachable) and of unplumbing it (cutting it off; the reaper deletes
// the veth). Every attach reuses the container's eth0, so it flushes the
// reaper first: its p50 includes the previous veth's deletion.
func BenchmarkAttachDetach(b *testing.B) {
	l := newLab(b, 1, 1500, false)
	l.networks(0)
	n := l.hosts[0].net
	c := testutil.NewNamedNS(b, "c")
	var attach, detach []time.Duration
	b.ResetTimer()
	for i := range b.N {
		ep := EndpointConfig{ID: fmt.Sprint("ep", i), NS: c.NS, IfName: "eth0",
			IPv4: prefix("10.0.0.2/24"), IPv6: prefix("fd00:db8::2/64")}
		t0 := time.Now()
		_, err := n.Attach(ep)
		must(b, err)
		t1 := time.Now()
		must(b, n.Detach(ep.ID))
		attach, detach = append(attach, t1.Sub(t0)), append(detach, time.Since(t1))
	}
	b.ReportMetric(pct(attach, 50), "attach-p50-ms")
	b.ReportMetric(pct(detach, 50), "detach-p50-ms")
}

// BenchmarkCreateDelete is the cost of building a network's data plane
// (namespace, bridge, VXLAN device) and of tearing it down with the
// given number of attached endpoints.
func BenchmarkCreateDelete(b *testing.B) {
	for _, eps := range []int{0, 10} {
		b.Run(fmt.Sprint(eps, "-endpoints"), func(b *testing.B) {
			l := newLab(b, 1, 1500, false)
			h := l.hosts[0]
			cs := make([]*testutil.HostNS, eps)
			for i := range cs {
				cs[i] = testutil.NewNamedNS(b, fmt.Sprint("c", i))
			}
			var create, del []time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				n, err := Create(l.config(h, 0))
				must(b, err)
				t1 := time.Now()
				for i, c := range cs {
					_, err := n.Attach(EndpointConfig{ID: fmt.Sprint("ep", i), NS: c.NS, IfName: "eth0",
						IPv4: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 2)}), 24)})
					must(b, err)
				}
				t2 := time.Now()
				must(b, n.Delete())
				create, del = append(create, t1.Sub(t0)), append(del, time.Since(t2))
			}
			b.ReportMetric(pct(create, 50), "create-p50-ms")
			b.ReportMetric(pct(del, 50), "delete-p50-ms")
		})
	}
}
