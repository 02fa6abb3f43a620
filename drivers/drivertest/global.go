package drivertest

import (
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// GlobalIDsOption is the generic driver option (netlabel.GenericData) of
// a GlobalFake network naming its fixed cluster IDs, comma-separated, as
// the overlay's vxlanid_list does.
const GlobalIDsOption = "fake.cluster-ids"

// GlobalFake is a Fake of global data scope, for controllers sharing a
// global store: it asks for one cluster ID per network (or the fixed ones
// of GlobalIDsOption) and records, per network, the peers the controller
// reports (driverapi.PeerProgrammer) and how many PeerSyncs it got.
type GlobalFake struct {
	*Fake
	// IDMin and IDMax are the range automatic cluster IDs come from.
	IDMin, IDMax uint32

	pmu   sync.Mutex
	peers map[string]map[string]driverapi.Peer // nid -> eid -> peer
	syncs map[string]int
}

// NewGlobalFake returns a global fake of type name choosing IDs from
// [4096, 8191].
func NewGlobalFake(name string) *GlobalFake {
	return &GlobalFake{Fake: NewFake(name), IDMin: 4096, IDMax: 8191,
		peers: map[string]map[string]driverapi.Peer{}, syncs: map[string]int{}}
}

// Capability is what a GlobalFake is registered with.
func (g *GlobalFake) Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.GlobalScope, ConnectivityScope: driverapi.GlobalScope}
}

// ClusterIDs asks for the fixed IDs of GlobalIDsOption, else for one.
func (g *GlobalFake) ClusterIDs(nid string, options map[string]any) (driverapi.ClusterIDRequest, error) {
	req := driverapi.ClusterIDRequest{Count: 1, Min: g.IDMin, Max: g.IDMax}
	gen, _ := options[netlabel.GenericData].(map[string]string)
	if s := gen[GlobalIDsOption]; s != "" {
		req.Count = 0
		for _, f := range strings.Split(s, ",") {
			v, err := strconv.ParseUint(strings.TrimSpace(f), 10, 32)
			if err != nil {
				return req, types.BadRequestErrorf("invalid cluster ID %q: %w", f, err)
			}
			req.Fixed = append(req.Fixed, uint32(v))
		}
	}
	return req, nil
}

// CreateNetwork refuses a network without the cluster IDs it asked for.
func (g *GlobalFake) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	if len(req.ClusterIDs) == 0 {
		return types.BadRequestErrorf("network %s: no cluster IDs", req.NetworkID)
	}
	return g.Fake.CreateNetwork(req)
}

// DeleteNetwork forgets the network's peers too.
func (g *GlobalFake) DeleteNetwork(nid string) error {
	if err := g.Fake.DeleteNetwork(nid); err != nil {
		return err
	}
	g.pmu.Lock()
	delete(g.peers, nid)
	delete(g.syncs, nid)
	g.pmu.Unlock()
	return nil
}

// PeerAdd records p.
func (g *GlobalFake) PeerAdd(nid string, p driverapi.Peer) error {
	if _, ok := g.Network(nid); !ok {
		return driverapi.ErrNoNetwork(nid)
	}
	g.pmu.Lock()
	defer g.pmu.Unlock()
	if g.peers[nid] == nil {
		g.peers[nid] = map[string]driverapi.Peer{}
	}
	g.peers[nid][p.EndpointID] = p
	return nil
}

// PeerDelete forgets one peer; unknown is fine.
func (g *GlobalFake) PeerDelete(nid, eid string) error {
	g.pmu.Lock()
	defer g.pmu.Unlock()
	delete(g.peers[nid], eid)
	return nil
}

// PeerSync replaces the network's peers.
func (g *GlobalFake) PeerSync(nid string, peers []driverapi.Peer) error {
	if _, ok := g.Network(nid); !ok {
		return driverapi.ErrNoNetwork(nid)
	}
	g.pmu.Lock()
	defer g.pmu.Unlock()
	m := map[string]driverapi.Peer{}
	for _, p := range peers {
		m[p.EndpointID] = p
	}
	g.peers[nid] = m
	g.syncs[nid]++
	return nil
}

// Peers returns the network's peers, sorted by endpoint ID.
func (g *GlobalFake) Peers(nid string) []driverapi.Peer {
	g.pmu.Lock()
	defer g.pmu.Unlock()
	out := make([]driverapi.Peer, 0, len(g.peers[nid]))
	for _, p := range g.peers[nid] {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].EndpointID < out[j].EndpointID })
	return out
}

// Syncs returns how many PeerSyncs the network got.
func (g *GlobalFake) Syncs(nid string) int {
	g.pmu.Lock()
	defer g.pmu.Unlock()
	return g.syncs[nid]
}

var (
	_ driverapi.PeerProgrammer     = (*GlobalFake)(nil)
	_ driverapi.ClusterIDRequester = (*GlobalFake)(nil)
)
