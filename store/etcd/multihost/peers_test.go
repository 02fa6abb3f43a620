package multihost_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork/internal/testrig"
)

// The kernel's static forwarding follows the cluster: every host with a
// container on the network holds exactly one FDB entry (MAC → its host's
// VTEP) and permanent neighbour entries for each container on another
// host, and nothing else. A leave removes the leaver's entries on every
// host while the entries of another container on the same host stay (and
// carry traffic); a host whose last container left has no data plane.
func TestPeerEntriesFollowLeaves(t *testing.T) {
	t.Parallel()
	l := newLab(t, 3, testrig.ClusterOptions{})
	overlay(t, l.host(1), "fdb", "10.97.0.0/24", "fd00:97::/64")
	a1 := run(t, l.host(1), "fdb", "a1")
	a2 := run(t, l.host(1), "fdb", "a2")
	b := run(t, l.host(2), "fdb", "b")
	c := run(t, l.host(3), "fdb", "c")
	expectPeers(t, l, a1, a2, b, c)
	reach(t, b, a1, a2)

	a1.stop(t)
	expectPeers(t, l, a2, b, c)
	reach(t, b, a2)
	reach(t, c, a2)

	a2.stop(t)
	expectPeers(t, l, b, c)
	reach(t, b, c)

	c.stop(t)
	expectPeers(t, l, b)
}

// expectPeers waits until every host's kernel holds the entries the live
// containers call for: on a host with live containers, one VXLAN device
// whose FDB and neighbour entries are exactly those of the live
// containers on other hosts; on a host without, no VXLAN device.
func expectPeers(t *testing.T, l *lab, live ...*ctr) {
	t.Helper()
	for _, h := range l.Hosts {
		var local bool
		var fdb, neigh []string
		for _, c := range live {
			if c.h == h {
				local = true
				continue
			}
			fdb = append(fdb, fmt.Sprintf("%s dst %s", c.mac, c.h.VTEP))
			for _, ip := range []string{c.v4.String(), c.v6.String()} {
				if ip != "invalid IP" {
					neigh = append(neigh, fmt.Sprintf("%s lladdr %s", ip, c.mac))
				}
			}
		}
		slices.Sort(fdb)
		slices.Sort(neigh)
		eventually(t, settle, h.ID+"'s VXLAN entries", func() error {
			vxs := h.VXLANs(t)
			if !local {
				if len(vxs) != 0 {
					return fmt.Errorf("no local container, yet VXLAN devices %+v", vxs)
				}
				return nil
			}
			if len(vxs) != 1 {
				return fmt.Errorf("VXLAN devices %+v, want one", vxs)
			}
			if !slices.Equal(vxs[0].FDB, fdb) || !slices.Equal(vxs[0].Neigh, neigh) {
				return fmt.Errorf("FDB %v neighbours %v, want FDB %v neighbours %v", vxs[0].FDB, vxs[0].Neigh, fdb, neigh)
			}
			return nil
		})
	}
}
