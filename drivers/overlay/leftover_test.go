package overlay

import (
	"testing"

	"github.com/opencnm/libnetwork/drivers/overlay/internal/ovlab"
)

// restartedWithoutJoin stops host 1's driver with a joined endpoint (the
// kernel keeps the data plane), starts a new one on its directory and
// gives it the network back but not the join: its container did not
// survive the restart.
func restartedWithoutJoin(t *testing.T) (*rig, *Driver) {
	t.Helper()
	r := newRig(t, 1, 1500, nil, nil)
	a := r.endpoint(1, 1)
	r.join(a)
	old := r.hosts[0].d
	ovlab.Must(t, old.Close())
	old.mu.Lock()
	old.networks = map[string]*network{}
	old.mu.Unlock()
	d := newHostDriverIn(t, r.hosts[0].Host, old.dir, nil)
	ovlab.Must(t, d.CreateNetwork(netRequest(testNet, 4097)))
	if !exists(nsFile(d, testNet)) {
		t.Fatal("the previous run's data plane is not there to start with")
	}
	return r, d
}

// The garbage collection after a restore removes the data plane of a live
// network whose joins were not restored; a join builds a new one.
func TestCollectGarbageRemovesUnrestoredDataPlane(t *testing.T) {
	r, d := restartedWithoutJoin(t)
	ovlab.Must(t, d.CollectGarbage(map[string]bool{testNet: true}, map[string]bool{}))
	if exists(nsFile(d, testNet)) {
		t.Fatal("the data plane no join took back is still mounted")
	}
	r.hosts[0].d = d
	b := r.endpoint(1, 2)
	r.join(b)
	if !exists(nsFile(d, testNet)) {
		t.Fatal("a join after the collection built no data plane")
	}
}

// Deleting such a network removes the data plane the driver never took
// back.
func TestDeleteNetworkRemovesUnrestoredDataPlane(t *testing.T) {
	_, d := restartedWithoutJoin(t)
	ovlab.Must(t, d.DeleteNetwork(testNet))
	if exists(nsFile(d, testNet)) {
		t.Fatal("DeleteNetwork left the previous run's data plane")
	}
}
