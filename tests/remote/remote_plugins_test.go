package remote

import (
	"fmt"
	"slices"
	"sync"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"

	"github.com/opencnm/libnetwork/internal/testrig"
)

// Plugins for controller-level tests, written with go-plugins-helpers as a
// third party would write them, and served in-process on a listener of the
// test's own (never under /run/docker or /etc/docker).

var _ network.Driver = (*testrig.VethPlugin)(nil)

// poolPlugin is an IPAM plugin handing out one pool, 10.88.0.0/24, with an
// unusual gateway (.254) and addresses from .10 up, so a test can tell its
// choices from the built-in allocator's.
type poolPlugin struct {
	mu       sync.Mutex
	calls    []string            // "Method" or "Method <arg>"
	gwOpts   []map[string]string // options of gateway requests
	inUse    map[string]bool     // addresses handed out and not released
	pools    map[string]bool     // pool IDs handed out and not released
	next     int
	failOn   string // method answered with an error
	poolsCnt int
}

func newPoolPlugin() *poolPlugin {
	return &poolPlugin{inUse: map[string]bool{}, pools: map[string]bool{}, next: 10}
}

func (p *poolPlugin) enter(call, method string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, call)
	if p.failOn == method {
		return fmt.Errorf("pool plugin refuses %s", method)
	}
	return nil
}

func (p *poolPlugin) callList() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func (p *poolPlugin) GetCapabilities() (*ipam.CapabilitiesResponse, error) {
	return &ipam.CapabilitiesResponse{}, p.enter("GetCapabilities", "GetCapabilities")
}

func (p *poolPlugin) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	return &ipam.AddressSpacesResponse{LocalDefaultAddressSpace: "poolspace", GlobalDefaultAddressSpace: "poolglobal"},
		p.enter("GetDefaultAddressSpaces", "GetDefaultAddressSpaces")
}

func (p *poolPlugin) RequestPool(r *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	if err := p.enter("RequestPool "+r.AddressSpace+" "+r.Pool, "RequestPool"); err != nil {
		return nil, err
	}
	if r.V6 || (r.Pool != "" && r.Pool != "10.88.0.0/24") {
		return nil, fmt.Errorf("pool plugin has only 10.88.0.0/24")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.poolsCnt++
	id := fmt.Sprintf("pool-%d", p.poolsCnt)
	p.pools[id] = true
	return &ipam.RequestPoolResponse{PoolID: id, Pool: "10.88.0.0/24"}, nil
}

func (p *poolPlugin) ReleasePool(r *ipam.ReleasePoolRequest) error {
	if err := p.enter("ReleasePool "+r.PoolID, "ReleasePool"); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pools, r.PoolID)
	return nil
}

func (p *poolPlugin) RequestAddress(r *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	if err := p.enter("RequestAddress "+r.PoolID+" "+r.Address, "RequestAddress"); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var ip string
	switch {
	case r.Options["RequestAddressType"] == "com.docker.network.gateway":
		p.gwOpts = append(p.gwOpts, r.Options)
		ip = "10.88.0.254"
	case r.Address != "":
		ip = r.Address
	default:
		ip = fmt.Sprintf("10.88.0.%d", p.next)
		p.next++
	}
	if p.inUse[ip] {
		return nil, fmt.Errorf("address %s in use", ip)
	}
	p.inUse[ip] = true
	return &ipam.RequestAddressResponse{Address: ip + "/24"}, nil
}

func (p *poolPlugin) ReleaseAddress(r *ipam.ReleaseAddressRequest) error {
	if err := p.enter("ReleaseAddress "+r.Address, "ReleaseAddress"); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.inUse, r.Address)
	return nil
}

// held lists what the plugin has handed out and not had back.
func (p *poolPlugin) held() (addrs, pools []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a := range p.inUse {
		addrs = append(addrs, a)
	}
	for id := range p.pools {
		pools = append(pools, id)
	}
	slices.Sort(addrs)
	slices.Sort(pools)
	return addrs, pools
}

var _ ipam.Ipam = (*poolPlugin)(nil)
