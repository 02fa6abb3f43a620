package testrig

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/plugins/plugintest"
)

// Transport says how a plugin is published in the plugin directory.
type Transport string

const (
	ViaSocket  Transport = "unix"     // <dir>/<name>.sock
	ViaTCPSpec Transport = "tcp-spec" // <dir>/<name>.spec holding tcp://127.0.0.1:port
	ViaTCPJSON Transport = "tcp-json" // <dir>/<name>/<name>.json
)

// PluginTimeout is the plugin call timeout the remote tests give their
// controllers (NewPluginController) when a test waits one out.
const PluginTimeout = time.Second

// Publish serves h as plugin name in dir and returns the running server.
// A controller already using dir stops before the server does.
// For sockets the server listens at the discovered path itself; for TCP the
// spec file written points at the port.
func Publish(t *testing.T, dir, name string, how Transport, h plugintest.Handler) *plugintest.Server {
	t.Helper()
	s := publish(t, dir, name, how, h)
	stopBefore(t, dir)
	return s
}

func publish(t *testing.T, dir, name string, how Transport, h plugintest.Handler) *plugintest.Server {
	t.Helper()
	switch how {
	case ViaSocket:
		return plugintest.ServeUnix(t, filepath.Join(dir, name+".sock"), h)
	case ViaTCPSpec:
		s := plugintest.ServeTCP(t, h)
		plugintest.WriteSpec(t, filepath.Join(dir, name+".spec"), s.Addr)
		return s
	case ViaTCPJSON:
		s := plugintest.ServeTCP(t, h)
		plugintest.WriteJSONSpec(t, filepath.Join(dir, name, name+".json"), name, s.Addr, nil)
		return s
	}
	t.Fatalf("unknown transport %q", how)
	return nil
}

// NewPluginController is newPrivController whose plugins are found in a
// fresh directory (short, as socket paths must be) and time out after
// timeout.
func NewPluginController(t *testing.T, timeout time.Duration) (*libnetwork.Controller, *testutil.HostNS, string) {
	t.Helper()
	testutil.RequireRoot(t)
	dir := plugintest.Dir(t)
	c, host := NewPrivController(t, config.OptionPluginDirs(dir), config.OptionPluginTimeout(timeout))
	return c, host, dir
}

// VethPlugin is a network plugin doing what real ones (weave, calico-style)
// do: CreateEndpoint makes a veth pair in the host namespace, Join names
// the container end for the controller to move into the sandbox, and
// DeleteEndpoint deletes the pair. Like real plugins it keeps its state
// and refuses a second create of a network or endpoint ID. It runs in the
// test process, so it makes links with a netlink handle opened in the
// controller's host namespace, not in its own.
type VethPlugin struct {
	nl     *netlink.Handle
	Mac    string                 // CreateEndpoint's answer when the controller chose no MAC
	Routes []*network.StaticRoute // Join's static routes

	Mu          sync.Mutex
	before      func(method string) error // runs first in every call; an error is the plugin's answer
	SrcName     string                    // overrides Join's SrcName when set
	Gateway     string                    // overrides Join's Gateway when set
	calls       []string                  // "Method" or "Method <endpoint ID>"
	NetGateways map[string]string         // network ID -> gateway IP from CreateNetwork
	Pools       map[string]string         // network ID -> pool from CreateNetwork
	eps         map[string]*PluginEndpoint
	sawLink     map[string]bool // "Leave <eid>"/"DeleteEndpoint <eid>" -> container end was in the host namespace
}

// PluginEndpoint is the veth pair VethPlugin made for an endpoint: Host
// stays in the host namespace, Peer is the end the controller moves.
type PluginEndpoint struct{ Host, Peer string }

func NewVethPlugin(t *testing.T, host *testutil.HostNS) *VethPlugin {
	t.Helper()
	nl, err := netlink.NewHandleAt(host.Handle())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nl.Close)
	return &VethPlugin{
		nl:  nl,
		Mac: "02:42:be:ef:00:07",
		Routes: []*network.StaticRoute{
			{Destination: "10.99.0.0/16", RouteType: 0, NextHop: "10.77.0.254"},
			{Destination: "10.98.0.0/24", RouteType: 1},
		},
		NetGateways: map[string]string{}, Pools: map[string]string{},
		eps: map[string]*PluginEndpoint{}, sawLink: map[string]bool{},
	}
}

func (p *VethPlugin) enter(method, id string) error {
	p.Mu.Lock()
	call := method
	if id != "" {
		call += " " + id
	}
	p.calls = append(p.calls, call)
	hook := p.before
	p.Mu.Unlock()
	if hook != nil {
		return hook(method)
	}
	return nil
}

func (p *VethPlugin) SetBefore(f func(string) error) { p.Mu.Lock(); p.before = f; p.Mu.Unlock() }

// Count reports how many calls matched call exactly ("Join <eid>").
func (p *VethPlugin) Count(call string) int {
	p.Mu.Lock()
	defer p.Mu.Unlock()
	n := 0
	for _, c := range p.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (p *VethPlugin) CallList() []string {
	p.Mu.Lock()
	defer p.Mu.Unlock()
	return slices.Clone(p.calls)
}

func (p *VethPlugin) Endpoint(eid string) *PluginEndpoint {
	p.Mu.Lock()
	defer p.Mu.Unlock()
	return p.eps[eid]
}

func (p *VethPlugin) HostHas(name string) bool {
	_, err := p.nl.LinkByName(name)
	return err == nil
}

func (p *VethPlugin) GetCapabilities() (*network.CapabilitiesResponse, error) {
	if err := p.enter("GetCapabilities", ""); err != nil {
		return nil, err
	}
	return &network.CapabilitiesResponse{Scope: network.LocalScope}, nil
}

func (p *VethPlugin) CreateNetwork(r *network.CreateNetworkRequest) error {
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
	p.Mu.Lock()
	if _, dup := p.NetGateways[r.NetworkID]; dup {
		p.Mu.Unlock()
		return fmt.Errorf("network %s exists", r.NetworkID)
	}
	p.NetGateways[r.NetworkID] = ip.String()
	p.Pools[r.NetworkID] = r.IPv4Data[0].Pool
	p.Mu.Unlock()
	return nil
}

func (p *VethPlugin) AllocateNetwork(r *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return &network.AllocateNetworkResponse{}, p.enter("AllocateNetwork", r.NetworkID)
}

func (p *VethPlugin) DeleteNetwork(r *network.DeleteNetworkRequest) error {
	if err := p.enter("DeleteNetwork", r.NetworkID); err != nil {
		return err
	}
	p.Mu.Lock()
	delete(p.NetGateways, r.NetworkID)
	delete(p.Pools, r.NetworkID)
	p.Mu.Unlock()
	return nil
}

func (p *VethPlugin) FreeNetwork(r *network.FreeNetworkRequest) error {
	return p.enter("FreeNetwork", r.NetworkID)
}

func (p *VethPlugin) CreateEndpoint(r *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	if err := p.enter("CreateEndpoint", r.EndpointID); err != nil {
		return nil, err
	}
	if p.Endpoint(r.EndpointID) != nil {
		return nil, fmt.Errorf("endpoint %s exists", r.EndpointID)
	}
	e := &PluginEndpoint{Host: "rh" + r.EndpointID[:8], Peer: "rc" + r.EndpointID[:8]}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: e.Host}, PeerName: e.Peer}
	if err := p.nl.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("creating veth %s: %w", e.Host, err)
	}
	if err := p.nl.LinkSetUp(veth); err != nil {
		_ = p.nl.LinkDel(veth)
		return nil, fmt.Errorf("setting %s up: %w", e.Host, err)
	}
	p.Mu.Lock()
	p.eps[r.EndpointID] = e
	p.Mu.Unlock()
	resp := &network.CreateEndpointResponse{}
	if r.Interface == nil || r.Interface.MacAddress == "" {
		resp.Interface = &network.EndpointInterface{MacAddress: p.Mac}
	}
	return resp, nil
}

func (p *VethPlugin) DeleteEndpoint(r *network.DeleteEndpointRequest) error {
	if err := p.enter("DeleteEndpoint", r.EndpointID); err != nil {
		return err
	}
	p.Mu.Lock()
	e := p.eps[r.EndpointID]
	delete(p.eps, r.EndpointID)
	p.Mu.Unlock()
	if e == nil {
		return nil // already gone
	}
	found := p.HostHas(e.Peer)
	p.Mu.Lock()
	p.sawLink["DeleteEndpoint "+r.EndpointID] = found
	p.Mu.Unlock()
	// Deleting one end deletes the pair, wherever the other end is.
	if l, err := p.nl.LinkByName(e.Host); err == nil {
		if err := p.nl.LinkDel(l); err != nil {
			return fmt.Errorf("deleting %s: %w", e.Host, err)
		}
	}
	return nil
}

func (p *VethPlugin) EndpointInfo(r *network.InfoRequest) (*network.InfoResponse, error) {
	if err := p.enter("EndpointOperInfo", r.EndpointID); err != nil {
		return nil, err
	}
	e := p.Endpoint(r.EndpointID)
	if e == nil {
		return nil, fmt.Errorf("no endpoint %s", r.EndpointID)
	}
	return &network.InfoResponse{Value: map[string]string{"veth.host": e.Host, "veth.peer": e.Peer}}, nil
}

func (p *VethPlugin) Join(r *network.JoinRequest) (*network.JoinResponse, error) {
	if err := p.enter("Join", r.EndpointID); err != nil {
		return nil, err
	}
	e := p.Endpoint(r.EndpointID)
	if e == nil {
		return nil, fmt.Errorf("no endpoint %s", r.EndpointID)
	}
	p.Mu.Lock()
	defer p.Mu.Unlock()
	resp := &network.JoinResponse{
		InterfaceName: network.InterfaceName{SrcName: e.Peer, DstPrefix: "eth"},
		Gateway:       p.NetGateways[r.NetworkID],
		StaticRoutes:  p.Routes,
	}
	if p.SrcName != "" {
		resp.InterfaceName.SrcName = p.SrcName
	}
	if p.Gateway != "" {
		resp.Gateway = p.Gateway
	}
	return resp, nil
}

func (p *VethPlugin) Leave(r *network.LeaveRequest) error {
	if err := p.enter("Leave", r.EndpointID); err != nil {
		return err
	}
	if e := p.Endpoint(r.EndpointID); e != nil {
		found := p.HostHas(e.Peer)
		p.Mu.Lock()
		p.sawLink["Leave "+r.EndpointID] = found
		p.Mu.Unlock()
	}
	return nil
}

func (p *VethPlugin) LinkSeen(call string) (seen, called bool) {
	p.Mu.Lock()
	defer p.Mu.Unlock()
	seen, called = p.sawLink[call]
	return seen, called
}

func (p *VethPlugin) DiscoverNew(*network.DiscoveryNotification) error { return nil }

func (p *VethPlugin) DiscoverDelete(*network.DiscoveryNotification) error { return nil }

func (p *VethPlugin) ProgramExternalConnectivity(r *network.ProgramExternalConnectivityRequest) error {
	return p.enter("ProgramExternalConnectivity", r.EndpointID)
}

func (p *VethPlugin) RevokeExternalConnectivity(r *network.RevokeExternalConnectivityRequest) error {
	return p.enter("RevokeExternalConnectivity", r.EndpointID)
}
