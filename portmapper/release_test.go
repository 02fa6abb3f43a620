package portmapper_test

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/portmapper"
	"github.com/opencnm/libnetwork/types"
)

// Release takes the DNAT out at once; ports stay reserved until the worker
// has removed any remaining rules of every released endpoint in one
// restore per family, flushed conntrack, and only then freed the sockets.
func TestReleaseBatchesAndHoldsPorts(t *testing.T) {
	r := newRig(t)
	t.Cleanup(func() { _ = r.pm.Close() })
	ep2 := portmapper.Endpoint{ID: "ep2", Bridge: "br-n1", IPv4: net.ParseIP("172.18.0.3").To4()}
	if _, err := r.pm.MapPorts(ep1, []types.PortBinding{{Proto: types.UDP, Port: 53, HostPort: 5353}}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pm.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}); err != nil {
		t.Fatal(err)
	}
	if err := r.pm.Flush(); err != nil { // the map-time conntrack flush
		t.Fatal(err)
	}
	held := r.res.count()
	before := r.ipt.Restores()
	r.ct.mu.Lock()
	r.ct.flows = nil
	r.ct.mu.Unlock()
	for _, id := range []string{"ep1", "ep2"} {
		if err := r.pm.Release(id); err != nil {
			t.Fatal(err)
		}
		if m := r.pm.Mapped(id); m != nil {
			t.Errorf("Mapped(%s) after Release = %v", id, m)
		}
	}
	// The DNAT goes at once, before the worker runs: no new connection
	// reaches the old containers' addresses.
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		if es, err := r.maps.List(fam); err != nil || len(es) != 0 {
			t.Errorf("%s port map elements right after Release: %v, %v", fam, es, err)
		}
	}
	if err := r.pm.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, r.ipt, r.maps, firewall.IPv4, firewall.IPv6); got != r.base {
		t.Errorf("release left rules:\n%s", got)
	}
	if r.res.count() != 0 || held != 3 {
		t.Errorf("ports held: %d before, %d after release; want 3, 0", held, r.res.count())
	}
	// ep1 is dual-stack: one restore per family for both endpoints, at most.
	if d := r.ipt.Restores() - before; d > 2 {
		t.Errorf("releasing two endpoints took %d restores:\n%s", d, strings.Join(r.ipt.Scripts()[before:], "---\n"))
	}
	r.ct.mu.Lock()
	flows := append([]portmapper.Flow(nil), r.ct.flows...)
	r.ct.mu.Unlock()
	if len(flows) != 2 || flows[0].HostPort != 5353 {
		t.Errorf("conntrack flushed %+v, want the two families of udp 5353", flows)
	}
	if err := r.pm.Release("ep1"); err != nil {
		t.Errorf("releasing again: %v", err)
	}
}

// A fixed port still being released is waited for, not refused; a chosen
// port skips it; the same endpoint can map again after its release.
func TestMapWaitsForPendingRelease(t *testing.T) {
	r := newRig(t)
	t.Cleanup(func() { _ = r.pm.Close() })
	ep2 := portmapper.Endpoint{ID: "ep2", Bridge: "br-n1", IPv4: net.ParseIP("172.18.0.3").To4()}
	if _, err := r.pm.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 40000}}); err != nil {
		t.Fatal(err)
	}
	if err := r.pm.Release("ep2"); err != nil {
		t.Fatal(err)
	}
	// Chosen from 40000-40009 while 40000 is still pending: skips it.
	got, err := r.pm.MapPorts(ep1, []types.PortBinding{{Proto: types.TCP, Port: 80}})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].HostPort == 40000 {
		t.Errorf("a port still being released was handed out: %v", got)
	}
	// The same endpoint, asking for the same fixed port: waits, then gets it.
	got, err = r.pm.MapPorts(ep2, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 40000}})
	if err != nil || got[0].HostPort != 40000 {
		t.Fatalf("re-map after release: %v %v", got, err)
	}
	if err := r.pm.Release("ep2"); err != nil {
		t.Fatal(err)
	}
	ep3 := portmapper.Endpoint{ID: "ep3", Bridge: "br-n1", IPv4: net.ParseIP("172.18.0.4").To4()}
	if _, err := r.pm.MapPorts(ep3, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 40000}}); err != nil {
		t.Fatalf("fixed port pending release: %v", err)
	}
	if err := r.pm.Close(); err != nil {
		t.Fatal(err)
	}
	if r.res.count() != 0 {
		t.Errorf("Close left %d ports held", r.res.count())
	}
	if err := r.pm.Release("ep3"); err != nil {
		t.Errorf("Release after Close (nothing mapped any more): %v", err)
	}
}

// Close waits for a Release still removing its DNAT: the host port is not
// let go while traffic to it could still be DNATed to the container.
func TestCloseWaitsForReleaseInFlight(t *testing.T) {
	r := newRig(t)
	if _, err := r.pm.MapPorts(ep1, []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}); err != nil {
		t.Fatal(err)
	}
	held := r.res.count()
	entered, unblock := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r.maps.FailUpdate(func(fam firewall.Family, add, del []firewall.PortElem) error {
		if len(del) > 0 {
			once.Do(func() { close(entered) })
			<-unblock
		}
		return nil
	})
	released := make(chan error, 1)
	go func() { released <- r.pm.Release("ep1") }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- r.pm.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a Release was still removing its DNAT", err)
	case <-time.After(50 * time.Millisecond):
	}
	if n := r.res.count(); n != held {
		t.Fatalf("%d ports held while the DNAT is still there, want %d", n, held)
	}
	close(unblock)
	if err := <-released; err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if n := r.res.count(); n != 0 {
		t.Fatalf("%d ports held after Close", n)
	}
}
