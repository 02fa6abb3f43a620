package options

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/ipam"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
)

// recDriver is a driver that records what it is given.
type recDriver struct {
	mu    sync.Mutex
	nets  map[string]driverapi.CreateNetworkRequest
	eps   map[string]driverapi.CreateEndpointRequest
	joins map[string]map[string]any
	progs map[string]map[string]any
}

func newRecDriver() *recDriver {
	return &recDriver{nets: map[string]driverapi.CreateNetworkRequest{}, eps: map[string]driverapi.CreateEndpointRequest{},
		joins: map[string]map[string]any{}, progs: map[string]map[string]any{}}
}

func (d *recDriver) Type() string { return "rec" }
func (d *recDriver) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nets[req.NetworkID] = req
	return nil
}
func (d *recDriver) DeleteNetwork(string) error { return nil }
func (d *recDriver) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.eps[req.EndpointID] = req
	return nil, nil
}
func (d *recDriver) DeleteEndpoint(string, string) error { return nil }
func (d *recDriver) EndpointOperInfo(string, string) (map[string]any, error) {
	return map[string]any{}, nil
}
func (d *recDriver) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.joins[req.EndpointID] = req.Options
	return &driverapi.JoinResult{Gateway: net.ParseIP("10.99.0.1")}, nil
}
func (d *recDriver) Leave(string, string) error { return nil }
func (d *recDriver) ProgramExternalConnectivity(_, eid string, opts map[string]any) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.progs[eid] = opts
	return nil
}
func (d *recDriver) RevokeExternalConnectivity(string, string) error { return nil }

func (d *recDriver) net(t *testing.T, n *libnetwork.Network) driverapi.CreateNetworkRequest {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.nets[n.ID()]
	if !ok {
		t.Fatalf("driver never saw network %s", n.Name())
	}
	return r
}

func (d *recDriver) ep(t *testing.T, ep *libnetwork.Endpoint) driverapi.CreateEndpointRequest {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.eps[ep.ID()]
	if !ok {
		t.Fatalf("driver never saw endpoint %s", ep.Name())
	}
	return r
}

func (d *recDriver) prog(t *testing.T, ep *libnetwork.Endpoint) map[string]any {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	r, ok := d.progs[ep.ID()]
	if !ok {
		t.Fatalf("driver never programmed endpoint %s", ep.Name())
	}
	return r
}

// gwIPAM is the built-in allocator whose pools name their gateway in the
// pool's metadata (netlabel.Gateway), as a plugin may.
type gwIPAM struct{ *ipam.Allocator }

func (g *gwIPAM) RequestPool(req ipamapi.PoolRequest) (ipamapi.AllocatedPool, error) {
	p, err := g.Allocator.RequestPool(req)
	if err == nil && !req.V6 {
		p.Meta = map[string]string{netlabel.Gateway: netip.PrefixFrom(p.Pool.Addr().Next().Next(), p.Pool.Bits()).String()}
	}
	return p, err
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// walkRig is a controller with the recording driver.
type walkRig struct {
	c   *libnetwork.Controller
	rec *recDriver
	seq int
}

func newWalkRig(t *testing.T, opts ...config.Option) *walkRig {
	t.Helper()
	c := testrig.NewController(t, opts...)
	rec := newRecDriver()
	if err := c.RegisterDriver("rec", rec, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
		t.Fatal(err)
	}
	return &walkRig{c: c, rec: rec}
}

func (w *walkRig) name(prefix string) string {
	w.seq++
	return prefix + string(rune('a'+w.seq%26)) + strings.Repeat("x", w.seq/26)
}

func (w *walkRig) network(t *testing.T, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	t.Helper()
	return testrig.Must[*libnetwork.Network](t)(w.c.NewNetwork("rec", w.name("net"), "", opts...))
}

// joined creates an endpoint on n and joins it to a new external-key
// sandbox (no namespace needed).
func (w *walkRig) joined(t *testing.T, n *libnetwork.Network, epOpts []libnetwork.EndpointOption, sbOpts ...libnetwork.SandboxOption) (*libnetwork.Endpoint, *libnetwork.Sandbox) {
	t.Helper()
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint(w.name("ep"), epOpts...))
	sb := testrig.Must[*libnetwork.Sandbox](t)(w.c.NewSandbox(w.name("ctr"), append([]libnetwork.SandboxOption{libnetwork.OptionUseExternalKey()}, sbOpts...)...))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sb.Delete() })
	return ep, sb
}

func fileOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// recIPAM records the options of address requests.
type recIPAM struct {
	*ipam.Allocator
	mu   sync.Mutex
	opts []map[string]string
}

func (g *recIPAM) RequestAddress(pool string, prefer netip.Addr, opts map[string]string) (netip.Prefix, map[string]string, error) {
	g.mu.Lock()
	g.opts = append(g.opts, opts)
	g.mu.Unlock()
	return g.Allocator.RequestAddress(pool, prefer, opts)
}
