package overlay

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/overlay/internal/ovlab"
	"github.com/opencnm/libnetwork/osl"
)

// retireBound is how long a background deletion may take on a loaded
// machine.
const retireBound = 20 * time.Second

// awaitRetired waits, within retireBound, until network nid of d has no
// background deletion pending or running.
func awaitRetired(t *testing.T, d *Driver, nid string) {
	t.Helper()
	n := d.network(nid)
	if n == nil {
		return
	}
	deadline := time.Now().Add(retireBound)
	for {
		n.mu.Lock()
		busy := n.retiring || n.deleting
		n.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("network %s: background deletion still pending after %v", nid, retireBound)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inode identifies the namespace mounted at path.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	ovlab.Must(t, unix.Stat(path, &st))
	return st.Ino
}

// busyMount mounts path on itself once more: an unmount then takes the
// top mount and the file, still a mount point, cannot be removed (EBUSY).
func busyMount(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mount(path, path, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for unix.Unmount(path, unix.MNT_DETACH) == nil {
		}
	})
}

// When the background deletion after the last Leave fails, the data
// plane is kept as dead and retried: by the next Join before it builds
// anew (which fails, joining nothing, while the retry fails too), and by
// DeleteNetwork. Each extra mount on the namespace file fails one
// deletion (each unmounts one).
func TestLastLeaveDeletionRetried(t *testing.T) {
	r := newRig(t, 1, 1500, nil, nil)
	a := r.endpoint(1, 1)
	r.announce(a)
	d := r.hosts[0].d
	path := nsFile(d, testNet)
	r.join(a)
	busyMount(t, path)
	busyMount(t, path)
	ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
	awaitRetired(t, d, testNet)
	if !exists(path) {
		t.Fatal("the data plane is gone although its deletion failed")
	}
	if d.network(testNet).dead == nil {
		t.Fatal("the failed deletion is not kept for a retry")
	}
	if _, err := d.Join(newJoinRequest(t, a)); err == nil {
		t.Fatal("Join succeeded over a data plane that could not be deleted")
	}
	if n := d.network(testNet); n.endpoints[a.peer.EndpointID].joined || n.dp != nil {
		t.Fatal("a failed Join left the endpoint joined or a data plane")
	}
	ino := inode(t, path)
	r.join(a)
	if d.network(testNet).dead != nil {
		t.Fatal("the Join did not retry the failed deletion")
	}
	if inode(t, path) == ino {
		t.Fatal("the Join did not build a new data plane")
	}
	ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
	awaitRetired(t, d, testNet)
	if exists(path) {
		t.Fatal("the data plane outlived the last local endpoint")
	}

	r.join(a)
	busyMount(t, path)
	ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
	awaitRetired(t, d, testNet)
	if d.network(testNet).dead == nil {
		t.Fatal("the failed deletion is not kept for a retry")
	}
	ovlab.Must(t, d.DeleteNetwork(testNet))
	if exists(path) {
		t.Fatal("DeleteNetwork left the data plane")
	}
}

// newJoinRequest is a Join of c into a new sandbox namespace.
func newJoinRequest(t *testing.T, c *ctr) driverapi.JoinRequest {
	t.Helper()
	sb, err := osl.New(filepath.Join(t.TempDir(), c.name+".sandbox2"))
	ovlab.Must(t, err)
	t.Cleanup(func() { _ = sb.Destroy() })
	return driverapi.JoinRequest{NetworkID: testNet, EndpointID: c.peer.EndpointID, SandboxKey: sb.Key()}
}

// A Join arriving before the background deletion begins takes the data
// plane back as it is; one arriving while it runs waits for it to end
// and builds a new one.
func TestJoinDuringPendingDelete(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		r := newRig(t, 2, 1500, nil, nil)
		a, b := r.endpoint(1, 1), r.endpoint(2, 2)
		r.announce(a, b)
		d := r.hosts[0].d
		gate := make(chan struct{})
		d.hooks.before = func() { <-gate }
		r.join(a)
		r.join(b)
		path := nsFile(d, testNet)
		ino := inode(t, path)
		ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
		r.join(a)
		close(gate)
		awaitRetired(t, d, testNet)
		if !exists(path) || inode(t, path) != ino {
			t.Fatal("the Join did not take the pending data plane back")
		}
		ovlab.Must(t, tcp(a, b, false))
	})
	t.Run("during", func(t *testing.T) {
		r := newRig(t, 2, 1500, nil, nil)
		a, b := r.endpoint(1, 1), r.endpoint(2, 2)
		r.announce(a, b)
		d := r.hosts[0].d
		began, gate := make(chan struct{}), make(chan struct{})
		d.hooks.during = func() { close(began); <-gate }
		r.join(a)
		r.join(b)
		path := nsFile(d, testNet)
		ino := inode(t, path)
		ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
		<-began
		req := newJoinRequest(t, a)
		joined := make(chan error, 1)
		go func() {
			_, err := d.Join(req)
			joined <- err
		}()
		select {
		case err := <-joined:
			t.Fatalf("the Join returned (%v) while the deletion was held", err)
		case <-time.After(50 * time.Millisecond): // lets it reach the wait; passing sooner proves nothing, never fails
		}
		close(gate)
		ovlab.Must(t, <-joined)
		if inode(t, path) == ino {
			t.Fatal("the Join reused the data plane being deleted")
		}
	})
}

// Close deletes a data plane whose background deletion is pending, and
// garbage collection one whose deletion failed.
func TestCloseAndGCDeletePending(t *testing.T) {
	r := newRig(t, 1, 1500, nil, nil)
	a := r.endpoint(1, 1)
	r.announce(a)
	d := r.hosts[0].d
	path := nsFile(d, testNet)

	r.join(a)
	busyMount(t, path)
	ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
	awaitRetired(t, d, testNet)
	if d.network(testNet).dead == nil {
		t.Fatal("the failed deletion is not kept for a retry")
	}
	ovlab.Must(t, d.CollectGarbage(map[string]bool{testNet: true}, nil))
	if exists(path) {
		t.Fatal("garbage collection left a data plane whose deletion failed")
	}

	r.join(a)
	gate := make(chan struct{})
	d.hooks.before = func() { <-gate }
	ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	// Close deletes the pending data plane itself, then waits for the
	// goroutine, which finds nothing left to do.
	for exists(path) {
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	ovlab.Must(t, <-closed)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Close left the pending data plane: %v", err)
	}
}
