package libnetwork_test

import (
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// A network deleted and made again with the same explicit ID appears on a
// host that saw the delete.
func TestGlobalNetworkRecreatedWithSameIDAppears(t *testing.T) {
	_, h := newGCluster(t, 2)
	a, b := h[0], h[1]
	const id = "0123456789abcdef0123456789abcdef"
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "again", id))
	eventually(t, "the network on host b", func() bool { _, err := b.c.NetworkByID(id); return err == nil })
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	gone := func() bool {
		_, errA := a.c.NetworkByID(id)
		_, errB := b.c.NetworkByID(id)
		return errA != nil && errB != nil
	}
	eventually(t, "the network gone on both hosts", gone)
	testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "again", id))
	eventually(t, "the network made again on host b", func() bool {
		for _, n := range b.c.Networks() {
			if n.ID() == id {
				return true
			}
		}
		return false
	})
	if _, err := b.c.NetworkByName("again"); err != nil {
		t.Fatalf("network made again, by name on host b: %v", err)
	}
}
