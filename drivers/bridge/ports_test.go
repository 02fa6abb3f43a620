package bridge

import (
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/types"
)

// fakeReaper stands in for the reaper: flush "deletes" everything retired
// so far, unless stuck.
type fakeReaper struct {
	queued, reaped uint64
	flushes        int
	stuck          bool // flush deletes nothing (a failed group delete)
}

func (f *fakeReaper) retire(int) (uint64, error) { f.queued++; return f.queued, nil }
func (f *fakeReaper) reapedUpTo() uint64         { return f.reaped }
func (f *fakeReaper) close()                     {}
func (f *fakeReaper) flush() error {
	f.flushes++
	if !f.stuck {
		f.reaped = f.queued
	}
	return nil
}

// fullDriver is a driver with no kernel behind it whose network "n" has
// every port of its bridge taken by joined endpoints, and endpoint "new"
// waiting to join.
func fullDriver(t *testing.T) (*Driver, *fakeReaper, *network) {
	t.Helper()
	r := &fakeReaper{}
	n := &network{cfg: &networkConfig{ID: "n", BridgeName: "brtest"}, endpoints: map[string]*endpoint{}}
	n.endpoints["new"] = &endpoint{id: "new"}
	n.ports.inUse = MaxBridgePorts
	return &Driver{reaper: r, networks: map[string]*network{"n": n}}, r, n
}

func TestJoinOnFullBridgeIsForbidden(t *testing.T) {
	d, r, n := fullDriver(t)
	_, err := d.Join(driverapi.JoinRequest{NetworkID: "n", EndpointID: "new"})
	if !types.IsForbidden(err) {
		t.Fatalf("join on a full bridge: %v, want Forbidden", err)
	}
	for _, want := range []string{"brtest", "network n", "1023 ports"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if r.flushes != 1 {
		t.Errorf("the reaper was flushed %d times, want once before refusing", r.flushes)
	}
	if ep := n.endpoints["new"]; ep.busy || ep.hostIfIndex != 0 || n.ports.inUse != MaxBridgePorts {
		t.Errorf("a refused join changed state: busy=%v ifindex=%d ports=%d", ep.busy, ep.hostIfIndex, n.ports.inUse)
	}
}

// A port retired by a leave counts until the reaper deleted its veth; the
// join that needs it flushes the reaper and gets it.
func TestFullBridgeFlushesReaperForRetiredPort(t *testing.T) {
	d, r, n := fullDriver(t)
	ticket, _ := r.retire(0)
	n.ports.retire(ticket) // a leave: in use -1, waiting +1
	if got := n.ports.used(r.reapedUpTo()); got != MaxBridgePorts {
		t.Fatalf("ports used with one veth waiting for the reaper = %d, want %d", got, MaxBridgePorts)
	}
	gotN, ep, err := d.reservePort("n", "new")
	if err != nil {
		t.Fatalf("reserving the port a leave freed: %v", err)
	}
	if gotN != n || !ep.busy || n.ports.inUse != MaxBridgePorts || len(n.ports.retired) != 0 || r.flushes != 1 {
		t.Errorf("after reserving: busy=%v inUse=%d retired=%v flushes=%d", ep.busy, n.ports.inUse, n.ports.retired, r.flushes)
	}

	// A reaper that cannot delete leaves the bridge full: Forbidden.
	d2, r2, n2 := fullDriver(t)
	r2.stuck = true
	ticket, _ = r2.retire(0)
	n2.ports.retire(ticket)
	if _, _, err := d2.reservePort("n", "new"); !types.IsForbidden(err) {
		t.Fatalf("reserving with the reaper stuck: %v, want Forbidden", err)
	}
}

func TestPortCountTicketsOutOfOrder(t *testing.T) {
	p := portCount{inUse: 3}
	p.retire(5)
	p.retire(4)
	p.retire(0) // the veth was already gone: free at once
	if got := p.used(0); got != 2 {
		t.Fatalf("used = %d, want 2", got)
	}
	if got := p.used(4); got != 1 {
		t.Fatalf("used after ticket 4 = %d, want 1", got)
	}
	if got := p.used(5); got != 0 || len(p.retired) != 0 {
		t.Fatalf("used after ticket 5 = %d (%v), want 0", got, p.retired)
	}
}
