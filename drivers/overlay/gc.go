package overlay

import (
	"errors"
	"os"
	"path/filepath"

	"github.com/opencnm/libnetwork/drivers/overlay/dataplane"
	"github.com/opencnm/libnetwork/types"
)

// CollectGarbage removes the data planes of networks not in liveNetworks:
// namespaces under the driver's directory (each named by its network's
// ID) that a crash left, and the data plane of a network the driver still
// holds but the controller no longer has (its endpoints are then not
// joined); and the namespace of a live network the driver holds no data
// plane for (an earlier run's, none of whose joins was restored). The caller makes sure no join is in progress.
func (d *Driver) CollectGarbage(liveNetworks, _ map[string]bool) error {
	entries, err := os.ReadDir(d.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return types.InternalErrorf("overlay garbage collection: %w", err)
	}
	var errs []error
	for _, e := range entries {
		nid := e.Name()
		if liveNetworks[nid] {
			if n := d.network(nid); n != nil {
				if err := d.removeUnheld(n); err != nil {
					errs = append(errs, types.Wrapf(err, "overlay garbage collection of network %s", nid))
				}
			}
			continue
		}
		if n := d.network(nid); n != nil && d.dropDataPlane(n) {
			continue
		}
		if err := dataplane.RemoveLeftover(filepath.Join(d.dir, nid)); err != nil {
			errs = append(errs, types.Wrapf(err, "overlay garbage collection of network %s", nid))
		}
	}
	return errors.Join(errs...)
}

// removeUnheld removes live network n's namespace when the driver holds
// no data plane for it: no join of this run built one and no restored
// join adopted it, so it is what an earlier run left when none of its
// joins came back. n's lock keeps a join from building it meanwhile.
func (d *Driver) removeUnheld(n *network) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.awaitDeletion()
	if n.dp != nil || n.deleted {
		return nil
	}
	if n.dead != nil {
		return n.retryDead()
	}
	return dataplane.RemoveLeftover(filepath.Join(d.dir, n.id))
}

// dropDataPlane deletes n's data plane, if the driver holds one (a
// retiring or dead one included), and reports whether it did.
func (d *Driver) dropDataPlane(n *network) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.awaitDeletion()
	if (n.dp == nil && n.dead == nil) || n.deleteDataPlanes() != nil {
		return false
	}
	for _, ep := range n.endpoints {
		ep.joined = false
	}
	return true
}
