package osl

import (
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// The kernel costs that decide the controller's design, in ms/op. Run as
// root, all inside throwaway namespaces:
//
//	go test -run '^$' -bench . -benchtime 200x ./osl/
//
// Setup and cleanup of each op run with the timer stopped.
//
// Measured on the 2-core dev VM (kernel 6.18, HZ=250, PREEMPT_RCU, lazy
// RCU), 200 ops each: netns new+remove 1.9; sandbox New+Destroy 2.3; veth
// with peer created inside 1.0-1.2; veth created in host then moved 20-21;
// veth delete 17-20; remove of a netns holding a veth 0.1-0.2 to return,
// host end gone 31-34 later (async); addr add 0.06-0.08; route add
// 0.04-0.07; container create+join 3.8; teardown with explicit veth delete
// 27.7; teardown by Destroy alone 0.55 (+47 until the kernel reaped the
// veth). Every netdev unregister (delete, or the unregister half of a
// namespace move) waits for RCU grace periods: avoid them on the hot path.

func reportMS(b *testing.B) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/op")
}

func benchKey(b *testing.B, dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("sb%d", i))
}

// benchSandbox is a sandbox for the whole benchmark.
func benchSandbox(b *testing.B) *Sandbox {
	b.Helper()
	s, err := New(filepath.Join(b.TempDir(), "bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Destroy() })
	return s
}

func BenchmarkNetnsNewDestroy(b *testing.B) {
	testutil.RequireRoot(b)
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		key := benchKey(b, dir, i)
		ns, err := netnsutil.New(key)
		if err != nil {
			b.Fatal(err)
		}
		ns.Close()
		if err := netnsutil.Remove(key); err != nil {
			b.Fatal(err)
		}
	}
	reportMS(b)
}

// Sandbox New adds to the bare namespace: a netlink handle, lo up and the
// two IPv6 sysctls written through Do.
func BenchmarkSandboxNewDestroy(b *testing.B) {
	testutil.RequireRoot(b)
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		s, err := New(benchKey(b, dir, i))
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
	reportMS(b)
}

func BenchmarkVethPeerInside(b *testing.B) {
	host := testutil.NewHostNS(b)
	s := benchSandbox(b)
	for i := 0; i < b.N; i++ {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("bh%d", i)}, PeerName: "eth0", PeerNamespace: netlink.NsFd(s.NS().Fd())}
		if err := host.Netlink.LinkAdd(v); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := host.Netlink.LinkDel(v); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportMS(b)
}

func BenchmarkVethHostThenMove(b *testing.B) {
	host := testutil.NewHostNS(b)
	s := benchSandbox(b)
	for i := 0; i < b.N; i++ {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("bh%d", i)}, PeerName: fmt.Sprintf("bp%d", i)}
		if err := host.Netlink.LinkAdd(v); err != nil {
			b.Fatal(err)
		}
		peer, err := host.Netlink.LinkByName(v.PeerName)
		if err != nil {
			b.Fatal(err)
		}
		if err := host.Netlink.LinkSetNsFd(peer, s.NS().Fd()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := host.Netlink.LinkDel(v); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportMS(b)
}

// Deleting the host end of a veth whose peer is in a sandbox.
func BenchmarkVethDelete(b *testing.B) {
	host := testutil.NewHostNS(b)
	s := benchSandbox(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("bh%d", i)}, PeerName: "eth0", PeerNamespace: netlink.NsFd(s.NS().Fd())}
		if err := host.Netlink.LinkAdd(v); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := host.Netlink.LinkDel(v); err != nil {
			b.Fatal(err)
		}
	}
	reportMS(b)
}

// Removing a namespace that holds a veth: ms/op is the time for the
// unmount to return; reap-ms/op is how long until the host end is gone
// (the kernel frees the namespace asynchronously).
func BenchmarkNetnsDeleteWithVeth(b *testing.B) {
	host := testutil.NewHostNS(b)
	dir := b.TempDir()
	var reap time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		key := benchKey(b, dir, i)
		ns, err := netnsutil.New(key)
		if err != nil {
			b.Fatal(err)
		}
		name := fmt.Sprintf("bh%d", i)
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}
		if err := host.Netlink.LinkAdd(v); err != nil {
			b.Fatal(err)
		}
		ns.Close()
		b.StartTimer()
		start := time.Now()
		if err := netnsutil.Remove(key); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for {
			if _, err := host.Netlink.LinkByName(name); err != nil {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("host end %s still there 10s after namespace removal", name)
			}
			time.Sleep(20 * time.Microsecond)
		}
		reap += time.Since(start)
		b.StartTimer()
	}
	reportMS(b)
	b.ReportMetric(float64(reap.Nanoseconds())/float64(b.N)/1e6, "reap-ms/op")
}

func BenchmarkAddrAdd(b *testing.B) {
	host := testutil.NewHostNS(b)
	s := benchSandbox(b)
	addInsideVeth(b, host, s, "bh0", "eth0")
	link, err := s.nl.LinkByName("eth0")
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, byte(i>>16), byte(i>>8), byte(i)), Mask: net.CIDRMask(24, 32)}}
		if err := s.nl.AddrAdd(link, a); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.nl.AddrDel(link, a); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportMS(b)
}

func BenchmarkRouteAdd(b *testing.B) {
	host := testutil.NewHostNS(b)
	s := benchSandbox(b)
	addInsideVeth(b, host, s, "bh0", "eth0")
	link, err := s.nl.LinkByName("eth0")
	if err == nil {
		err = s.nl.LinkSetUp(link)
	}
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Scope: netlink.SCOPE_LINK,
			Dst: &net.IPNet{IP: net.IPv4(172, 16+byte(i>>16), byte(i>>8), 0), Mask: net.CIDRMask(24, 32)}}
		if err := s.nl.RouteAdd(r); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.nl.RouteDel(r); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportMS(b)
}

// The controller's per-container path through this package: sandbox, a
// bridge-style veth with its peer created inside, AddInterface with an IPv4
// address, default gateway.
func benchCreateJoin(b *testing.B, host *testutil.HostNS, key, hostEnd string) *Sandbox {
	s, err := New(key)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Destroy() }) // only does work if the op failed
	name := s.ReserveName("eth")
	v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd}, PeerName: name, PeerNamespace: netlink.NsFd(s.NS().Fd())}
	if err := host.Netlink.LinkAdd(v); err != nil {
		b.Fatal(err)
	}
	mac, _ := net.ParseMAC("02:42:0a:01:00:02")
	if err := s.AddInterface(nil, InterfaceConfig{DstName: name, MacAddress: mac,
		Address: &net.IPNet{IP: net.IPv4(10, 1, 0, 2).To4(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		b.Fatal(err)
	}
	if err := s.SetGateway(net.IPv4(10, 1, 0, 1)); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkContainerCreateJoin(b *testing.B) {
	host := testutil.NewHostNS(b)
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		s := benchCreateJoin(b, host, benchKey(b, dir, i), fmt.Sprintf("bh%d", i))
		b.StopTimer()
		_ = s.Destroy()
		b.StartTimer()
	}
	reportMS(b)
}

// Teardown by deleting the interface explicitly, then the namespace.
func BenchmarkContainerTeardownExplicit(b *testing.B) {
	host := testutil.NewHostNS(b)
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s := benchCreateJoin(b, host, benchKey(b, dir, i), fmt.Sprintf("bh%d", i))
		b.StartTimer()
		if err := s.RemoveInterface("eth0"); err != nil {
			b.Fatal(err)
		}
		if err := s.Destroy(); err != nil {
			b.Fatal(err)
		}
	}
	reportMS(b)
}

// Teardown by destroying the namespace and letting the kernel reap the
// veth; reap-ms/op is until the host end is gone.
func BenchmarkContainerTeardownNetnsOnly(b *testing.B) {
	host := testutil.NewHostNS(b)
	dir := b.TempDir()
	var reap time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		name := fmt.Sprintf("bh%d", i)
		s := benchCreateJoin(b, host, benchKey(b, dir, i), name)
		b.StartTimer()
		start := time.Now()
		if err := s.Destroy(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for {
			if _, err := host.Netlink.LinkByName(name); err != nil {
				break
			}
			if time.Since(start) > 10*time.Second {
				b.Fatalf("host end %s still there 10s after Destroy", name)
			}
			time.Sleep(20 * time.Microsecond)
		}
		reap += time.Since(start)
		b.StartTimer()
	}
	reportMS(b)
	b.ReportMetric(float64(reap.Nanoseconds())/float64(b.N)/1e6, "reap-ms/op")
}
