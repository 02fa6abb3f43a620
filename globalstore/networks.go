package globalstore

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"

	"github.com/opencnm/libnetwork/types"
)

// CreateNetwork writes n and claims its name and n.Claims (VNIs, pools,
// gateway addresses), owned by n.ID on no lease, in one transaction. A
// taken name or claim is Forbidden wrapping *ClaimError; a store that does
// not answer is NoService, and nothing is left behind.
func (s *Store) CreateNetwork(ctx context.Context, n Network) error {
	if n.ID == "" || n.Name == "" {
		return types.BadRequestErrorf("global store: create network: ID and name are required")
	}
	for _, c := range n.Claims {
		if (c.Kind == ClaimAddress || c.Kind == ClaimEndpointName) && c.Scope != n.ID {
			return types.BadRequestErrorf("global store: create network %s: claim %s is not of the network", n.Name, c)
		}
	}
	claims := append([]Claim{NetworkName(n.Name)}, n.Claims...)
	rec := Put(s.k.config(n.ID), mustJSON(n), NoLease)
	return s.create(ctx, "create network "+n.Name, n.ID, NoLease, claims, nil, []Op{rec})
}

// Network reads the network with ID id, linearizably (a network another
// host created a moment ago is found). NotFound when there is none.
func (s *Store) Network(ctx context.Context, id string) (Network, error) {
	var n Network
	err := s.get(ctx, "network "+id, s.k.config(id), &n)
	return n, err
}

// NetworkByName reads the network named name, linearizably.
func (s *Store) NetworkByName(ctx context.Context, name string) (Network, error) {
	id, err := s.Holder(ctx, NetworkName(name))
	if err != nil {
		return Network{}, err
	}
	if id == "" {
		return Network{}, types.NotFoundErrorf("global store: network %q: not found", name)
	}
	return s.Network(ctx, id)
}

// Networks lists every global network, each with its Revision, and the
// revision of the listing.
func (s *Store) Networks(ctx context.Context) ([]Network, int64, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	kvs, rev, err := s.kv.List(cctx, s.k.nets())
	if err != nil {
		return nil, 0, unavailable("list networks", err)
	}
	var ns []Network
	for _, kv := range kvs {
		if !strings.HasSuffix(kv.Key, "/config") {
			continue
		}
		var n Network
		if err := json.Unmarshal(kv.Value, &n); err != nil {
			return nil, 0, types.InternalErrorf("global store: list networks: decode %s: %w", kv.Key, err)
		}
		n.Revision = kv.ModRevision
		ns = append(ns, n)
	}
	return ns, rev, nil
}

// ActiveEndpointsError is why a network with endpoints cannot be deleted:
// Endpoints maps endpoint names to the hosts they are on (a few of them).
type ActiveEndpointsError struct {
	Network   string
	Endpoints map[string]string
}

func (e *ActiveEndpointsError) Error() string {
	var where []string
	for name, host := range e.Endpoints {
		where = append(where, name+" on host "+host)
	}
	sort.Strings(where)
	return "network " + e.Network + " has active endpoints: " + strings.Join(where, ", ")
}

// DeleteNetwork deletes network id with everything under it and releases
// its claims, in one transaction guarded by "it has no endpoint on any
// host". With endpoints it is Forbidden wrapping *ActiveEndpointsError. A
// network already gone is success.
func (s *Store) DeleteNetwork(ctx context.Context, id string) error {
	n, err := s.Network(ctx, id)
	if types.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	conds := []Cond{PrefixEmpty(s.k.eps(id)), Exists(s.k.config(id))}
	ops := []Op{DeletePrefix(s.k.net(id))}
	for _, c := range append([]Claim{NetworkName(n.Name)}, n.Claims...) {
		if c.Kind == ClaimEndpointName || c.Kind == ClaimAddress {
			continue // under the network's prefix
		}
		// A claim another owner holds (it cannot be: claims are only
		// released by their owner) is left alone by the guarded delete
		// below, so the network still goes.
		ops = append(ops, Delete(s.k.claim(c)))
		conds = append(conds, Equals(s.k.claim(c), []byte(id)))
	}
	res, err := s.kv.Txn(cctx, conds, ops)
	if err != nil {
		return unavailable("delete network "+n.Name, err)
	}
	if res.Succeeded {
		return nil
	}
	busy := &ActiveEndpointsError{Network: n.Name, Endpoints: map[string]string{}}
	for k, v := range res.Values {
		if !strings.HasPrefix(k, s.k.eps(id)) {
			continue
		}
		var e Endpoint
		if json.Unmarshal(v, &e) == nil {
			busy.Endpoints[e.Name] = e.Host
		}
	}
	if len(busy.Endpoints) > 0 {
		return types.ForbiddenErrorf("global store: delete network %s: %w", n.Name, busy)
	}
	if _, ok := res.Values[s.k.config(id)]; !ok {
		return nil // deleted meanwhile
	}
	return types.InternalErrorf("global store: delete network %s: %w", n.Name,
		errors.New("a claim of the network is held by another owner"))
}
