package overlay

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/drivers/overlay/internal/ovlab"
)

// When the last Leave cannot delete the data plane, the endpoint stays
// joined: the Leave retried deletes it.
func TestLastLeaveRetried(t *testing.T) {
	r := newRig(t, 1, 1500, nil, nil)
	a := r.endpoint(1, 1)
	r.announce(a)
	d := r.hosts[0].d
	path := nsFile(d, testNet)
	r.join(a)
	// A second mount on the namespace file: the unmount takes the top
	// one, and the file, still a mount point, cannot be removed (EBUSY).
	if err := unix.Mount(path, path, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for unix.Unmount(path, unix.MNT_DETACH) == nil {
		}
	})
	if err := d.Leave(testNet, a.peer.EndpointID); err == nil {
		t.Fatal("Leave succeeded although the data plane could not be deleted")
	}
	if !exists(path) {
		t.Fatal("the data plane is gone although its deletion failed")
	}
	ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
	if exists(path) {
		t.Fatal("the Leave retried left the data plane")
	}
}
