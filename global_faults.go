package libnetwork

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/osl"
	"github.com/opencnm/libnetwork/types"
)

// runReconcile reconciles on every session opened, until the mirror closes.
func (m *mirror) runReconcile() {
	for {
		select {
		case <-m.ctx.Done():
			return
		case ss := <-m.resessed:
			m.reconcile(ss)
			m.mu.Lock()
			was := m.reclaiming
			m.reclaiming = false
			m.mu.Unlock()
			if was {
				m.log.Info("global store: this host's endpoints reconciled on a new lease")
				select {
				case m.refence <- struct{}{}:
				default:
				}
			}
		}
	}
}

// reconcile makes the store's records of this host's endpoints match the
// local ones after a session opened: a resumed lease may carry an
// endpoint whose local record a crash never wrote (or already deleted),
// and a new lease carries none of the endpoints this host still has.
//   - A store endpoint of this host that is neither local nor being
//     created here (its ID is not among the network's names) is deleted.
//   - A local endpoint missing from the store is claimed again with its
//     name, addresses and MAC; one whose claim another host holds now is
//     set down and reported (claimAgain), never claimed twice.
//   - A local endpoint's peer record that does not follow its join (a
//     crash between the join or leave and its store write, or a new
//     lease) is written or deleted.
//
// Claims are tried at once, so an endpoint that lost one is down before
// drivers get peers again on a new lease (reclaiming); the rest, and a
// claim the store did not answer, go through the write queue under the
// endpoint's ID, ordered with its joins, leaves and deletes and retried
// while the store is away.
func (m *mirror) reconcile(ss *globalstore.Session) {
	st := m.c.cl.store()
	for _, n := range m.c.globalNetworks() {
		if m.ctx.Err() != nil {
			return
		}
		recs, err := st.Endpoints(m.ctx, n.id)
		if err != nil {
			m.log.Warn("global store: reconciling endpoints: listing", "network", n.name, "error", err)
			continue
		}
		peers, err := st.Peers(m.ctx, n.id)
		if err != nil {
			m.log.Warn("global store: reconciling endpoints: listing peers", "network", n.name, "error", err)
			continue
		}
		published := map[string]bool{}
		for _, p := range peers {
			published[p.EndpointID] = published[p.EndpointID] || p.Host == m.self
		}
		m.c.mu.Lock()
		local := make([]*Endpoint, 0, len(n.endpoints))
		joined := map[string]bool{}
		for _, ep := range n.endpoints {
			local = append(local, ep)
			joined[ep.id] = ep.sandboxID != ""
		}
		creating := map[string]bool{}
		for _, id := range n.epNames {
			creating[id] = true
		}
		m.c.mu.Unlock()
		stored := map[string]bool{}
		for _, e := range recs {
			if e.Host != m.self {
				continue
			}
			stored[e.ID] = true
			if !creating[e.ID] {
				nid, eid := n.id, e.ID
				m.log.Info("global store: deleting an endpoint of this host it does not have", "network", n.name, "endpoint", e.Name)
				m.write(eid, "delete orphan endpoint "+e.Name+" of network "+n.name, func(ctx context.Context) error {
					return st.DeleteEndpoint(ctx, nid, eid)
				})
			}
		}
		for _, ep := range local {
			switch {
			case !stored[ep.id]:
				if ep.claimAgain(ss) {
					ep.reconcilePeer(ss)
				}
			case joined[ep.id] != published[ep.id]:
				ep.reconcilePeer(ss)
			}
		}
	}
}

// claimAgain claims ep again, missing from the store, on the session's
// lease, and reports whether it holds its claims now. One that another
// host holds a claim of meanwhile (its name or an address) is taken down
// here and reported (Conflicts): it is never live twice. A store that
// does not answer leaves the claim to the write queue.
func (ep *Endpoint) claimAgain(ss *globalstore.Session) bool {
	n, c := ep.network, ep.network.ctrl
	st := c.cl.store()
	rec := ep.globalRecord()
	err := st.CreateEndpoint(c.mirror.ctx, ss.Lease(), rec)
	var ce *globalstore.ClaimError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ce) && ce.Owner == ep.id:
		return true // a previous attempt's write landed
	case errors.As(err, &ce):
		c.mirror.conflict(ep, ce)
		return false
	}
	c.cfg.Logger.Warn("global store: claiming an endpoint again failed, retried", "network", n.name, "endpoint", ep.name, "error", err)
	c.mirror.write(ep.id, "claim again endpoint "+ep.name+" of network "+n.name, func(ctx context.Context) error {
		if ep.goneLocally() {
			return nil
		}
		err := st.CreateEndpoint(ctx, ss.Lease(), rec)
		if errors.As(err, &ce) && ce.Owner != ep.id {
			c.mirror.conflict(ep, ce)
			return nil
		}
		if errors.As(err, &ce) {
			err = nil
		}
		if err == nil {
			ep.reconcilePeer(ss)
		}
		return err
	})
	return false
}

// goneLocally reports whether ep was deleted here (or is being deleted).
func (ep *Endpoint) goneLocally() bool {
	n, c := ep.network, ep.network.ctrl
	c.mu.Lock()
	defer c.mu.Unlock()
	return n.endpoints[ep.id] != ep || ep.deleting
}

// reconcilePeer makes ep's peer record follow its join as it is when the
// write runs.
func (ep *Endpoint) reconcilePeer(ss *globalstore.Session) {
	n, c := ep.network, ep.network.ctrl
	st := c.cl.store()
	c.mirror.write(ep.id, "reconcile peer of endpoint "+ep.name+" of network "+n.name, func(ctx context.Context) error {
		c.mu.Lock()
		gone := n.endpoints[ep.id] != ep || ep.deleting
		joined := ep.sandboxID != ""
		c.mu.Unlock()
		if gone {
			return nil
		}
		if !joined {
			return st.DeletePeer(ctx, n.id, ep.id)
		}
		err := st.PutPeer(ctx, ss.Lease(), ep.peerRecord())
		if types.IsNotFound(err) {
			return nil
		}
		return err
	})
}

// Conflict is an endpoint of this host that could not be claimed again
// in the global store after its lease was lost (a partition longer than
// the lease): another host took its name or an address meanwhile. It is
// kept here, its interface down, out of the store and of every other
// host's view, until it is deleted.
type Conflict struct {
	Network    string // the network's name
	Endpoint   string // the endpoint's name
	EndpointID string
	Claim      string // what another host holds, e.g. `address 10.0.0.3 in network <id>`
	Owner      string // the ID of the endpoint (or network) holding it
}

// Conflicts lists this host's endpoints that could not be claimed again
// (see Conflict), sorted by network and endpoint name.
func (c *Controller) Conflicts() []Conflict {
	if c.mirror == nil {
		return nil
	}
	m := c.mirror
	m.mu.Lock()
	cs := make([]Conflict, 0, len(m.conflicts))
	ids := make([]string, 0, len(m.conflicts))
	for id, cf := range m.conflicts {
		cs = append(cs, cf)
		ids = append(ids, id)
	}
	m.mu.Unlock()
	var out []Conflict
	c.mu.Lock()
	for i, cf := range cs {
		if c.endpointLocked(ids[i]) {
			out = append(out, cf)
		}
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Network != out[j].Network {
			return out[i].Network < out[j].Network
		}
		return out[i].Endpoint < out[j].Endpoint
	})
	return out
}

// endpointLocked reports whether endpoint id is one of this host's.
// Caller holds c.mu.
func (c *Controller) endpointLocked(id string) bool {
	for _, n := range c.networks {
		if ep, ok := n.endpoints[id]; ok && !ep.deleting {
			return true
		}
	}
	return false
}

// conflict records that ep lost claim ce to another and sets its
// interface down in its sandbox, so the address another host now holds is
// never live here too.
func (m *mirror) conflict(ep *Endpoint, ce *globalstore.ClaimError) {
	n, c := ep.network, ep.network.ctrl
	m.log.Error("global store: an endpoint of this host cannot be claimed again: another holds its claim; it stays down",
		"network", n.name, "endpoint", ep.name, "claim", ce.Claim.String(), "owner", ce.Owner)
	m.mu.Lock()
	if m.conflicts == nil {
		m.conflicts = map[string]Conflict{}
	}
	m.conflicts[ep.id] = Conflict{Network: n.name, Endpoint: ep.name, EndpointID: ep.id, Claim: ce.Claim.String(), Owner: ce.Owner}
	m.mu.Unlock()
	c.mu.Lock()
	js := ep.join
	var s *osl.Sandbox
	if sb := c.sandboxes[ep.sandboxID]; sb != nil {
		s = sb.osSbox
	}
	c.mu.Unlock()
	if js == nil || js.dstName == "" || s == nil {
		return
	}
	if err := s.SetLinkDown(js.dstName); err != nil {
		m.log.Error("global store: setting a conflicting endpoint's interface down", "endpoint", ep.name, "error", err)
	}
}

// globalRecord is ep's record in the store, with its claims: its
// addresses when the network's addresses are the store's (default IPAM).
func (ep *Endpoint) globalRecord() globalstore.Endpoint {
	n, c := ep.network, ep.network.ctrl
	rec := globalstore.Endpoint{ID: ep.id, NetworkID: n.id, Name: ep.name, Host: c.cl.hostID(),
		MAC: ep.iface.mac.String(), Addrs: ep.prefixes(), Aliases: ep.myAliases}
	if _, ours := n.ipam.Ipam.(*globalIPAM); ours {
		for _, p := range rec.Addrs {
			rec.Claims = append(rec.Claims, globalstore.Address(n.id, p.Addr()))
		}
	}
	return rec
}

// peerRecord is where other hosts send ep's frames.
func (ep *Endpoint) peerRecord() globalstore.Peer {
	n, c := ep.network, ep.network.ctrl
	p := globalstore.Peer{EndpointID: ep.id, NetworkID: n.id, Host: c.cl.hostID(), VTEP: c.cl.vtep(),
		MAC: ep.iface.mac.String()}
	for _, pr := range ep.prefixes() {
		p.IPs = append(p.IPs, pr.Addr())
	}
	return p
}

// awaitHostGone waits (at most bound) until the watch has delivered the
// deletes of host id's endpoints, so that once EvictHost returns, this
// controller's candidates no longer hold the evicted host's addresses
// and names: a caller can claim them here at once.
func (m *mirror) awaitHostGone(id string, bound time.Duration) {
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if !m.hasHost(id) {
			return
		}
	}
	m.log.Warn("global store: the watch has not delivered an evicted host's endpoints gone", "host", id, "after", bound)
}

// hasHost reports whether the mirror holds an endpoint of host id.
func (m *mirror) hasHost(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, eps := range m.eps {
		for _, e := range eps {
			if e.Host == id {
				return true
			}
		}
	}
	return false
}

// cutOffLocked reports whether drivers get no peers now: the host is
// fenced, or a new lease's endpoints are not reconciled yet. Caller holds
// m.mu.
func (m *mirror) cutOffLocked() bool { return m.fenced || m.reclaiming }

// refuseConflicted refuses a join of an endpoint that could not be claimed
// again (see Conflict): a new interface would carry a name or address
// another host holds now. Delete it and create it anew instead.
func (ep *Endpoint) refuseConflicted() error {
	m := ep.network.ctrl.mirror
	if !ep.network.global || m == nil {
		return nil
	}
	m.mu.Lock()
	cf, ok := m.conflicts[ep.id]
	m.mu.Unlock()
	if !ok {
		return nil
	}
	return types.ForbiddenErrorf("joining endpoint %s of network %s: it lost its %s to %s while this host was cut off from the global store; delete it and create it anew",
		ep.name, cf.Network, cf.Claim, cf.Owner)
}
