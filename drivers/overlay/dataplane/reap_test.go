package dataplane

import (
	"errors"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/drivers/internal/linkreap"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// reapBound is how long the reaper may take on its own schedule
// (linkreap.MaxAge at most, plus the deletes) on a loaded machine.
const reapBound = 20 * time.Second

// holdReaper makes the reaper's deletes wait until release is called.
func holdReaper(r *linkreap.Reaper) (release func()) {
	gate := make(chan struct{})
	r.WrapDelete(func(real func() error) func() error {
		return func() error { <-gate; return real() }
	})
	return func() { close(gate) }
}

// failReaper makes the reaper's deletes fail.
func failReaper(r *linkreap.Reaper) {
	r.WrapDelete(func(func() error) func() error {
		return func() error { return errors.New("held") }
	})
}

// awaitReaped waits, within reapBound, until nothing waits for n's
// reaper, without flushing it.
func awaitReaped(t testing.TB, n *Network) {
	t.Helper()
	deadline := time.Now().Add(reapBound)
	for n.reap.Pending() {
		if time.Now().After(deadline) {
			t.Fatalf("detached veths still waiting after %v", reapBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hasLink reports whether h's namespace has a link called name.
func hasLink(t testing.TB, h *netlink.Handle, name string) bool {
	t.Helper()
	return slices.Contains(links(t, h), name)
}

// crash drops n's handles as a killed process would: nothing of the
// kernel changes, what waits for the reaper stays in reapGroup.
func crash(n *Network) {
	failReaper(n.reap)
	_ = n.reap.Close()
	n.release()
}

// Detach returns with the endpoint cut off in both directions while its
// veth still waits; the reaper then deletes it on its own.
func TestDetachCutsOffThenReaps(t *testing.T) {
	l := newLab(t, 1, 1500, false)
	l.networks(0)
	n := l.hosts[0].net
	c1, c2 := l.container(1, 1), l.container(1, 2)
	must(t, udp(c1, c2, false, 64, 10*time.Second, false))

	release := holdReaper(n.reap)
	must(t, n.Detach(c2.peer.ID))
	host := hostVethName(c2.peer.ID)
	l2, err := n.nl.LinkByName(host)
	must(t, err)
	if a := l2.Attrs(); a.Group != reapGroup || a.OperState == netlink.OperUp || a.RawFlags&1 != 0 {
		t.Fatalf("detached bridge end: group %#x, flags %#x, oper %v; want group %#x and down", a.Group, a.RawFlags, a.OperState, reapGroup)
	}
	if !hasLink(t, c2.ns.Netlink, "eth0") {
		t.Fatal("the container's end went with Detach: the test holds the reaper, so it should wait")
	}
	if !blocked(c1, c2, false) {
		t.Error("a detached endpoint still receives frames")
	}
	if !blocked(c2, c1, false) {
		t.Error("a detached endpoint still sends frames")
	}
	release()
	awaitReaped(t, n)
	if hasLink(t, n.nl, host) || hasLink(t, c2.ns.Netlink, "eth0") {
		t.Fatalf("after the reaper: network links %q, container links %q", links(t, n.nl), links(t, c2.ns.Netlink))
	}
	must(t, tcp(c1, c1, false))
}

// Attaching again with the names of a veth that waits for the reaper
// flushes it instead of colliding.
func TestAttachAfterDetachFlushes(t *testing.T) {
	l := newLab(t, 1, 1500, false)
	l.networks(0)
	n := l.hosts[0].net
	c := l.container(1, 1)
	// The reaper deletes only once someone waits in flush, so the
	// second Attach meets the waiting veth.
	n.reap.WrapDelete(func(real func() error) func() error {
		return func() error {
			for {
				if n.reap.Urgent() {
					return real()
				}
				time.Sleep(time.Millisecond)
			}
		}
	})
	must(t, n.Detach(c.peer.ID))
	p, err := n.Attach(EndpointConfig{ID: c.peer.ID, NS: c.ns.NS, IfName: "eth0",
		IPv4: netip.MustParsePrefix("10.0.0.1/24"), IPv6: netip.MustParsePrefix("fd00:db8::1/64")})
	must(t, err)
	if p.IPv4 != c.peer.IPv4 {
		t.Fatalf("re-attached peer %+v", p)
	}
	c2 := l.container(1, 2)
	must(t, tcp(c2, c, false))
}

// Delete deletes what waits for the reaper before it returns, the
// containers' ends included.
func TestDeleteFlushesReaper(t *testing.T) {
	l := newLab(t, 1, 1500, false)
	h := l.hosts[0]
	n, err := Create(l.config(h, 0))
	must(t, err)
	c := testutil.NewNamedNS(t, "c1")
	_, err = n.Attach(EndpointConfig{ID: "e1", NS: c.NS, IfName: "eth0", IPv4: prefix("10.0.0.1/24")})
	must(t, err)
	must(t, n.Detach("e1"))
	must(t, n.Delete())
	if got := links(t, c.Netlink); !slices.Equal(got, []string{"lo"}) {
		t.Fatalf("container links after Delete %q", got)
	}
	if _, err := os.Stat(n.NSPath()); !os.IsNotExist(err) {
		t.Fatalf("namespace file after Delete: %v", err)
	}
}

// A crash with veths waiting for the reaper: Adopt hands them to the new
// reaper, which deletes them, and refuses to adopt their endpoints;
// RemoveLeftover deletes them before it returns.
func TestCrashLeftoversReaped(t *testing.T) {
	for _, how := range []string{"adopt", "remove"} {
		t.Run(how, func(t *testing.T) {
			l := newLab(t, 1, 1500, false)
			h := l.hosts[0]
			cfg := l.config(h, 0)
			n, err := Create(cfg)
			must(t, err)
			c1, c2 := testutil.NewNamedNS(t, "c1"), testutil.NewNamedNS(t, "c2")
			p1, err := n.Attach(EndpointConfig{ID: "e1", NS: c1.NS, IfName: "eth0", IPv4: prefix("10.0.0.1/24")})
			must(t, err)
			p2, err := n.Attach(EndpointConfig{ID: "e2", NS: c2.NS, IfName: "eth0", IPv4: prefix("10.0.0.2/24")})
			must(t, err)
			failReaper(n.reap)
			must(t, n.Detach("e2"))
			crash(n)
			if !hasLink(t, c2.Netlink, "eth0") {
				t.Fatal("the crash should have left e2's veth")
			}
			if how == "remove" {
				must(t, RemoveLeftover(cfg.NSPath))
				if got := links(t, c2.Netlink); !slices.Equal(got, []string{"lo"}) {
					t.Fatalf("container links after RemoveLeftover %q", got)
				}
				if _, err := os.Stat(cfg.NSPath); !os.IsNotExist(err) {
					t.Fatalf("namespace file after RemoveLeftover: %v", err)
				}
				return
			}
			a, err := Adopt(cfg)
			must(t, err)
			defer func() { must(t, a.Delete()) }()
			_, err = a.AdoptEndpoint(EndpointConfig{ID: "e2", IfName: "eth0", MAC: p2.MAC, IPv4: prefix("10.0.0.2/24")})
			if !types.IsForbidden(err) {
				t.Errorf("adopting a detached endpoint: %v, want Forbidden", err)
			}
			_, err = a.AdoptEndpoint(EndpointConfig{ID: "e1", IfName: "eth0", MAC: p1.MAC, IPv4: prefix("10.0.0.1/24")})
			must(t, err)
			awaitReaped(t, a)
			if got := links(t, c2.Netlink); !slices.Equal(got, []string{"lo"}) {
				t.Fatalf("container links after the adopted reaper ran %q", got)
			}
			if !hasLink(t, c1.Netlink, "eth0") {
				t.Fatal("the reaper took the live endpoint's veth")
			}
		})
	}
}
