package faults_test

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// A container: an endpoint joined to a sandbox of its own.
type ctr struct {
	ep *libnetwork.Endpoint
	sb *libnetwork.Sandbox
	ns *netnsutil.NS
	nl *netlink.Handle
	ip netip.Addr
}

// mac is the endpoint's MAC address as FDB entries print it.
func (c *ctr) mac() string { return strings.ToLower(c.ep.Info().Iface().MacAddress().String()) }

// link is the container's interface on its network (found by its MAC).
func (c *ctr) link(t *testing.T) netlink.Link {
	t.Helper()
	links, err := c.nl.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if strings.EqualFold(l.Attrs().HardwareAddr.String(), c.mac()) {
			return l
		}
	}
	t.Fatalf("no interface with MAC %s in %s's sandbox", c.mac(), c.ep.Name())
	return nil
}

func run(t *testing.T, h *testrig.Host, net, name string, opts ...libnetwork.EndpointOption) *ctr {
	t.Helper()
	ep, err := netOn(t, h, net).CreateEndpoint(name, opts...)
	if err != nil {
		t.Fatalf("%s: creating endpoint %s: %v", h.ID, name, err)
	}
	sb, err := sandbox(h.Controller(), t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		t.Fatalf("%s: joining %s: %v", h.ID, name, err)
	}
	ns, nl := testrig.SandboxNS(t, sb)
	return &ctr{ep: ep, sb: sb, ns: ns, nl: nl, ip: addrOf(ep)}
}

// stream sends numbered UDP datagrams from c to d every few milliseconds
// until stopped, and counts what arrives.
type stream struct {
	sent, got atomic.Int64
	stop      chan struct{}
	done      chan struct{}
	srv, cli  *net.UDPConn
}

func startStream(t *testing.T, c, d *ctr) *stream {
	t.Helper()
	s := &stream{stop: make(chan struct{}), done: make(chan struct{})}
	if err := d.ns.Do(func() (err error) {
		s.srv, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(d.ip, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.ns.Do(func() (err error) {
		s.cli, err = net.DialUDP("udp4", nil, s.srv.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := s.srv.Read(buf); err != nil {
				return
			}
			s.got.Add(1)
		}
	}()
	go func() {
		defer close(s.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				// A send that fails (no route, no neighbour) is a
				// datagram lost as well.
				_, _ = s.cli.Write([]byte("x"))
				s.sent.Add(1)
			}
		}
	}()
	t.Cleanup(func() { s.halt(); s.srv.Close(); s.cli.Close() })
	return s
}

// halt stops sending and waits for the last datagrams to arrive (1 s at
// most); it returns how many were sent and how many arrived.
func (s *stream) halt() (sent, got int64) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	for deadline := time.Now().Add(time.Second); s.got.Load() < s.sent.Load() && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	return s.sent.Load(), s.got.Load()
}

// A controller restarted on its state within its lease keeps its
// endpoints and live sandboxes with no data-plane gap: a UDP stream
// across hosts, both ways, loses no datagram across the restart, and the
// store then holds exactly its local endpoints and peers, on the same
// lease.
func TestRestartWithinLeaseNoGap(t *testing.T) {
	l := newLab(t, 2)
	nw := overlay(t, l.host(1), "ov", "10.78.0.0/24")
	a := run(t, l.host(1), "ov", "a")
	b := run(t, l.host(2), "ov", "b")
	free, err := nw.CreateEndpoint("free")
	if err != nil {
		t.Fatal(err)
	}
	_ = free
	eventually(t, 10*time.Second, "host-1's store records", func() error { return storeMatches(t, l, "host-1", nw.ID(), nw) })
	before := l.keysOf(t, "host-1", nw.ID())
	hosts0, err := l.st.Hosts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	in, out := startStream(t, b, a), startStream(t, a, b)
	// Flowing before the restart.
	eventually(t, 5*time.Second, "the streams flowing", func() error {
		if in.got.Load() < 20 || out.got.Load() < 20 {
			return errString("not yet")
		}
		return nil
	})
	l.host(1).Stop()
	time.Sleep(200 * time.Millisecond) // a daemon's restart takes a while
	c, err := l.host(1).TryStart(config.OptionActiveSandboxes(map[string]any{a.sb.ID(): []libnetwork.SandboxOption(nil)}))
	if err != nil {
		t.Fatalf("host-1: New on its state: %v", err)
	}
	nw2, err := c.NetworkByName("ov")
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*faultTTL, "host-1's store records after the restart", func() error {
		return storeMatches(t, l, "host-1", nw.ID(), nw2)
	})
	time.Sleep(500 * time.Millisecond) // and it keeps flowing after it
	for _, s := range []struct {
		what string
		s    *stream
	}{{"host-2 → host-1", in}, {"host-1 → host-2", out}} {
		sent, got := s.s.halt()
		t.Logf("%s: %d datagrams sent across the restart, %d arrived", s.what, sent, got)
		if got != sent {
			t.Errorf("%s: %d of %d datagrams lost across the restart", s.what, sent-got, sent)
		}
	}
	after := l.keysOf(t, "host-1", nw.ID())
	if len(after.eps) != len(before.eps) || len(after.peers) != len(before.peers) {
		t.Errorf("store before the restart %s, after %s", before, after)
	}
	hosts1, err := l.st.Hosts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lease := func(hs []globalstore.Host) any {
		for _, h := range hs {
			if h.ID == "host-1" {
				return h.Lease
			}
		}
		return nil
	}
	if lease(hosts0) != lease(hosts1) {
		t.Errorf("host-1's lease %v before the restart, %v after: not resumed", lease(hosts0), lease(hosts1))
	}
}

type errString string

func (e errString) Error() string { return string(e) }
