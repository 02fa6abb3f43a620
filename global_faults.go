package libnetwork

import (
	"context"
	"errors"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
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
//     name, addresses and MAC; a claim another host holds now is logged
//     and the endpoint left out of the store (never claimed twice).
//   - Every local endpoint's peer record is made to follow its join.
//
// Each endpoint's work goes through the write queue under its ID, so it
// is ordered with the joins, leaves and deletes of that endpoint and
// retried while the store is away.
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
		m.c.mu.Lock()
		local := make([]*Endpoint, 0, len(n.endpoints))
		for _, ep := range n.endpoints {
			local = append(local, ep)
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
			ep.reconcileGlobal(ss, !stored[ep.id])
		}
	}
}

// reconcileGlobal claims ep again (when missing from the store) on the
// session's lease and makes its peer record follow its join as it is
// when the write runs.
func (ep *Endpoint) reconcileGlobal(ss *globalstore.Session, claim bool) {
	n, c := ep.network, ep.network.ctrl
	st := c.cl.store()
	c.mirror.write(ep.id, "reconcile endpoint "+ep.name+" of network "+n.name, func(ctx context.Context) error {
		c.mu.Lock()
		gone := n.endpoints[ep.id] != ep || ep.deleting
		joined := ep.sandboxID != ""
		c.mu.Unlock()
		if gone {
			return nil
		}
		if claim {
			err := st.CreateEndpoint(ctx, ss.Lease(), ep.globalRecord())
			var ce *globalstore.ClaimError
			switch {
			case errors.As(err, &ce) && ce.Owner == ep.id:
				// Ours already: a write of the previous attempt landed.
			case errors.As(err, &ce):
				c.cfg.Logger.Error("global store: an endpoint of this host cannot be claimed again: another holds it",
					"network", n.name, "endpoint", ep.name, "claim", ce.Claim.String(), "owner", ce.Owner)
				return nil
			case err != nil:
				return err
			}
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
