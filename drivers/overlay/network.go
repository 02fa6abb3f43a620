package overlay

import (
	"bytes"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"sync"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/overlay/dataplane"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/types"
)

// network is one overlay network as this host knows it.
type network struct {
	id  string
	vni uint32
	mtu int // 0: the data plane's default, the underlay's MTU minus the overhead

	// mu serialises the network's kernel work and guards what follows.
	mu      sync.Mutex
	deleted bool
	// dp is nil while no local endpoint is joined, but for a while after
	// the last Leave: the data plane is then deleted in the background
	// (retire.go), and retiring says that deletion has not begun, so a
	// Join takes dp back as it is.
	dp       *dataplane.Network
	retiring bool
	// deleting: a background deletion is running (dp is nil meanwhile);
	// whoever needs the network's namespace waits for it on cond.
	deleting bool
	cond     *sync.Cond // on mu; signalled when deleting ends
	// dead is a data plane whose background deletion failed; it is
	// retried before the network gets a new one, and by DeleteNetwork,
	// garbage collection, the periodic repair and Close.
	dead *dataplane.Network
	// unsynced: dp was adopted and no PeerSync came since, so the peers
	// may be a partial set and the periodic repair must wait.
	unsynced  bool
	peers     map[string]driverapi.Peer
	endpoints map[string]*endpoint
}

// CreateNetwork records the network. Its data plane is built at its first
// local Join; nothing is done in the kernel here.
func (d *Driver) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	nid := req.NetworkID
	what := "creating overlay network " + nid
	if err := names.ID(nid); err != nil {
		return types.Wrapf(err, "%s: network id", what)
	}
	o, err := parseOptions(what, req.Options)
	if err != nil {
		return err
	}
	switch {
	case len(req.ClusterIDs) == 0:
		return types.ForbiddenErrorf("%s: no VNI was claimed for it: overlay networks need a controller with a global store", what)
	case len(req.ClusterIDs) > 1:
		return types.NotImplementedErrorf("%s: %d VNIs: an overlay network carries one VNI here", what, len(req.ClusterIDs))
	case req.ClusterIDs[0] == 0 || req.ClusterIDs[0] > MaxVNI:
		return types.BadRequestErrorf("%s: VNI %d out of range [1, %d]", what, req.ClusterIDs[0], MaxVNI)
	case o.vni != 0 && o.vni != req.ClusterIDs[0]:
		return types.BadRequestErrorf("%s: option %s names VNI %d, but VNI %d was claimed", what, VXLANIDListOpt, o.vni, req.ClusterIDs[0])
	case len(req.IPv4Data) > 1:
		return types.NotImplementedErrorf("%s: %d IPv4 pools: an overlay network has one VNI, so one IPv4 pool, here", what, len(req.IPv4Data))
	case len(req.IPv6Data) > 1:
		return types.NotImplementedErrorf("%s: %d IPv6 pools: an overlay network has one IPv6 pool here", what, len(req.IPv6Data))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.vtep.IsValid() {
		return types.ForbiddenErrorf("%s: this host's VTEP address is not known: overlay networks need a controller with a global store and a discovery address", what)
	}
	if _, ok := d.networks[nid]; ok {
		return types.ForbiddenErrorf("%s: it exists already", what)
	}
	d.networks[nid] = newNetwork(nid, req.ClusterIDs[0], o.mtu)
	return nil
}

// DeleteNetwork deletes the network's data plane, if it has one, and
// forgets the network and its peers. An unknown network is success.
func (d *Driver) DeleteNetwork(nid string) error {
	n := d.network(nid)
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return nil
	}
	if err := n.deleteDataPlanes(); err != nil {
		return types.Wrapf(err, "deleting overlay network %s", nid)
	}
	// A previous run's data plane that no join took back.
	if err := dataplane.RemoveLeftover(filepath.Join(d.dir, nid)); err != nil {
		return types.Wrapf(err, "deleting overlay network %s", nid)
	}
	n.deleted = true
	n.peers = nil
	d.mu.Lock()
	delete(d.networks, nid)
	d.mu.Unlock()
	return nil
}

// network returns network nid, nil if unknown.
func (d *Driver) network(nid string) *network {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.networks[nid]
}

// lockNetwork returns network nid locked, or NotFound.
func (d *Driver) lockNetwork(what, nid string) (*network, error) {
	n := d.network(nid)
	if n != nil {
		n.mu.Lock()
		if !n.deleted {
			return n, nil
		}
		n.mu.Unlock()
	}
	return nil, types.NotFoundErrorf("%s: network %s not found", what, nid)
}

// PeerAdd records a remote endpoint of the network and, if the network
// has a data plane here, programs it; when that fails the peer is not
// recorded.
func (d *Driver) PeerAdd(nid string, p driverapi.Peer) error {
	what := "adding overlay peer " + p.EndpointID
	p = normPeer(p)
	if err := checkPeer(what, p, d.localVTEP()); err != nil {
		return err
	}
	n, err := d.lockNetwork(what, nid)
	if err != nil {
		return err
	}
	defer n.mu.Unlock()
	if n.dp != nil {
		if err := n.dp.AddPeer(toDataplane(p)); err != nil {
			return types.Wrapf(err, "%s to network %s", what, nid)
		}
	}
	n.peers[p.EndpointID] = p
	return nil
}

// PeerDelete forgets a remote endpoint and removes its entries from the
// data plane. An unknown peer or network is success.
func (d *Driver) PeerDelete(nid, eid string) error {
	n, err := d.lockNetwork("", nid)
	if err != nil {
		return nil
	}
	defer n.mu.Unlock()
	if n.dp != nil {
		if err := n.dp.RemovePeer(eid); err != nil {
			return types.Wrapf(err, "removing overlay peer %s from network %s", eid, nid)
		}
	}
	delete(n.peers, eid)
	return nil
}

// PeerSync makes peers the network's whole set and reconciles the data
// plane with it, repairing drifted kernel entries. The set is recorded
// even when the kernel could not be brought in line with it all: it is
// what the controller knows, and the next repair retries.
func (d *Driver) PeerSync(nid string, peers []driverapi.Peer) error {
	what := "syncing the peers of overlay network " + nid
	local := d.localVTEP()
	set := make(map[string]driverapi.Peer, len(peers))
	for _, p := range peers {
		p = normPeer(p)
		if err := checkPeer(what, p, local); err != nil {
			return err
		}
		if _, dup := set[p.EndpointID]; dup {
			return types.BadRequestErrorf("%s: peer %s listed twice", what, p.EndpointID)
		}
		set[p.EndpointID] = p
	}
	n, err := d.lockNetwork(what, nid)
	if err != nil {
		return err
	}
	defer n.mu.Unlock()
	n.peers = set
	if n.dp == nil {
		return nil
	}
	n.unsynced = false
	rep, err := n.dp.Reconcile(n.peerList())
	if len(rep.Repairs) > 0 {
		d.log.Info("overlay peer sync repaired drifted entries", "network", nid, "repairs", len(rep.Repairs))
	}
	return types.Wrapf(err, "%s", what)
}

// repair reconciles the network's data plane, if any, with its peers.
func (n *network) repair(log *slog.Logger) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.deleted {
		return nil
	}
	if err := n.retryDead(); err != nil {
		return err
	}
	if n.dp == nil || n.unsynced {
		return nil
	}
	rep, err := n.dp.Reconcile(n.peerList())
	if len(rep.Repairs)+len(rep.Added)+len(rep.Removed) > 0 {
		log.Info("overlay drift repaired", "network", n.id, "repairs", len(rep.Repairs),
			"added", len(rep.Added), "removed", len(rep.Removed))
	}
	return err
}

// peerList returns the network's peers in the data plane's form, sorted
// by ID. Caller holds n.mu.
func (n *network) peerList() []dataplane.Peer {
	out := make([]dataplane.Peer, 0, len(n.peers))
	for _, p := range n.peers {
		out = append(out, toDataplane(p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func normPeer(p driverapi.Peer) driverapi.Peer {
	p.MAC = slices.Clone(p.MAC) // kept; the caller's slice may change
	p.VTEP, p.IPv4 = p.VTEP.Unmap(), p.IPv4.Unmap()
	return p
}

func toDataplane(p driverapi.Peer) dataplane.Peer {
	return dataplane.Peer{ID: p.EndpointID, MAC: p.MAC, IPv4: p.IPv4, IPv6: p.IPv6, VTEP: p.VTEP}
}

// checkPeer refuses a peer the data plane could never program, so that a
// recorded peer never fails a later Join.
func checkPeer(what string, p driverapi.Peer, local netip.Addr) error {
	switch {
	case p.EndpointID == "":
		return types.BadRequestErrorf("%s: no endpoint ID", what)
	case len(p.MAC) != 6 || p.MAC[0]&1 != 0 || bytes.Equal(p.MAC, make([]byte, 6)):
		return types.BadRequestErrorf("%s: MAC %q is not a unicast Ethernet address", what, p.MAC)
	case !p.IPv4.IsValid() && !p.IPv6.IsValid():
		return types.BadRequestErrorf("%s: no address", what)
	case p.IPv4.IsValid() && !p.IPv4.Is4():
		return types.BadRequestErrorf("%s: %s is not an IPv4 address", what, p.IPv4)
	case p.IPv6.IsValid() && (!p.IPv6.Is6() || p.IPv6.Is4In6()):
		return types.BadRequestErrorf("%s: %s is not an IPv6 address", what, p.IPv6)
	case !p.VTEP.IsValid() || p.VTEP.IsUnspecified() || p.VTEP.IsMulticast():
		return types.BadRequestErrorf("%s: VTEP %v is not a unicast address", what, p.VTEP)
	case local.IsValid() && p.VTEP.Is4() != local.Is4():
		return types.BadRequestErrorf("%s: VTEP %s is not of the family of this host's VTEP %s", what, p.VTEP, local)
	case p.VTEP == local:
		return types.BadRequestErrorf("%s: VTEP %s is this host: local endpoints are joined, not peered", what, p.VTEP)
	}
	return nil
}
