package overlay

import (
	"path/filepath"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/overlay/dataplane"
	"github.com/opencnm/libnetwork/types"
)

// RestoreJoin takes back a join an earlier run made: the network's data
// plane is adopted as the kernel holds it (the first restored endpoint
// adopts it, without a gap in forwarding), and the endpoint's veth must
// still be a port of its bridge. Until the controller's first PeerSync
// of the network the periodic repair leaves the adopted entries alone:
// the peers are not all known yet, and repairing against a partial set
// would cut traffic to the others.
func (d *Driver) RestoreJoin(req driverapi.JoinRequest, res driverapi.JoinResult) error {
	what := "restoring the join of overlay endpoint " + req.EndpointID
	n, err := d.lockNetwork(what, req.NetworkID)
	if err != nil {
		return err
	}
	defer n.mu.Unlock()
	n.awaitDeletion()
	ep, ok := n.endpoints[req.EndpointID]
	switch {
	case n.deleted:
		return types.NotFoundErrorf("%s: network %s not found", what, req.NetworkID)
	case !ok:
		return driverapi.ErrNoEndpoint(req.EndpointID)
	case n.dead != nil:
		return types.ForbiddenErrorf("%s: the data plane of network %s is being deleted", what, n.id)
	}
	adopted := n.dp == nil
	if adopted {
		dp, err := dataplane.Adopt(dataplane.Config{VNI: n.vni, HostNS: d.host, LocalVTEP: d.localVTEP(),
			NSPath: filepath.Join(d.dir, n.id)})
		if err != nil {
			return types.Wrapf(err, "%s: adopting the data plane of network %s", what, n.id)
		}
		n.dp, n.unsynced = dp, true
	}
	name := res.DstName
	if name == "" {
		name = res.SrcName
	}
	if _, err := n.dp.AdoptEndpoint(dataplane.EndpointConfig{ID: ep.id, IfName: name, MAC: ep.mac,
		IPv4: ep.v4, IPv6: ep.v6}); err != nil {
		if adopted {
			// Held with nothing joined it would outlive every endpoint;
			// released, garbage collection takes it if no join does.
			n.dp.Release()
			n.dp, n.unsynced = nil, false
		}
		return types.Wrapf(err, "%s", what)
	}
	n.retiring = false
	ep.joined = true
	return nil
}
