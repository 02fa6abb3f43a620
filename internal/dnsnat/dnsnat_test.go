package dnsnat_test

import (
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/internal/dnsnat"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

var addr = netip.MustParseAddr("127.0.0.11")

// listen binds a UDP and a TCP socket on addr at random ports inside ns.
func listen(t *testing.T, ns *testutil.HostNS) (net.PacketConn, net.Listener) {
	t.Helper()
	var u net.PacketConn
	var l net.Listener
	err := ns.Do(func() error {
		var err error
		if u, err = net.ListenPacket("udp4", addr.String()+":0"); err != nil {
			return err
		}
		l, err = net.Listen("tcp4", addr.String()+":0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close(); l.Close() })
	return u, l
}

func ports(u net.PacketConn, l net.Listener) dnsnat.Ports {
	return dnsnat.Ports{UDP: uint16(u.LocalAddr().(*net.UDPAddr).Port), TCP: uint16(l.Addr().(*net.TCPAddr).Port)}
}

// TestRedirectCarriesTraffic sends a datagram and opens a connection to
// addr:53 inside the namespace: both reach the random ports, and the
// answer comes back from port 53.
func TestRedirectCarriesTraffic(t *testing.T) {
	ns := testutil.NewHostNS(t)
	u, l := listen(t, ns)
	if err := dnsnat.Set(ns.NS, addr, ports(u, l)); err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	if err := ns.Do(func() (err error) { c, err = net.Dial("udp4", addr.String()+":53"); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("query")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	_ = u.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, from, err := u.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "query" {
		t.Fatalf("resolver socket got %q, %v", buf[:n], err)
	}
	if _, err := u.WriteTo([]byte("answer"), from); err != nil {
		t.Fatal(err)
	}
	// A connected UDP socket only accepts datagrams from 127.0.0.11:53, so
	// reading the answer proves the source was rewritten back.
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, err = c.Read(buf); err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("client got %q, %v", buf[:n], err)
	}

	accepted := make(chan error, 1)
	go func() {
		s, err := l.Accept()
		if err == nil {
			s.Close()
		}
		accepted <- err
	}()
	var tc net.Conn
	if err := ns.Do(func() (err error) { tc, err = net.DialTimeout("tcp4", addr.String()+":53", 2*time.Second); return err }); err != nil {
		t.Fatalf("tcp to %s:53: %v", addr, err)
	}
	tc.Close()
	if err := <-accepted; err != nil {
		t.Fatal(err)
	}
}

// TestSetReplacesAndRemoveIsIdempotent: a second Set leaves one redirect
// (to the new ports), and Remove succeeds twice.
func TestSetReplacesAndRemoveIsIdempotent(t *testing.T) {
	ns := testutil.NewHostNS(t)
	if _, ok, err := dnsnat.Get(ns.NS); ok || err != nil {
		t.Fatalf("fresh namespace: ok=%v err=%v", ok, err)
	}
	first, second := dnsnat.Ports{UDP: 1001, TCP: 1002}, dnsnat.Ports{UDP: 2001, TCP: 2002}
	for _, p := range []dnsnat.Ports{first, second} {
		if err := dnsnat.Set(ns.NS, addr, p); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := dnsnat.Get(ns.NS)
	if err != nil || !ok || got != second {
		t.Fatalf("Get = %+v, %v, %v; want %+v", got, ok, err, second)
	}
	if n, err := dnsnat.Rules(ns.NS); err != nil || n != 4 {
		t.Fatalf("%d rules in %s after two Sets, want 4", n, dnsnat.Table)
	}
	for i := 0; i < 2; i++ {
		if err := dnsnat.Remove(ns.NS); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, ok, err := dnsnat.Get(ns.NS); ok || err != nil {
		t.Fatalf("after Remove: ok=%v err=%v", ok, err)
	}
}

func TestSetRejectsBadInput(t *testing.T) {
	ns := testutil.NewHostNS(t)
	for _, tc := range []struct {
		a netip.Addr
		p dnsnat.Ports
	}{{netip.MustParseAddr("::1"), dnsnat.Ports{UDP: 1, TCP: 2}}, {addr, dnsnat.Ports{UDP: 1}}} {
		if err := dnsnat.Set(ns.NS, tc.a, tc.p); !types.IsBadRequest(err) {
			t.Errorf("Set(%s, %+v) = %v, want a BadRequest error", tc.a, tc.p, err)
		}
	}
}

// BenchmarkSetFresh measures installing the redirect in a new namespace,
// the cost a sandbox's first join pays (an iptables-restore doing the same
// took 2-3 ms).
func BenchmarkSetFresh(b *testing.B) {
	testutil.RequireRoot(b)
	dir := b.TempDir()
	p := dnsnat.Ports{UDP: 40000, TCP: 40001}
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(dir, "ns")
		ns, err := netnsutil.New(path)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		err = dnsnat.Set(ns, addr, p)
		b.StopTimer()
		ns.Close()
		if rerr := netnsutil.Remove(path); err == nil {
			err = rerr
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkSetReplace measures replacing a redirect that is there (a
// restored namespace whose recorded ports could not be bound again): the
// deleting transaction is what costs.
func BenchmarkSetReplace(b *testing.B) {
	ns := testutil.NewHostNS(b)
	p := dnsnat.Ports{UDP: 40000, TCP: 40001}
	for b.Loop() {
		if err := dnsnat.Set(ns.NS, addr, p); err != nil {
			b.Fatal(err)
		}
	}
}

// Intact tells a whole redirect to the given ports from one that is
// missing, partly flushed or leads elsewhere.
func TestIntact(t *testing.T) {
	ns := testutil.NewHostNS(t)
	p := dnsnat.Ports{UDP: 40001, TCP: 40002}
	check := func(want bool, what string) {
		t.Helper()
		if got, err := dnsnat.Intact(ns.NS, p); err != nil || got != want {
			t.Errorf("%s: intact %v, %v; want %v", what, got, err, want)
		}
	}
	check(false, "no redirect")
	if err := dnsnat.Set(ns.NS, addr, p); err != nil {
		t.Fatal(err)
	}
	check(true, "after Set")
	if ok, err := dnsnat.Intact(ns.NS, dnsnat.Ports{UDP: 1, TCP: 2}); err != nil || ok {
		t.Errorf("redirect to other ports: intact %v, %v", ok, err)
	}
	var out []byte
	if err := ns.Do(func() (err error) {
		out, err = exec.Command("nft", "flush", "chain", "ip", dnsnat.Table, dnsnat.PostroutingChn).CombinedOutput()
		return err
	}); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	check(false, "postrouting chain flushed")
	if err := dnsnat.Set(ns.NS, addr, p); err != nil {
		t.Fatal(err)
	}
	check(true, "after Set again")
}
