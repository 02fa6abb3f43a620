package libnetwork

import (
	"context"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/types"
)

// mirror is the controller's copy of the global store's records, fed by
// one Store.Watch: global networks, every host's endpoints and peers. It
// picks candidates (free pools, IDs, addresses) and feeds DNS and the
// drivers of global networks; the store's transactions decide. It also
// owns the queue of store writes that must not fail a caller (peer
// records, endpoint deletes), retried until they land.
//
// Lock order: gMu, then Controller.mu, then mu. mu is never held across a
// call of the store, a driver or Controller.mu.
type mirror struct {
	c    *Controller
	self string // this host's ID
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// gMu serialises what makes or drops a global *Network here and every
	// peer call to a driver, so a driver sees its peers in store order
	// and a network made while peers arrive gets them all.
	gMu sync.Mutex

	mu       sync.Mutex
	resyncs  int
	nets     map[string]globalstore.Network
	eps      map[string]map[string]globalstore.Endpoint // nid -> eid
	peers    map[string]map[string]globalstore.Peer     // nid -> eid
	pending  map[string]bool                            // networks being created here
	gone     map[string]int64                           // network ID -> revision of its delete (goneUnseen); puts up to it are not made again
	inflight map[globalstore.Claim]bool                 // candidates handed out here and not released
	hints    map[globalstore.Claim]time.Time            // claims a transaction found taken, until the watch tells
	listed   map[globalstore.Claim]time.Time            // claims of networks a listing had before the watch
	queue    map[string]*storeWrite                     // endpoint ID -> the latest write wanted for it
	kick     chan struct{}
	// The fence: while either is set, drivers get no peers (PeerSync
	// hands none, PeerAdd is not called). wantFence is what the cluster
	// said last; fenced is what runFence applied, under gMu, with a sync
	// of every network: so when the fence lifts, no PeerAdd reaches a
	// driver before the PeerSync of the whole set.
	wantFence bool                // guarded by mu
	fenced    bool                // guarded by mu; changed only under gMu
	refence   chan struct{}       // wakes runFence
	conflicts map[string]Conflict // endpoint ID -> why it is kept down (global_heal.go)

	wlocks [writeLockStripes]sync.Mutex // see lockFor
}

// hintTTL is how long a claim a transaction lost stays out of the
// candidates when the watch has not (yet) shown its holder.
const hintTTL = 10 * time.Second

func newMirror(c *Controller) *mirror {
	m := &mirror{c: c, self: c.cl.hostID(), log: c.cfg.Logger,
		nets: map[string]globalstore.Network{}, eps: map[string]map[string]globalstore.Endpoint{},
		peers: map[string]map[string]globalstore.Peer{}, pending: map[string]bool{}, gone: map[string]int64{},
		inflight: map[globalstore.Claim]bool{}, hints: map[globalstore.Claim]time.Time{},
		listed: map[globalstore.Claim]time.Time{},
		queue:  map[string]*storeWrite{}, kick: make(chan struct{}, 1), refence: make(chan struct{}, 1),
		conflicts: map[string]Conflict{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m
}

// start follows the store and runs the write queue until close.
func (m *mirror) start() {
	events := m.c.cl.store().Watch(m.ctx)
	m.wg.Add(3)
	go func() {
		defer m.wg.Done()
		for ev := range events {
			m.apply(ev)
		}
	}()
	go func() {
		defer m.wg.Done()
		m.runQueue()
	}()
	go func() {
		defer m.wg.Done()
		m.runFence()
	}()
	m.c.cl.subscribe(m)
	m.c.cl.modelLoaded(m)
}

// sessionUp is the cluster telling of a session opened. The mirror needs
// none to follow the store; claiming this host's endpoints again on a new
// lease is done before (heal, called by the cluster).
func (m *mirror) sessionUp(*globalstore.Session, bool) {}

// fence is the cluster telling that the host's lease may be gone (on) or
// is renewed again (off): while fenced, drivers are handed no peers, so no
// frame goes to another host from an address this host may no longer
// hold; endpoints here still reach each other.
func (m *mirror) fence(on bool) {
	m.mu.Lock()
	changed := m.wantFence != on
	m.wantFence = on
	m.mu.Unlock()
	if changed {
		m.log.Info("cross-host forwarding of global networks", "fenced", on)
		select {
		case m.refence <- struct{}{}:
		default:
		}
	}
}

// runFence hands every global network's driver its peers (none while
// fenced) whenever the fence changes, until the mirror closes. It reads
// the latest state each time, so changes in quick succession end right.
func (m *mirror) runFence() {
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.refence:
		}
		m.gMu.Lock()
		m.mu.Lock()
		m.fenced = m.wantFence
		m.mu.Unlock()
		for _, n := range m.c.globalNetworks() {
			m.syncPeersLocked(n.id)
		}
		m.gMu.Unlock()
	}
}

func (m *mirror) close() {
	m.cancel()
	m.wg.Wait()
}

// apply takes one event into the mirror and passes it on to the drivers
// and the model.
func (m *mirror) apply(ev globalstore.Event) {
	switch ev.Kind {
	case globalstore.Resync:
		m.resync(ev.Snapshot)
	case globalstore.NetworkPut:
		m.mu.Lock()
		if rev, ok := m.gone[ev.Network.ID]; ok && ev.Revision > rev {
			delete(m.gone, ev.Network.ID) // made again after its delete
		}
		m.nets[ev.Network.ID] = *ev.Network
		m.mu.Unlock()
		if _, err := m.c.materialize(*ev.Network); err != nil {
			m.log.Debug("global network not made here", "network", ev.Network.Name, "error", err)
		}
	case globalstore.NetworkDelete:
		m.mu.Lock()
		m.gone[ev.NetworkID] = ev.Revision // a read from before the delete must not make it again
		delete(m.nets, ev.NetworkID)
		delete(m.eps, ev.NetworkID)
		delete(m.peers, ev.NetworkID)
		m.mu.Unlock()
		m.c.dropGlobal(ev.NetworkID)
	case globalstore.EndpointPut:
		m.mu.Lock()
		if m.eps[ev.NetworkID] == nil {
			m.eps[ev.NetworkID] = map[string]globalstore.Endpoint{}
		}
		m.eps[ev.NetworkID][ev.EndpointID] = *ev.Endpoint
		m.mu.Unlock()
	case globalstore.EndpointDelete:
		m.mu.Lock()
		delete(m.eps[ev.NetworkID], ev.EndpointID)
		m.mu.Unlock()
	case globalstore.PeerPut:
		m.gMu.Lock()
		m.mu.Lock()
		if m.peers[ev.NetworkID] == nil {
			m.peers[ev.NetworkID] = map[string]globalstore.Peer{}
		}
		m.peers[ev.NetworkID][ev.EndpointID] = *ev.Peer
		fenced := m.fenced || m.wantFence
		m.mu.Unlock()
		if ev.Peer.Host != m.self && !fenced {
			if pp, n := m.programmer(ev.NetworkID); pp != nil {
				if err := pp.PeerAdd(ev.NetworkID, driverPeer(*ev.Peer)); err != nil {
					m.log.Warn("adding peer", "network", n.name, "endpoint", ev.EndpointID, "error", err)
				}
			}
		}
		m.gMu.Unlock()
	case globalstore.PeerDelete:
		m.gMu.Lock()
		m.mu.Lock()
		p, had := m.peers[ev.NetworkID][ev.EndpointID]
		delete(m.peers[ev.NetworkID], ev.EndpointID)
		m.mu.Unlock()
		if had && p.Host != m.self {
			if pp, n := m.programmer(ev.NetworkID); pp != nil {
				if err := pp.PeerDelete(ev.NetworkID, ev.EndpointID); err != nil {
					m.log.Warn("deleting peer", "network", n.name, "endpoint", ev.EndpointID, "error", err)
				}
			}
		}
		m.gMu.Unlock()
	}
}

// resync replaces the mirror with snap, makes the networks it names and
// drops those it no longer has, and hands every network's drivers its
// whole set of peers.
func (m *mirror) resync(snap *globalstore.Snapshot) {
	m.mu.Lock()
	m.resyncs++
	m.nets = map[string]globalstore.Network{}
	m.eps = map[string]map[string]globalstore.Endpoint{}
	m.peers = map[string]map[string]globalstore.Peer{}
	for _, n := range snap.Networks {
		m.nets[n.ID] = n
	}
	for _, e := range snap.Endpoints {
		if m.eps[e.NetworkID] == nil {
			m.eps[e.NetworkID] = map[string]globalstore.Endpoint{}
		}
		m.eps[e.NetworkID][e.ID] = e
	}
	for _, p := range snap.Peers {
		if m.peers[p.NetworkID] == nil {
			m.peers[p.NetworkID] = map[string]globalstore.Peer{}
		}
		m.peers[p.NetworkID][p.EndpointID] = p
	}
	m.hints = map[globalstore.Claim]time.Time{}
	m.listed = map[globalstore.Claim]time.Time{}
	for id, rev := range m.gone {
		if _, listed := m.nets[id]; listed && rev < snap.Revision {
			delete(m.gone, id) // made again after its delete
		} else if !listed {
			// Deleted before the snapshot, or made and deleted after it
			// (then the watch delivers both, the delete last).
			m.gone[id] = min(rev, snap.Revision)
		}
	}
	m.mu.Unlock()

	for _, n := range snap.Networks {
		if _, err := m.c.materialize(n); err != nil {
			m.log.Debug("global network not made here", "network", n.Name, "error", err)
		}
	}
	for _, n := range m.c.globalNetworks() {
		m.mu.Lock()
		_, known := m.nets[n.id]
		m.mu.Unlock()
		if !known {
			// A snapshot listed before this host's own create committed
			// does not have it yet: only a read of the store tells.
			if _, err := m.c.cl.store().Network(m.ctx, n.id); err != nil && types.IsNotFound(err) {
				m.markGoneAt(n.id, snap.Revision)
				m.c.dropGlobal(n.id)
			}
			continue
		}
		m.syncPeers(n.id)
	}
}

// syncPeers hands the driver of network nid, if it programs peers, the
// whole set of other hosts' peers.
func (m *mirror) syncPeers(nid string) {
	m.gMu.Lock()
	defer m.gMu.Unlock()
	m.syncPeersLocked(nid)
}

// syncPeersLocked is syncPeers for a caller holding gMu.
func (m *mirror) syncPeersLocked(nid string) {
	pp, n := m.programmer(nid)
	if pp == nil {
		return
	}
	if err := pp.PeerSync(nid, m.otherPeers(nid)); err != nil {
		m.log.Warn("syncing peers", "network", n.name, "error", err)
	}
}

// programmer is the PeerProgrammer of the network nid made here, if its
// driver is one.
func (m *mirror) programmer(nid string) (driverapi.PeerProgrammer, *Network) {
	c := m.c
	c.mu.Lock()
	n := c.networks[nid]
	c.mu.Unlock()
	if n == nil || n.driver == nil {
		return nil, nil
	}
	pp, _ := n.driver.Driver.(driverapi.PeerProgrammer)
	if pp == nil {
		return nil, nil
	}
	return pp, n
}

// otherPeers are the peers of network nid on other hosts, by endpoint ID;
// none while the host is fenced.
func (m *mirror) otherPeers(nid string) []driverapi.Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []driverapi.Peer{}
	if m.fenced || m.wantFence {
		return out
	}
	for _, p := range m.peers[nid] {
		if p.Host != m.self {
			out = append(out, driverPeer(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EndpointID < out[j].EndpointID })
	return out
}

func driverPeer(p globalstore.Peer) driverapi.Peer {
	dp := driverapi.Peer{EndpointID: p.EndpointID, VTEP: p.VTEP}
	dp.MAC, _ = net.ParseMAC(p.MAC)
	for _, ip := range p.IPs {
		if ip.Is4() && !dp.IPv4.IsValid() {
			dp.IPv4 = ip
		} else if ip.Is6() && !dp.IPv6.IsValid() {
			dp.IPv6 = ip
		}
	}
	return dp
}

// network returns the mirrored record of network nid.
func (m *mirror) network(nid string) (globalstore.Network, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.nets[nid]
	return n, ok
}

// networks returns the mirrored networks.
func (m *mirror) networks() []globalstore.Network {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]globalstore.Network, 0, len(m.nets))
	for _, n := range m.nets {
		out = append(out, n)
	}
	return out
}

// endpoints returns the mirrored endpoints of network nid on every host.
func (m *mirror) endpoints(nid string) []globalstore.Endpoint {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]globalstore.Endpoint, 0, len(m.eps[nid]))
	for _, e := range m.eps[nid] {
		out = append(out, e)
	}
	return out
}

// remoteLocked calls f for each endpoint of network nid on other hosts
// until it returns true. Caller holds Controller.mu (which comes before
// mu), never mu.
func (m *mirror) remoteLocked(nid string, f func(e *globalstore.Endpoint) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.eps[nid] {
		if e.Host == m.self {
			continue
		}
		if f(&e) {
			return
		}
	}
}

// takenLocked reports whether claim c is handed out here, was lost by a
// recent transaction or listed lately (what the records the mirror has
// hold is the callers' own check). Caller holds mu.
func (m *mirror) takenLocked(c globalstore.Claim) bool {
	return m.inflight[c] || fresh(m.hints, c) || fresh(m.listed, c)
}

// fresh reports whether c is in hints and younger than hintTTL, dropping
// it when it is older.
func fresh(hints map[globalstore.Claim]time.Time, c globalstore.Claim) bool {
	t, ok := hints[c]
	if ok && time.Since(t) >= hintTTL {
		delete(hints, c)
		return false
	}
	return ok
}

// hint records that a transaction found c taken.
func (m *mirror) hint(c globalstore.Claim) {
	m.mu.Lock()
	m.hints[c] = time.Now()
	m.mu.Unlock()
}

// usedAddrsLocked is every address of network nid the mirror knows taken
// (gateways and aux addresses of the network, every host's endpoints).
// Caller holds mu.
func (m *mirror) usedAddrsLocked(nid string) map[netip.Addr]bool {
	used := map[netip.Addr]bool{}
	for _, cl := range m.nets[nid].Claims {
		if cl.Kind == globalstore.ClaimAddress {
			if a, err := netip.ParseAddr(cl.Name); err == nil {
				used[a] = true
			}
		}
	}
	for _, e := range m.eps[nid] {
		for _, p := range e.Addrs {
			used[p.Addr().Unmap()] = true
		}
	}
	return used
}

// learn takes the claims of networks listed from the store (ahead of the
// watch) as taken, for the candidates' sake only: the networks themselves
// come from the watch or a lookup.
func (m *mirror) learn(nets []globalstore.Network) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	for _, n := range nets {
		if _, known := m.nets[n.ID]; known || m.goneLocked(n.ID) {
			continue
		}
		for _, c := range n.Claims {
			if c.Kind == globalstore.ClaimPool || c.Kind == globalstore.ClaimVNI {
				m.listed[c] = now
			}
		}
	}
}

// setPending marks network nid as being created here (true) or not.
func (m *mirror) setPending(nid string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		m.pending[nid] = true
	} else {
		delete(m.pending, nid)
	}
}

// skip reports whether network nid is not to be made from a record: it is
// being created here, or was deleted here.
func (m *mirror) skip(nid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pending[nid] || m.goneLocked(nid)
}

// goneUnseen is the delete revision of a network deleted here whose
// delete the watch has not delivered yet: no put before it is made again.
const goneUnseen = math.MaxInt64

// goneLocked reports whether network nid was deleted and not made again
// since. Caller holds mu.
func (m *mirror) goneLocked(nid string) bool {
	_, ok := m.gone[nid]
	return ok
}

// markGone records that network nid was deleted here; the watch's delete
// event then tells its revision.
func (m *mirror) markGone(nid string) { m.markGoneAt(nid, goneUnseen) }

// markGoneAt records that network nid was deleted at revision rev at the
// latest (the newest delete known here).
func (m *mirror) markGoneAt(nid string, rev int64) {
	m.mu.Lock()
	m.gone[nid] = rev
	m.mu.Unlock()
}
