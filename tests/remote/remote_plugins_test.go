package libnetwork_test

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/vishvananda/netlink"
)

// Plugins for controller-level tests, written with go-plugins-helpers as a
// third party would write them, and served in-process on a listener of the
// test's own (never under /run/docker or /etc/docker).

// transport says how a plugin is published in the plugin directory.
type transport string

const (
	viaSocket   transport = "unix"     // <dir>/<name>.sock
	viaTCPSpec  transport = "tcp-spec" // <dir>/<name>.spec holding tcp://127.0.0.1:port
	viaTCPJSON  transport = "tcp-json" // <dir>/<name>/<name>.json
	testTimeout           = time.Second
)

// publish serves h as plugin name in dir and returns the running server.
// For sockets the server listens at the discovered path itself; for TCP the
// spec file written points at the port.
func publish(t *testing.T, dir, name string, how transport, h plugintest.Handler) *plugintest.Server {
	t.Helper()
	switch how {
	case viaSocket:
		return plugintest.ServeUnix(t, filepath.Join(dir, name+".sock"), h)
	case viaTCPSpec:
		s := plugintest.ServeTCP(t, h)
		plugintest.WriteSpec(t, filepath.Join(dir, name+".spec"), s.Addr)
		return s
	case viaTCPJSON:
		s := plugintest.ServeTCP(t, h)
		plugintest.WriteJSONSpec(t, filepath.Join(dir, name, name+".json"), name, s.Addr, nil)
		return s
	}
	t.Fatalf("unknown transport %q", how)
	return nil
}

// newPluginController is newPrivController whose plugins are found in a
// fresh directory (short, as socket paths must be) and time out after
// timeout.
func newPluginController(t *testing.T, timeout time.Duration) (*libnetwork.Controller, *testutil.HostNS, string) {
	t.Helper()
	testutil.RequireRoot(t)
	dir := plugintest.Dir(t)
	c, host := newPrivController(t, config.OptionPluginDirs(dir), config.OptionPluginTimeout(timeout))
	return c, host, dir
}

// vethPlugin is a network plugin doing what real ones (weave, calico-style)
// do: CreateEndpoint makes a veth pair in the host namespace, Join names
// the container end for the controller to move into the sandbox, and
// DeleteEndpoint deletes the pair. Like real plugins it keeps its state
// and refuses a second create of a network or endpoint ID. It runs in the
// test process, so it makes links with a netlink handle opened in the
// controller's host namespace, not in its own.
type vethPlugin struct {
	nl     *netlink.Handle
	mac    string                 // CreateEndpoint's answer when the controller chose no MAC
	routes []*network.StaticRoute // Join's static routes

	mu      sync.Mutex
	before  func(method string) error // runs first in every call; an error is the plugin's answer
	srcName string                    // overrides Join's SrcName when set
	gateway string                    // overrides Join's Gateway when set
	calls   []string                  // "Method" or "Method <endpoint ID>"
	gws     map[string]string         // network ID -> gateway IP from CreateNetwork
	pools   map[string]string         // network ID -> pool from CreateNetwork
	eps     map[string]*pluginEP
	sawLink map[string]bool // "Leave <eid>"/"DeleteEndpoint <eid>" -> container end was in the host namespace
}

type pluginEP struct{ host, peer string }

func newVethPlugin(t *testing.T, host *testutil.HostNS) *vethPlugin {
	t.Helper()
	nl, err := netlink.NewHandleAt(host.Handle())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	return &vethPlugin{
		nl:  nl,
		mac: "02:42:be:ef:00:07",
		routes: []*network.StaticRoute{
			{Destination: "10.99.0.0/16", RouteType: 0, NextHop: "10.77.0.254"},
			{Destination: "10.98.0.0/24", RouteType: 1},
		},
		gws: map[string]string{}, pools: map[string]string{},
		eps: map[string]*pluginEP{}, sawLink: map[string]bool{},
	}
}

func (p *vethPlugin) enter(method, id string) error {
	p.mu.Lock()
	call := method
	if id != "" {
		call += " " + id
	}
	p.calls = append(p.calls, call)
	hook := p.before
	p.mu.Unlock()
	if hook != nil {
		return hook(method)
	}
	return nil
}

func (p *vethPlugin) setBefore(f func(string) error) { p.mu.Lock(); p.before = f; p.mu.Unlock() }

// count reports how many calls matched call exactly ("Join <eid>").
func (p *vethPlugin) count(call string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (p *vethPlugin) callList() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

func (p *vethPlugin) ep(eid string) *pluginEP {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.eps[eid]
}

func (p *vethPlugin) hostHas(name string) bool {
	_, err := p.nl.LinkByName(name)
	return err == nil
}

func (p *vethPlugin) GetCapabilities() (*network.CapabilitiesResponse, error) {
	if err := p.enter("GetCapabilities", ""); err != nil {
		return nil, err
	}
	return &network.CapabilitiesResponse{Scope: network.LocalScope}, nil
}

func (p *vethPlugin) CreateNetwork(r *network.CreateNetworkRequest) error {
	if err := p.enter("CreateNetwork", r.NetworkID); err != nil {
		return err
	}
	if len(r.IPv4Data) == 0 {
		return errors.New("vethnet needs an IPv4 pool")
	}
	ip, _, err := net.ParseCIDR(r.IPv4Data[0].Gateway)
	if err != nil {
		return fmt.Errorf("gateway %q: %w", r.IPv4Data[0].Gateway, err)
	}
	p.mu.Lock()
	if _, dup := p.gws[r.NetworkID]; dup {
		p.mu.Unlock()
		return fmt.Errorf("network %s exists", r.NetworkID)
	}
	p.gws[r.NetworkID] = ip.String()
	p.pools[r.NetworkID] = r.IPv4Data[0].Pool
	p.mu.Unlock()
	return nil
}

func (p *vethPlugin) AllocateNetwork(r *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return &network.AllocateNetworkResponse{}, p.enter("AllocateNetwork", r.NetworkID)
}

func (p *vethPlugin) DeleteNetwork(r *network.DeleteNetworkRequest) error {
	if err := p.enter("DeleteNetwork", r.NetworkID); err != nil {
		return err
	}
	p.mu.Lock()
	delete(p.gws, r.NetworkID)
	delete(p.pools, r.NetworkID)
	p.mu.Unlock()
	return nil
}

func (p *vethPlugin) FreeNetwork(r *network.FreeNetworkRequest) error {
	return p.enter("FreeNetwork", r.NetworkID)
}

func (p *vethPlugin) CreateEndpoint(r *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	if err := p.enter("CreateEndpoint", r.EndpointID); err != nil {
		return nil, err
	}
	if p.ep(r.EndpointID) != nil {
		return nil, fmt.Errorf("endpoint %s exists", r.EndpointID)
	}
	e := &pluginEP{host: "rh" + r.EndpointID[:8], peer: "rc" + r.EndpointID[:8]}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: e.host}, PeerName: e.peer}
	if err := p.nl.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("creating veth %s: %w", e.host, err)
	}
	if err := p.nl.LinkSetUp(veth); err != nil {
		_ = p.nl.LinkDel(veth)
		return nil, fmt.Errorf("setting %s up: %w", e.host, err)
	}
	p.mu.Lock()
	p.eps[r.EndpointID] = e
	p.mu.Unlock()
	resp := &network.CreateEndpointResponse{}
	if r.Interface == nil || r.Interface.MacAddress == "" {
		resp.Interface = &network.EndpointInterface{MacAddress: p.mac}
	}
	return resp, nil
}

func (p *vethPlugin) DeleteEndpoint(r *network.DeleteEndpointRequest) error {
	if err := p.enter("DeleteEndpoint", r.EndpointID); err != nil {
		return err
	}
	p.mu.Lock()
	e := p.eps[r.EndpointID]
	delete(p.eps, r.EndpointID)
	p.mu.Unlock()
	if e == nil {
		return nil // already gone
	}
	found := p.hostHas(e.peer)
	p.mu.Lock()
	p.sawLink["DeleteEndpoint "+r.EndpointID] = found
	p.mu.Unlock()
	// Deleting one end deletes the pair, wherever the other end is.
	if l, err := p.nl.LinkByName(e.host); err == nil {
		if err := p.nl.LinkDel(l); err != nil {
			return fmt.Errorf("deleting %s: %w", e.host, err)
		}
	}
	return nil
}

func (p *vethPlugin) EndpointInfo(r *network.InfoRequest) (*network.InfoResponse, error) {
	if err := p.enter("EndpointOperInfo", r.EndpointID); err != nil {
		return nil, err
	}
	e := p.ep(r.EndpointID)
	if e == nil {
		return nil, fmt.Errorf("no endpoint %s", r.EndpointID)
	}
	return &network.InfoResponse{Value: map[string]string{"veth.host": e.host, "veth.peer": e.peer}}, nil
}

func (p *vethPlugin) Join(r *network.JoinRequest) (*network.JoinResponse, error) {
	if err := p.enter("Join", r.EndpointID); err != nil {
		return nil, err
	}
	e := p.ep(r.EndpointID)
	if e == nil {
		return nil, fmt.Errorf("no endpoint %s", r.EndpointID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	resp := &network.JoinResponse{
		InterfaceName: network.InterfaceName{SrcName: e.peer, DstPrefix: "eth"},
		Gateway:       p.gws[r.NetworkID],
		StaticRoutes:  p.routes,
	}
	if p.srcName != "" {
		resp.InterfaceName.SrcName = p.srcName
	}
	if p.gateway != "" {
		resp.Gateway = p.gateway
	}
	return resp, nil
}

func (p *vethPlugin) Leave(r *network.LeaveRequest) error {
	if err := p.enter("Leave", r.EndpointID); err != nil {
		return err
	}
	if e := p.ep(r.EndpointID); e != nil {
		found := p.hostHas(e.peer)
		p.mu.Lock()
		p.sawLink["Leave "+r.EndpointID] = found
		p.mu.Unlock()
	}
	return nil
}

func (p *vethPlugin) linkSeen(call string) (seen, called bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen, called = p.sawLink[call]
	return seen, called
}

func (p *vethPlugin) DiscoverNew(*network.DiscoveryNotification) error    { return nil }
func (p *vethPlugin) DiscoverDelete(*network.DiscoveryNotification) error { return nil }

func (p *vethPlugin) ProgramExternalConnectivity(r *network.ProgramExternalConnectivityRequest) error {
	return p.enter("ProgramExternalConnectivity", r.EndpointID)
}

func (p *vethPlugin) RevokeExternalConnectivity(r *network.RevokeExternalConnectivityRequest) error {
	return p.enter("RevokeExternalConnectivity", r.EndpointID)
}

var _ network.Driver = (*vethPlugin)(nil)

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
