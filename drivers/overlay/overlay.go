// Package overlay is the CNM overlay driver: one L2 network across hosts,
// carried between them in VXLAN over the hosts' underlay.
//
// The driver never sees the global store. The controller claims each
// network's VNI (ClusterIDRequester, handed over in
// CreateNetworkRequest.ClusterIDs), tells the driver this host's VTEP
// (Discoverer, the node it is told of with Self) and reports the
// endpoints of other hosts (PeerProgrammer). The kernel side of a network
// on this host is a dataplane.Network: it is built at the network's first
// local Join and deleted in the background after its last Leave (a Join
// within retireGrace takes it back, retire.go), and the driver programs
// into it the peers it keeps in memory for the network meanwhile.
//
// Choices:
//   - Overlay networks are internal: no gateway, no external
//     connectivity, published ports are BadRequest.
//   - One VNI per network (one IPv4 pool): more is NotImplemented, as is
//     the upstream option "encrypted". Unknown options are BadRequest.
//   - Each data plane's namespace is mounted at <dir>/<network ID>,
//     outside the controller's sandbox namespace directory (whose
//     garbage collection removes every file it does not know), so the
//     name is the tag garbage collection goes by.
//   - The interface is born inside the sandbox with the endpoint's MAC
//     and the network's MTU; the sandbox gives it its addresses.
//   - Drift between the kernel and the peers is repaired every repair
//     period (60 s) and at every PeerSync.
//   - A restarted driver takes its data planes back as the kernel holds
//     them (RestoreJoin, dataplane.Adopt): live endpoints keep
//     forwarding through the restart, and the controller's PeerSync
//     then brings the entries in line.
package overlay

import (
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/overlay/dataplane"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// NetworkType is the name of this driver.
const NetworkType = "overlay"

// DefaultRepairEvery is how often each data plane is checked against
// its network's peers.
const DefaultRepairEvery = 60 * time.Second

// Capability returns the overlay's capability: its networks are global
// objects, reachable from every host.
func Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.GlobalScope, ConnectivityScope: driverapi.GlobalScope}
}

// Driver is the overlay network driver. It is safe for concurrent use.
type Driver struct {
	host  *netnsutil.NS // the controller's host (underlay) namespace; owned by the caller
	dir   string        // where data plane namespaces are mounted
	log   *slog.Logger
	every time.Duration

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // background deletions of data planes (retire.go)
	hooks     retireHooks

	// Lock order: a network's mu, then d.mu. d.mu is never held across
	// kernel work.
	mu       sync.Mutex
	vtep     netip.Addr          // guarded by mu; zero until DiscoverNew(Self)
	networks map[string]*network // guarded by mu
}

var (
	_ driverapi.Driver             = (*Driver)(nil)
	_ driverapi.Discoverer         = (*Driver)(nil)
	_ driverapi.PeerProgrammer     = (*Driver)(nil)
	_ driverapi.ClusterIDRequester = (*Driver)(nil)
	_ driverapi.NetworkValidator   = (*Driver)(nil)
	_ driverapi.GarbageCollector   = (*Driver)(nil)
	_ driverapi.Closer             = (*Driver)(nil)
	_ driverapi.JoinRestorer       = (*Driver)(nil)
)

// New returns an overlay driver whose data planes bind their VXLAN
// sockets in host and are mounted under dir. cfg is the driver's
// configuration map (netlabel.Logger, knobs.OverlayRepairEvery); any
// other key, a daemon label com.docker.network.driver.overlay.* among
// them, is BadRequest: the driver has no such setting. It does no kernel
// work, so it needs no privilege.
func New(host *netnsutil.NS, dir string, cfg map[string]any) (*Driver, error) {
	if host == nil {
		return nil, types.BadRequestErrorf("creating overlay driver: no host namespace")
	}
	if dir == "" {
		return nil, types.BadRequestErrorf("creating overlay driver: no namespace directory")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	every := DefaultRepairEvery
	for k, v := range cfg {
		switch k {
		case netlabel.Logger:
			l, ok := v.(*slog.Logger)
			if !ok {
				return nil, types.BadRequestErrorf("creating overlay driver: option %s: want a *slog.Logger, not %T", k, v)
			}
			if l != nil {
				log = l
			}
		case knobs.OverlayRepairEvery:
			e, ok := v.(time.Duration)
			if !ok || e <= 0 {
				return nil, types.BadRequestErrorf("creating overlay driver: option %s: want a positive time.Duration, not %T %v", k, v, v)
			}
			every = e
		default:
			return nil, types.BadRequestErrorf("creating overlay driver: unknown option %q", k)
		}
	}
	d := &Driver{host: host, dir: dir, log: log, every: every, networks: map[string]*network{},
		stop: make(chan struct{}), done: make(chan struct{})}
	go d.repairLoop()
	return d, nil
}

// Type returns "overlay".
func (d *Driver) Type() string { return NetworkType }

// Close stops the periodic repair and releases the driver's handles on
// the data planes of joined endpoints, which stay in the kernel for a
// restarted driver to adopt (RestoreJoin) or garbage collection to
// remove. Data planes with no local endpoint, whose deletion the last
// Leave left to the background, are deleted before it returns; one that
// cannot be is left to garbage collection. The driver is unusable
// afterwards.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() { close(d.stop) })
	<-d.done
	d.mu.Lock()
	nets := make([]*network, 0, len(d.networks))
	for _, n := range d.networks {
		nets = append(nets, n)
	}
	d.mu.Unlock()
	for _, n := range nets {
		n.mu.Lock()
		n.awaitDeletion()
		if n.retiring || n.dead != nil {
			if err := n.deleteDataPlanes(); err != nil {
				d.log.Warn("deleting the data plane of an overlay network with no local endpoint failed; left to garbage collection",
					"network", n.id, "error", err)
			}
			n.retiring = false
			for _, dp := range []*dataplane.Network{n.dp, n.dead} {
				if dp != nil {
					dp.Release()
				}
			}
			n.dp, n.dead, n.unsynced = nil, nil, false
		}
		if n.dp != nil {
			n.dp.Release()
			n.dp, n.unsynced = nil, false
		}
		n.mu.Unlock()
	}
	d.wg.Wait()
	return nil
}

// repairLoop reconciles every data plane with its network's peers each
// period, until Close.
func (d *Driver) repairLoop() {
	defer close(d.done)
	t := time.NewTicker(d.every)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.repairAll()
		}
	}
}

func (d *Driver) repairAll() {
	d.mu.Lock()
	nets := make([]*network, 0, len(d.networks))
	for _, n := range d.networks {
		nets = append(nets, n)
	}
	d.mu.Unlock()
	for _, n := range nets {
		if err := n.repair(d.log); err != nil {
			d.log.Warn("overlay drift repair failed", "network", n.id, "error", err)
		}
	}
}

// DiscoverNew takes this host's VTEP from the node announced with Self;
// other hosts' announcements are ignored: peers come per endpoint.
func (d *Driver) DiscoverNew(dType int, data any) error {
	node, ok, err := selfNode("announcing a node to the overlay driver", dType, data)
	if !ok || err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.vtep = node
	return nil
}

// DiscoverDelete forgets this host's VTEP when it is the one withdrawn:
// networks cannot be created or joined until another is announced.
func (d *Driver) DiscoverDelete(dType int, data any) error {
	node, ok, err := selfNode("withdrawing a node from the overlay driver", dType, data)
	if !ok || err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.vtep == node {
		d.vtep = netip.Addr{}
	}
	return nil
}

// selfNode returns the address of a NodeDiscovery of this host; ok is
// false for any other event.
func selfNode(what string, dType int, data any) (_ netip.Addr, ok bool, _ error) {
	if dType != driverapi.NodeDiscovery {
		return netip.Addr{}, false, nil
	}
	var node driverapi.NodeDiscoveryData
	switch v := data.(type) {
	case driverapi.NodeDiscoveryData:
		node = v
	case *driverapi.NodeDiscoveryData:
		if v == nil {
			return netip.Addr{}, false, types.BadRequestErrorf("%s: no node data", what)
		}
		node = *v
	default:
		return netip.Addr{}, false, types.BadRequestErrorf("%s: want driverapi.NodeDiscoveryData, not %T", what, data)
	}
	if !node.Self {
		return netip.Addr{}, false, nil
	}
	a, err := netip.ParseAddr(node.Address)
	if err != nil || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, false, types.BadRequestErrorf("%s: address %q is not a unicast IP address", what, node.Address)
	}
	return a.Unmap(), true, nil
}

// localVTEP returns this host's VTEP, zero when none is known.
func (d *Driver) localVTEP() netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.vtep
}
