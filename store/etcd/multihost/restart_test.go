package multihost_test

import (
	"fmt"
	"testing"

	"github.com/opencnm/libnetwork/internal/testrig"
)

// A host restarted without being told its container lives on (no
// OptionActiveSandboxes) drops that container, and with it the network's
// data plane on that host: its last local endpoint is gone. Nothing of it
// outlives the network either (the test's temp dir would not come off: a
// namespace left mounted there is busy).
func TestRestartDropsDataPlaneOfUnkeptContainers(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2, testrig.ClusterOptions{})
	nw := overlay(t, l.host(1), "rs", "10.98.0.0/24", "")
	a := run(t, l.host(1), "rs", "a")
	run(t, l.host(2), "rs", "b")
	h := l.host(2)
	if vxs := h.VXLANs(t); len(vxs) != 1 {
		t.Fatalf("%s with a container before the restart: VXLAN devices %+v, want one", h.ID, vxs)
	}
	h.Restart()
	eventually(t, settle, h.ID+" without containers has no data plane", func() error {
		if vxs := h.VXLANs(t); len(vxs) != 0 {
			return fmt.Errorf("VXLAN devices %+v", vxs)
		}
		return nil
	})
	c := run(t, h, "rs", "c")
	reach(t, a, c)
	c.stop(t)
	a.stop(t)
	if err := nw.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, h := range l.Hosts {
		if vxs := h.VXLANs(t); len(vxs) != 0 {
			t.Errorf("%s after the network's delete: VXLAN devices %+v", h.ID, vxs)
		}
	}
}
