package remote_test

import (
	"errors"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/stretchr/testify/require"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/remote"
	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/plugins/plugintest"
)

// fakePlugin is a network plugin written with go-plugins-helpers, as a
// third party would write one. It records every request and answers with
// what the test configured.
type fakePlugin struct {
	mu    sync.Mutex
	calls []string // method names in arrival order

	caps        network.CapabilitiesResponse
	networks    map[string]*network.CreateNetworkRequest
	allocated   map[string]*network.AllocateNetworkRequest
	endpoints   map[string]*network.CreateEndpointRequest
	joined      map[string]*network.JoinRequest
	extConn     map[string]*network.ProgramExternalConnectivityRequest
	discovered  []*network.DiscoveryNotification
	withdrawn   []*network.DiscoveryNotification
	epReply     *network.EndpointInterface // CreateEndpoint's answer
	joinReply   *network.JoinResponse      // Join's answer
	joinErr     error                      // Join fails with this
	joinHook    func()                     // runs inside Join before answering
	infoValue   map[string]string
	allocateOut map[string]string
}

func newFakePlugin() *fakePlugin {
	return &fakePlugin{
		caps:      network.CapabilitiesResponse{Scope: network.LocalScope},
		networks:  map[string]*network.CreateNetworkRequest{},
		allocated: map[string]*network.AllocateNetworkRequest{},
		endpoints: map[string]*network.CreateEndpointRequest{},
		joined:    map[string]*network.JoinRequest{},
		extConn:   map[string]*network.ProgramExternalConnectivityRequest{},
	}
}

func (p *fakePlugin) record(m string) {
	p.mu.Lock()
	p.calls = append(p.calls, m)
	p.mu.Unlock()
}

// Calls returns the methods received so far.
func (p *fakePlugin) Calls() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

func (p *fakePlugin) GetCapabilities() (*network.CapabilitiesResponse, error) {
	p.record("GetCapabilities")
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.caps
	return &c, nil
}

func (p *fakePlugin) CreateNetwork(r *network.CreateNetworkRequest) error {
	p.record("CreateNetwork")
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.networks[r.NetworkID]; ok {
		return errors.New("network exists")
	}
	p.networks[r.NetworkID] = r
	return nil
}

func (p *fakePlugin) AllocateNetwork(r *network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	p.record("AllocateNetwork")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.allocated[r.NetworkID] = r
	return &network.AllocateNetworkResponse{Options: p.allocateOut}, nil
}

func (p *fakePlugin) DeleteNetwork(r *network.DeleteNetworkRequest) error {
	p.record("DeleteNetwork")
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.networks, r.NetworkID)
	return nil
}

func (p *fakePlugin) FreeNetwork(r *network.FreeNetworkRequest) error {
	p.record("FreeNetwork")
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.allocated, r.NetworkID)
	return nil
}

func (p *fakePlugin) CreateEndpoint(r *network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	p.record("CreateEndpoint")
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.networks[r.NetworkID]; !ok {
		return nil, errors.New("no such network")
	}
	if _, ok := p.endpoints[r.EndpointID]; ok {
		return nil, errors.New("endpoint exists") // as a plugin keeping state answers
	}
	p.endpoints[r.EndpointID] = r
	return &network.CreateEndpointResponse{Interface: p.epReply}, nil
}

func (p *fakePlugin) DeleteEndpoint(r *network.DeleteEndpointRequest) error {
	p.record("DeleteEndpoint")
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.endpoints, r.EndpointID)
	return nil
}

func (p *fakePlugin) EndpointInfo(r *network.InfoRequest) (*network.InfoResponse, error) {
	p.record("EndpointOperInfo")
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.endpoints[r.EndpointID]; !ok {
		return nil, errors.New("no such endpoint")
	}
	return &network.InfoResponse{Value: p.infoValue}, nil
}

func (p *fakePlugin) Join(r *network.JoinRequest) (*network.JoinResponse, error) {
	p.record("Join")
	p.mu.Lock()
	hook, jerr, reply := p.joinHook, p.joinErr, p.joinReply
	p.mu.Unlock()
	if hook != nil {
		hook()
	}
	if jerr != nil {
		return nil, jerr
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.joined[r.EndpointID] = r
	if reply == nil {
		return &network.JoinResponse{}, nil
	}
	return reply, nil
}

func (p *fakePlugin) Leave(r *network.LeaveRequest) error {
	p.record("Leave")
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.joined, r.EndpointID)
	return nil
}

func (p *fakePlugin) DiscoverNew(n *network.DiscoveryNotification) error {
	p.record("DiscoverNew")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.discovered = append(p.discovered, n)
	return nil
}

func (p *fakePlugin) DiscoverDelete(n *network.DiscoveryNotification) error {
	p.record("DiscoverDelete")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.withdrawn = append(p.withdrawn, n)
	return nil
}

// nodes returns the addresses of the nodes announced and not withdrawn.
func (p *fakePlugin) nodes() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	count := map[string]int{}
	for _, n := range p.discovered {
		count[nodeAddress(n)]++
	}
	for _, n := range p.withdrawn {
		count[nodeAddress(n)]--
	}
	var out []string
	for a, c := range count {
		if c > 0 {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func nodeAddress(n *network.DiscoveryNotification) string {
	m, _ := n.DiscoveryData.(map[string]any)
	a, _ := m["Address"].(string)
	return a
}

func (p *fakePlugin) ProgramExternalConnectivity(r *network.ProgramExternalConnectivityRequest) error {
	p.record("ProgramExternalConnectivity")
	p.mu.Lock()
	defer p.mu.Unlock()
	p.extConn[r.EndpointID] = r
	return nil
}

func (p *fakePlugin) RevokeExternalConnectivity(r *network.RevokeExternalConnectivityRequest) error {
	p.record("RevokeExternalConnectivity")
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.extConn, r.EndpointID)
	return nil
}

// transport says how a test plugin is reached.
type transport int

const (
	viaSocket   transport = iota // <dir>/<name>.sock
	viaSpec                      // <dir>/<name>.spec -> tcp://127.0.0.1:port
	viaJSONSpec                  // <dir>/<name>/<name>.json -> tcp://127.0.0.1:port
)

func (tr transport) String() string {
	return [...]string{"socket", "spec", "json"}[tr]
}

// servePlugin serves h as plugin "fake" over tr and returns the activated
// client and the server.
func servePlugin(t *testing.T, h plugintest.Handler, tr transport, timeout time.Duration) (*plugins.Client, *plugintest.Server) {
	t.Helper()
	dir := plugintest.Dir(t)
	var srv *plugintest.Server
	switch tr {
	case viaSocket:
		srv = plugintest.ServeUnix(t, filepath.Join(dir, "fake.sock"), h)
	case viaSpec:
		srv = plugintest.ServeTCP(t, h)
		plugintest.WriteSpec(t, filepath.Join(dir, "fake.spec"), srv.Addr)
	case viaJSONSpec:
		srv = plugintest.ServeTCP(t, h)
		plugintest.WriteJSONSpec(t, filepath.Join(dir, "fake", "fake.json"), "fake", srv.Addr, nil)
	}
	reg := plugins.NewRegistry([]string{dir}, timeout)
	t.Cleanup(func() { reg.Close() })
	c, err := reg.Get("fake", remote.PluginInterface)
	require.NoError(t, err)
	return c, srv
}

// newDriver serves p over tr and returns a remote driver for it.
func newDriver(t *testing.T, p *fakePlugin, tr transport) (*remote.Driver, driverapi.Capability, *plugintest.Server) {
	t.Helper()
	c, srv := servePlugin(t, network.NewHandler(p), tr, 5*time.Second)
	d, capa, err := remote.New(c)
	require.NoError(t, err)
	return d, capa, srv
}
