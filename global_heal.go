package libnetwork

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/types"
)

// Heal: a lease lost (expired during a partition, or the host evicted)
// took this host's endpoints, names, addresses and peers out of the store,
// and other hosts may have claimed them since. On the next session the
// cluster keeps the fence on (drivers get no peers) and, before the
// session is used, the mirror claims every endpoint of this host again on
// the new lease, with the same IDs, names, MACs and addresses (Store.
// CreateEndpoint is owner-idempotent), and writes the peers of the joined
// ones; only then does forwarding resume. An endpoint whose name or an
// address another host took meanwhile is kept down: its claim and peer are
// not in the store (so no host forwards to it), its interface in its
// sandbox is set down (so it sends nothing with an address that is someone
// else's), and Controller.Conflicts lists it until it is deleted or a
// later heal claims it after all. It is never given another address: the
// caller decides (delete it and create another).
//
// At the first session of a run the same runs as the restart reconcile:
// on a lease kept across the restart, this host's store endpoints with no
// local endpoint (a crash between the store write and the local write of a
// create, or between the two deletes of a delete) are deleted, and local
// endpoints the store lacks are claimed again as above.

// healer does the heals the cluster asks for (the mirror).
type healer interface {
	// heal claims this host's endpoints again on ss; reconcile also
	// deletes this host's store endpoints that have no local endpoint.
	// An error is the store not answering: the cluster retries.
	heal(ctx context.Context, ss *globalstore.Session, reconcile bool) error
}

// Conflict is an endpoint of a global network kept down after a heal:
// while this host's lease was gone, another host claimed its name or one
// of its addresses.
type Conflict struct {
	Network, NetworkID   string
	Endpoint, EndpointID string
	Claim                string // what is taken, e.g. `address 10.0.0.2 in network <id>`
	Owner                string // the ID of the endpoint (or network) holding it now
	Host                 string // the owner's host, "" if unknown
}

// Conflicts lists the endpoints of global networks on this host kept
// down after a heal because their claim was taken, sorted by network and
// endpoint name. A controller without a global store has none.
func (c *Controller) Conflicts() []Conflict {
	if c.mirror == nil {
		return nil
	}
	m := c.mirror
	m.mu.Lock()
	out := make([]Conflict, 0, len(m.conflicts))
	for _, cf := range m.conflicts {
		out = append(out, cf)
	}
	m.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Network != out[j].Network {
			return out[i].Network < out[j].Network
		}
		return out[i].Endpoint < out[j].Endpoint
	})
	return out
}

// heal implements healer.
func (m *mirror) heal(ctx context.Context, ss *globalstore.Session, reconcile bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)()
	start := time.Now()
	var stored, peered map[string]bool
	orphans := 0
	if reconcile {
		var err error
		if stored, peered, orphans, err = m.reconcileStore(ctx); err != nil {
			return err
		}
	}
	claimed, kept := 0, 0
	for _, ep := range m.c.globalEndpoints() {
		done, down, err := m.reclaim(ctx, ss, ep, stored, peered)
		if err != nil {
			return err
		}
		if done {
			claimed++
		}
		if down {
			kept++
		}
	}
	m.log.Info("global store: this host's endpoints claimed again", "lease", int64(ss.Lease()),
		"claimed", claimed, "kept down", kept, "orphans deleted", orphans, "took", time.Since(start))
	return nil
}

// reconcileStore deletes this host's endpoints in the store that have no
// local endpoint and returns the IDs of those that have one (stored), and
// of those with a peer record (peered).
func (m *mirror) reconcileStore(ctx context.Context) (stored, peered map[string]bool, orphans int, err error) {
	st := m.c.cl.store()
	nets, _, err := st.Networks(ctx)
	if err != nil {
		return nil, nil, 0, err
	}
	local := map[string]bool{}
	for _, ep := range m.c.globalEndpoints() {
		local[ep.id] = true
	}
	stored, peered = map[string]bool{}, map[string]bool{}
	for _, n := range nets {
		eps, err := st.Endpoints(ctx, n.ID)
		if err != nil {
			return nil, nil, 0, err
		}
		peers, err := st.Peers(ctx, n.ID)
		if err != nil {
			return nil, nil, 0, err
		}
		for _, p := range peers {
			if p.Host == m.self {
				peered[p.EndpointID] = true
			}
		}
		for _, e := range eps {
			if e.Host != m.self {
				continue
			}
			if local[e.ID] {
				stored[e.ID] = true
				continue
			}
			if err := m.deleteOrphan(ctx, e); err != nil {
				return nil, nil, 0, err
			}
			orphans++
		}
	}
	return stored, peered, orphans, nil
}

// deleteOrphan deletes endpoint e of this host, unknown here, from the
// store, unless an endpoint of that ID appeared here meanwhile.
func (m *mirror) deleteOrphan(ctx context.Context, e globalstore.Endpoint) error {
	unlock := m.lockFor(e.ID)
	defer unlock()
	for _, ep := range m.c.globalEndpoints() {
		if ep.id == e.ID {
			return nil
		}
	}
	m.log.Info("global store: deleting an endpoint of this host it has no record of (left by a crash)",
		"endpoint", e.Name, "id", e.ID, "network", e.NetworkID)
	return m.c.cl.store().DeleteEndpoint(ctx, e.NetworkID, e.ID)
}

// reclaim claims ep on ss's lease again unless stored has it, and writes
// its peer if it is joined, or deletes it if peered has one for it while
// it is not (a crash between a leave and its store write); done reports
// the claim made, down that it was taken and ep is kept down. err is only
// the store not answering.
func (m *mirror) reclaim(ctx context.Context, ss *globalstore.Session, ep *Endpoint, stored, peered map[string]bool) (done, down bool, err error) {
	unlock := m.lockFor(ep.id)
	defer unlock()
	n, c := ep.network, ep.network.ctrl
	c.mu.Lock()
	live := n.endpoints[ep.id] == ep && !ep.deleting && !n.deleting
	joined := ep.sandboxID != ""
	c.mu.Unlock()
	if !live {
		return false, false, nil // being deleted: its delete is queued
	}
	st := c.cl.store()
	if !stored[ep.id] {
		err := st.CreateEndpoint(ctx, ss.Lease(), ep.storeRecord())
		var ce *globalstore.ClaimError
		switch {
		case err == nil:
			done = true
		case errors.As(err, &ce):
			m.keepDown(ctx, ep, ce, joined)
			return false, true, nil
		case retriable(err):
			return false, false, err
		case types.IsNotFound(err):
			// The network is gone from the store: the mirror drops it.
			m.log.Info("global store: endpoint not claimed again, its network is gone", "endpoint", ep.name, "network", n.name)
			return false, false, nil
		default:
			m.log.Warn("global store: claiming endpoint again", "endpoint", ep.name, "network", n.name, "error", err)
			return false, false, nil
		}
	}
	if m.clearConflict(ep.id) && joined {
		ep.setLinkUp(true)
	}
	if joined {
		err := st.PutPeer(ctx, ss.Lease(), ep.peerRecord())
		if retriable(err) {
			return done, false, err
		}
		if err != nil && !types.IsNotFound(err) {
			m.log.Warn("global store: writing the peer of an endpoint claimed again", "endpoint", ep.name, "network", n.name, "error", err)
		}
	} else if peered[ep.id] {
		m.log.Info("global store: deleting the peer of an endpoint not joined here (left by a crash)", "endpoint", ep.name, "network", n.name)
		err := st.DeletePeer(ctx, n.id, ep.id)
		if retriable(err) {
			return done, false, err
		}
		if err != nil {
			m.log.Warn("global store: deleting the peer of an endpoint not joined here", "endpoint", ep.name, "network", n.name, "error", err)
		}
	}
	return done, false, nil
}

// keepDown records ep as a conflict over ce and, if joined, sets its
// interface down.
func (m *mirror) keepDown(ctx context.Context, ep *Endpoint, ce *globalstore.ClaimError, joined bool) {
	n := ep.network
	cf := Conflict{Network: n.name, NetworkID: n.id, Endpoint: ep.name, EndpointID: ep.id,
		Claim: ce.Claim.String(), Owner: ce.Owner}
	if other, err := n.ctrl.cl.store().Endpoint(ctx, n.id, ce.Owner); err == nil {
		cf.Host = other.Host
	}
	if joined {
		ep.setLinkUp(false) // before it is listed: a listed conflict is down
	}
	m.mu.Lock()
	m.conflicts[ep.id] = cf
	m.mu.Unlock()
	m.log.Warn("global store: endpoint kept down, its claim was taken while this host's lease was gone",
		"endpoint", ep.name, "network", n.name, "claim", cf.Claim, "owner", cf.Owner, "owner host", cf.Host)
}

// clearConflict forgets ep's conflict, reporting whether it had one.
func (m *mirror) clearConflict(eid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, had := m.conflicts[eid]
	delete(m.conflicts, eid)
	return had
}

// conflicted reports whether endpoint eid is kept down.
func (m *mirror) conflicted(eid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.conflicts[eid]
	return ok
}

// globalEndpoints returns this host's endpoints of global networks.
func (c *Controller) globalEndpoints() []*Endpoint {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Endpoint
	for _, n := range c.networks {
		if !n.global || n.deleting {
			continue
		}
		for _, ep := range n.endpoints {
			out = append(out, ep)
		}
	}
	return out
}

// setLinkUp sets the interface of the joined endpoint up or down in its
// sandbox's namespace. Best effort (logged): a sandbox without a
// namespace yet (an external key not set) has no interface to set.
func (ep *Endpoint) setLinkUp(up bool) {
	c := ep.network.ctrl
	c.mu.Lock()
	sb := c.sandboxes[ep.sandboxID]
	js := ep.join
	c.mu.Unlock()
	if sb == nil || js == nil || js.dstName == "" {
		return
	}
	c.mu.Lock()
	s := sb.osSbox
	c.mu.Unlock()
	if s == nil {
		return
	}
	if err := s.SetLinkUp(js.dstName, up); err != nil {
		c.mirror.log.Warn("setting the interface of an endpoint kept down", "endpoint", ep.name, "up", up, "error", err)
	}
}
