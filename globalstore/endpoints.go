package globalstore

import (
	"context"
	"encoding/json"

	"github.com/opencnm/libnetwork/types"
)

// CreateEndpoint writes e on lease (its host's Session lease) and claims its
// name in the network and e.Claims (its addresses), owned by e.ID on the
// same lease, in one transaction that also requires the network to exist.
// A taken name or address is Forbidden wrapping *ClaimError; an unknown
// network NotFound; a store that does not answer NoService, leaving nothing.
func (s *Store) CreateEndpoint(ctx context.Context, lease LeaseID, e Endpoint) error {
	if e.ID == "" || e.NetworkID == "" || e.Name == "" {
		return types.BadRequestErrorf("global store: create endpoint: ID, network and name are required")
	}
	for _, c := range e.Claims {
		if c.Scope != e.NetworkID || (c.Kind != ClaimAddress && c.Kind != ClaimEndpointName) {
			return types.BadRequestErrorf("global store: create endpoint %s: claim %s is not of its network", e.Name, c)
		}
	}
	claims := append([]Claim{EndpointName(e.NetworkID, e.Name)}, e.Claims...)
	rec := Put(s.k.ep(e.NetworkID, e.ID), mustJSON(e), lease)
	return s.create(ctx, "create endpoint "+e.Name, e.ID, lease, claims,
		[]Cond{Exists(s.k.config(e.NetworkID))}, []Op{rec})
}

// Endpoint reads one endpoint record linearizably; NotFound when absent.
func (s *Store) Endpoint(ctx context.Context, nid, eid string) (Endpoint, error) {
	var e Endpoint
	err := s.get(ctx, "endpoint "+eid, s.k.ep(nid, eid), &e)
	return e, err
}

// Endpoints lists the endpoints of network nid on every host.
func (s *Store) Endpoints(ctx context.Context, nid string) ([]Endpoint, error) {
	var es []Endpoint
	_, err := s.list(ctx, "list endpoints of "+nid, s.k.eps(nid), nil, func(b []byte) error {
		var e Endpoint
		err := json.Unmarshal(b, &e)
		es = append(es, e)
		return err
	})
	return es, err
}

// DeleteEndpoint deletes endpoint eid of network nid with its peer record
// and releases its claims, in one transaction guarded by the record being
// the one read. An endpoint already gone is success.
func (s *Store) DeleteEndpoint(ctx context.Context, nid, eid string) error {
	for try := 0; try < 3; try++ {
		cctx, cancel := s.ctx(ctx)
		kv, ok, err := s.kv.Get(cctx, s.k.ep(nid, eid))
		if err != nil || !ok {
			cancel()
			return unavailableOrNil("delete endpoint "+eid, err)
		}
		var e Endpoint
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			cancel()
			return types.InternalErrorf("global store: delete endpoint %s: %w", eid, err)
		}
		conds := []Cond{Equals(kv.Key, kv.Value)}
		ops := []Op{Delete(kv.Key), Delete(s.k.peer(nid, eid))}
		for _, c := range append([]Claim{EndpointName(nid, e.Name)}, e.Claims...) {
			conds = append(conds, Equals(s.k.claim(c), []byte(eid)))
			ops = append(ops, Delete(s.k.claim(c)))
		}
		res, err := s.kv.Txn(cctx, conds, ops)
		cancel()
		if err != nil {
			return unavailable("delete endpoint "+e.Name, err)
		}
		if res.Succeeded {
			return nil
		}
		// The record changed, or a claim is no longer ours (it expired and
		// was claimed again): delete only what is still ours.
		if v, ok := res.Values[kv.Key]; ok && string(v) == string(kv.Value) {
			if err := s.deleteOwned(ctx, eid, kv.Key, s.k.peer(nid, eid), append([]Claim{EndpointName(nid, e.Name)}, e.Claims...)); err != nil {
				return err
			}
			return nil
		}
	}
	return types.InternalErrorf("global store: delete endpoint %s: the record kept changing", eid)
}

// deleteOwned deletes the record keys and, one by one, the claims owner
// still holds.
func (s *Store) deleteOwned(ctx context.Context, owner, rec, peer string, claims []Claim) error {
	if err := s.Release(ctx, owner, claims...); err != nil {
		return err
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, err := s.kv.Txn(cctx, nil, []Op{Delete(rec), Delete(peer)}); err != nil {
		return unavailable("delete endpoint "+owner, err)
	}
	return nil
}

// PutPeer writes (or replaces) the peer record of an endpoint on lease,
// only while the endpoint's record exists, so a peer never outlives it.
func (s *Store) PutPeer(ctx context.Context, lease LeaseID, p Peer) error {
	if p.EndpointID == "" || p.NetworkID == "" {
		return types.BadRequestErrorf("global store: put peer: endpoint and network are required")
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	res, err := s.kv.Txn(ctx, []Cond{Exists(s.k.ep(p.NetworkID, p.EndpointID))},
		[]Op{Put(s.k.peer(p.NetworkID, p.EndpointID), mustJSON(p), lease)})
	if err != nil {
		return unavailable("put peer "+p.EndpointID, err)
	}
	if !res.Succeeded {
		return types.NotFoundErrorf("global store: put peer: endpoint %s of network %s not found", p.EndpointID, p.NetworkID)
	}
	return nil
}

// DeletePeer deletes the peer record of an endpoint; absent is success.
func (s *Store) DeletePeer(ctx context.Context, nid, eid string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if _, err := s.kv.Txn(ctx, nil, []Op{Delete(s.k.peer(nid, eid))}); err != nil {
		return unavailable("delete peer "+eid, err)
	}
	return nil
}

// Peers lists the peer records of network nid.
func (s *Store) Peers(ctx context.Context, nid string) ([]Peer, error) {
	var ps []Peer
	_, err := s.list(ctx, "list peers of "+nid, s.k.peers(nid), nil, func(b []byte) error {
		var p Peer
		err := json.Unmarshal(b, &p)
		ps = append(ps, p)
		return err
	})
	return ps, err
}
