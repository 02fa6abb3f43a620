package multihost_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// Local networks never touch etcd: with the store killed, a host's
// controller restarts at once (New does not wait for the store) and a
// bridge network on it is made, joined and carries traffic; the other
// hosts' local networks go on too.
func TestLocalNetworkWithEtcdStopped(t *testing.T) {
	t.Parallel()
	// A store wait would take KVTimeout: far above the bound New is held to.
	l := newLab(t, 2, testrig.ClusterOptions{KVTimeout: 30 * time.Second})
	h2 := l.host(2)
	before := testrig.BridgeNet(t, h2.Controller(), "before", "br-before", "10.81.0.0/24")
	a := localCtr(t, h2, before, "a")
	l.etcd.Kill()

	h1 := l.host(1)
	h1.Stop()
	start := time.Now()
	c := h1.Start()
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("New with etcd down took %v: it waited for the store", took)
	}
	nw := testrig.BridgeNet(t, c, "local", "br-local", "10.80.0.0/24")
	x, y := localCtr(t, h1, nw, "x"), localCtr(t, h1, nw, "y")
	reach(t, x, y)
	reach(t, y, x)
	b := localCtr(t, h2, before, "b")
	reach(t, a, b)
	// Teardown needs no store either: the cluster's cleanup deletes these
	// networks with etcd still down.
}

// localCtr is run on a network given by value (a bridge network exists
// on its host only).
func localCtr(t *testing.T, h *testrig.Host, nw *libnetwork.Network, name string) *ctr {
	t.Helper()
	ep, sb := testrig.JoinNew(t, h.Controller(), nw, name)
	c := &ctr{name: name, h: h, ep: ep, sb: sb}
	c.ns, c.nl = testrig.SandboxNS(t, sb)
	c.v4, _ = netip.AddrFromSlice(ep.Info().Iface().Address().IP.To4())
	return c
}

// The rig over etcd: every host's controller starts against the real
// store and local networks work on each.
func TestClusterOverEtcd(t *testing.T) {
	t.Parallel()
	l := newLab(t, 3, testrig.ClusterOptions{})
	var cs []*ctr
	for _, h := range l.Hosts {
		nw := testrig.BridgeNet(t, h.Controller(), "local", "br-local", "10.82.0.0/24")
		cs = append(cs, localCtr(t, h, nw, "a-"+h.ID), localCtr(t, h, nw, "b-"+h.ID))
	}
	for i := 0; i < len(cs); i += 2 {
		reach(t, cs[i], cs[i+1])
	}
	eventually(t, settle, "every host's session in etcd", func() error {
		hs, err := l.host(1).Controller().ClusterHosts()
		if err != nil || len(hs) != len(l.Hosts) {
			return fmt.Errorf("ClusterHosts: %d hosts, %v; want %d", len(hs), err, len(l.Hosts))
		}
		return nil
	})
}
