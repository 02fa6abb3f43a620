package testrig

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// ClusterOptions shape a test cluster. Store is required.
type ClusterOptions struct {
	// UnderlayMTU is the underlay's MTU; 0 is 1500.
	UnderlayMTU int
	// Store gives host i's (1-based) store options, called at every
	// start of its controller: MemStore or EtcdStore.
	Store func(i int) []config.Option
	// LeaseTTL and KVTimeout are the hosts' config HostLeaseTTL and
	// KVTimeout; 0 is 10 s and 5 s (generous: the machine may be loaded).
	LeaseTTL, KVTimeout time.Duration
	// IPv6Underlay makes each host's IPv6 underlay address its discovery
	// address (VXLAN over IPv6).
	IPv6Underlay bool
	// Options are more options for every host, applied last.
	Options []config.Option
}

// MemStore makes every host a client of one in-memory store, as hosts of
// a cluster are clients of one etcd (for the core module's tests, which
// cannot link the etcd provider).
func MemStore(s *memstore.Server) func(int) []config.Option {
	return func(int) []config.Option { return []config.Option{knobs.Set(knobs.GlobalKV, s.Client())} }
}

// EtcdStore points every host at the etcd endpoints (comma-separated
// URLs); the test imports the provider (github.com/opencnm/libnetwork/store/etcd).
func EtcdStore(endpoints string) func(int) []config.Option {
	return func(int) []config.Option {
		return []config.Option{config.OptionKVProvider("etcd"), config.OptionKVProviderURL(endpoints)}
	}
}

// Cluster is n hosts on one underlay, one controller each, all in
// namespaces the test made; everything is torn down when the test ends.
type Cluster struct {
	Underlay *Underlay
	Hosts    []*Host
}

// Host is one machine of a Cluster: a namespace on the underlay and the
// controller running in it. Its state directories outlive Stop, so Start
// again is a restart of the same daemon.
type Host struct {
	ID    string // "host-1", ... (config HostID)
	Index int    // 1-based
	NS    *testutil.HostNS
	// Addr and Addr6 are its eth0 underlay addresses; VTEP is the one
	// that is its discovery address (Addr unless IPv6Underlay).
	Addr, Addr6, VTEP netip.Addr

	t    testing.TB
	dir  string
	opts func() []config.Option

	mu sync.Mutex
	c  *libnetwork.Controller // nil while stopped
}

// NewCluster makes n hosts with a controller each. Start the store the
// hosts use before calling it, so the store outlives the controllers'
// teardown (cleanups run last-registered first).
func NewCluster(t testing.TB, n int, o ClusterOptions) *Cluster {
	t.Helper()
	testutil.RequireRoot(t)
	if o.Store == nil {
		t.Fatal("testrig.NewCluster: ClusterOptions.Store is required")
	}
	if o.LeaseTTL == 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.KVTimeout == 0 {
		o.KVTimeout = 5 * time.Second
	}
	cl := &Cluster{Underlay: NewUnderlay(t, o.UnderlayMTU)}
	for i := 1; i <= n; i++ {
		h := &Host{ID: fmt.Sprintf("host-%d", i), Index: i, t: t, dir: t.TempDir(),
			NS: testutil.NewNamedNS(t, fmt.Sprintf("host-%d", i))}
		v4, v6 := cl.Underlay.Plug(t, h.NS)
		h.Addr, h.Addr6, h.VTEP = v4.Addr(), v6.Addr(), v4.Addr()
		if o.IPv6Underlay {
			h.VTEP = h.Addr6
		}
		h.opts = func() []config.Option {
			opts := []config.Option{
				config.OptionExecRoot(filepath.Join(h.dir, "run")),
				config.OptionDataDir(filepath.Join(h.dir, "lib")),
				config.OptionPluginDirs(filepath.Join(h.dir, "plugins")),
				config.OptionHostNetNS(h.NS.Path()),
				config.OptionDiscoveryAddress(h.VTEP.String()),
				config.OptionHostID(h.ID),
				config.OptionHostLeaseTTL(o.LeaseTTL),
				config.OptionKVTimeout(o.KVTimeout),
			}
			opts = append(opts, o.Store(i)...)
			return append(opts, o.Options...)
		}
		cl.Hosts = append(cl.Hosts, h)
	}
	t.Cleanup(cl.teardown)
	for _, h := range cl.Hosts {
		h.Start()
	}
	return cl
}

// Controller is the host's running controller (nil while stopped).
func (h *Host) Controller() *libnetwork.Controller {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.c
}

// Start starts the host's controller on its state directories (a restart
// when it ran before), failing the test if New fails.
func (h *Host) Start() *libnetwork.Controller {
	h.t.Helper()
	c, err := h.TryStart()
	if err != nil {
		h.t.Fatalf("%s: libnetwork.New: %v", h.ID, err)
	}
	return c
}

// TryStart is Start returning New's error.
func (h *Host) TryStart(extra ...config.Option) (*libnetwork.Controller, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.c != nil {
		return nil, fmt.Errorf("%s: already running", h.ID)
	}
	c, err := libnetwork.New(append(h.opts(), extra...)...)
	if err != nil {
		return nil, err
	}
	h.c = c
	return c, nil
}

// Stop stops the controller as a daemon's exit does: what it made stays
// (namespaces, links, records, its lease until the TTL).
func (h *Host) Stop() {
	h.mu.Lock()
	c := h.c
	h.c = nil
	h.mu.Unlock()
	if c != nil {
		c.Stop()
	}
}

// Restart is Stop then Start.
func (h *Host) Restart() *libnetwork.Controller {
	h.t.Helper()
	h.Stop()
	return h.Start()
}

// teardown takes the cluster down in the order a cluster allows: every
// host's containers first, then the networks (a global network cannot be
// deleted while another host has an endpoint on it), then the controllers.
func (cl *Cluster) teardown() {
	var running []*libnetwork.Controller
	for _, h := range cl.Hosts {
		if c := h.Controller(); c != nil {
			running = append(running, c)
		}
	}
	t := cl.Hosts[0].t
	for _, c := range running {
		for _, sb := range c.Sandboxes() {
			if err := sb.Delete(); err != nil {
				t.Errorf("teardown: deleting sandbox %s: %v", sb.ContainerID(), err)
			}
		}
	}
	for _, c := range running {
		for _, n := range c.Networks() {
			for _, ep := range n.Endpoints() {
				if err := ep.Delete(true); err != nil && !types.IsNotFound(err) {
					t.Errorf("teardown: deleting endpoint %s: %v", ep.Name(), err)
				}
			}
		}
	}
	for _, c := range running {
		for _, n := range c.Networks() {
			// Forbidden: host/null networks cannot be deleted. NotFound:
			// another host deleted the global network meanwhile.
			if err := n.Delete(); err != nil && !types.IsForbidden(err) && !types.IsNotFound(err) {
				t.Errorf("teardown: deleting network %s: %v", n.Name(), err)
			}
		}
	}
	for _, h := range slices.Backward(cl.Hosts) {
		h.Stop()
	}
}
