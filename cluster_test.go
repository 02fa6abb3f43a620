package libnetwork_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// storeOpts are the options of a controller New is expected to refuse:
// state in temp dirs and, as root, a throwaway host namespace (a claim of
// the machine's own would race other controllers).
func storeOpts(t *testing.T) []config.Option {
	opts := []config.Option{config.OptionDataDir(t.TempDir()), config.OptionExecRoot(t.TempDir()),
		knobs.Set(knobs.NoBuiltinDrivers, true)}
	if os.Geteuid() == 0 {
		opts = append(opts, config.OptionHostNetNS(testutil.NewHostNS(t).Path()))
	}
	return opts
}

// Without the provider's import, asking for it fails New with NotFound
// naming the package to import.
func TestKVProviderWithoutImport(t *testing.T) {
	_, err := libnetwork.New(append(storeOpts(t),
		config.OptionKVProvider("etcd"), config.OptionKVProviderURL("unix:///nonexistent"))...)
	var nf types.NotFoundError
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "github.com/opencnm/libnetwork/store/etcd") {
		t.Fatalf("New with an unregistered etcd provider: %v; want NotFound naming the import", err)
	}
}

// The provider's options are checked before the provider is looked up:
// an unknown key, or a CA file that cannot be read, fails New BadRequest.
func TestKVOptsAreChecked(t *testing.T) {
	for _, opts := range []map[string]string{
		{"kv.bogus": "x"},
		{globalstore.OptCACertFile: filepath.Join(t.TempDir(), "missing.pem")},
	} {
		_, err := libnetwork.New(append(storeOpts(t), config.OptionKVProvider("etcd"),
			config.OptionKVProviderURL("unix:///nonexistent"), config.OptionKVOpts(opts))...)
		var br types.BadRequestError
		if !errors.As(err, &br) {
			t.Errorf("New with KV options %v: %v; want BadRequest", opts, err)
		}
	}
}

// clusterController is a unit controller of host id on the memstore srv.
func clusterController(t *testing.T, srv *memstore.Server, id string) *libnetwork.Controller {
	return testrig.NewUnitController(t, knobs.Set(knobs.GlobalKV, globalstore.KV(srv.Client())),
		config.OptionHostID(id), config.OptionHostLeaseTTL(time.Second))
}

// waitHosts waits until c lists exactly ids as live hosts.
func waitHosts(t *testing.T, c *libnetwork.Controller, ids ...string) []libnetwork.HostInfo {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		hs, err := c.ClusterHosts()
		var got []string
		for _, h := range hs {
			got = append(got, h.ID)
		}
		if err == nil && slices.Equal(got, ids) {
			return hs
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster hosts %v (%v); want %v", got, err, ids)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ClusterHosts lists the live hosts; EvictHost revokes another host's
// lease at once (its keys go, and it opens a new session), and refuses
// unknown hosts (NotFound), itself and controllers without a store
// (Forbidden).
func TestEvictHost(t *testing.T) {
	srv := memstore.New()
	a := clusterController(t, srv, "host-a")
	b := clusterController(t, srv, "host-b")
	hs := waitHosts(t, a, "host-a", "host-b")
	if !hs[0].Self || hs[1].Self || hs[1].Started.IsZero() {
		t.Fatalf("cluster hosts seen by host-a: %+v", hs)
	}
	started := hs[1].Started

	if err := a.EvictHost("host-b"); err != nil {
		t.Fatalf("EvictHost(host-b): %v", err)
	}
	// host-b's session was lost; it registers again with a new session.
	deadline := time.Now().Add(30 * time.Second)
	for {
		hs := waitHosts(t, b, "host-a", "host-b")
		if hs[1].Started.After(started) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host-b did not open a new session after its eviction: %+v", hs)
		}
		time.Sleep(20 * time.Millisecond)
	}

	var nf types.NotFoundError
	if err := a.EvictHost("host-z"); !errors.As(err, &nf) {
		t.Errorf("EvictHost(unknown): %v; want NotFound", err)
	}
	var fb types.ForbiddenError
	if err := a.EvictHost("host-a"); !errors.As(err, &fb) {
		t.Errorf("EvictHost(itself): %v; want Forbidden", err)
	}
	plain := testrig.NewUnitController(t)
	if err := plain.EvictHost("host-b"); !errors.As(err, &fb) {
		t.Errorf("EvictHost without a store: %v; want Forbidden", err)
	}
	if _, err := plain.ClusterHosts(); !errors.As(err, &fb) {
		t.Errorf("ClusterHosts without a store: %v; want Forbidden", err)
	}
}

// A global-scope driver that implements driverapi.Discoverer.
type discoverFake struct {
	*drivertest.Fake
	mu    sync.Mutex
	nodes []driverapi.NodeDiscoveryData
}

func (d *discoverFake) DiscoverNew(dType int, data any) error {
	if n, ok := data.(driverapi.NodeDiscoveryData); ok && dType == driverapi.NodeDiscovery {
		d.mu.Lock()
		d.nodes = append(d.nodes, n)
		d.mu.Unlock()
	}
	return nil
}

func (d *discoverFake) DiscoverDelete(int, any) error { return nil }

// The discovery address must be one of the host namespace's: another is
// BadRequest naming it. One that is there is announced (Self) to a
// global-scope Discoverer driver when it registers, and to no local one.
func TestDiscoveryAddress(t *testing.T) {
	testutil.RequireRoot(t)
	srv := memstore.New()
	host := testutil.NewHostNS(t)
	dir := t.TempDir()
	base := []config.Option{config.OptionHostNetNS(host.Path()),
		config.OptionDataDir(filepath.Join(dir, "lib")), config.OptionExecRoot(filepath.Join(dir, "run")),
		knobs.Set(knobs.NoBuiltinDrivers, true), knobs.Set(knobs.GlobalKV, globalstore.KV(srv.Client()))}
	c, err := libnetwork.New(append(base, config.OptionDiscoveryAddress("192.0.2.10"))...)
	if err == nil {
		c.Stop()
	}
	var br types.BadRequestError
	if !errors.As(err, &br) || !strings.Contains(err.Error(), "192.0.2.10") {
		t.Fatalf("New with a discovery address not in the host namespace: %v; want BadRequest naming it", err)
	}

	lo, err := host.Netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("192.0.2.10/32")
	if err := host.Netlink.AddrAdd(lo, addr); err != nil {
		t.Fatal(err)
	}
	c = testrig.NewPrivControllerIn(t, host, append(base[1:], config.OptionDiscoveryAddress("192.0.2.10"))...)
	global := &discoverFake{Fake: drivertest.NewFake("gfake")}
	if err := c.RegisterDriver("gfake", global, driverapi.Capability{DataScope: driverapi.GlobalScope, ConnectivityScope: driverapi.GlobalScope}); err != nil {
		t.Fatal(err)
	}
	want := []driverapi.NodeDiscoveryData{{Address: "192.0.2.10", BindAddress: "192.0.2.10", Self: true}}
	if !slices.Equal(global.nodes, want) {
		t.Fatalf("global driver was told %+v; want %+v", global.nodes, want)
	}
	localDrv := &discoverFake{Fake: drivertest.NewFake("lfake")}
	if err := c.RegisterDriver("lfake", localDrv, local); err != nil {
		t.Fatal(err)
	}
	if len(localDrv.nodes) != 0 {
		t.Fatalf("local driver was told %+v; want nothing", localDrv.nodes)
	}
}

// Without a global store, each of its options is refused BadRequest
// naming the option and the provider it needs, rather than dropped (as
// Docker refused a cluster advertise address without a store).
func TestStoreOptionsNeedKVProvider(t *testing.T) {
	for name, o := range map[string]config.Option{
		"OptionKVProviderURL":    config.OptionKVProviderURL("http://127.0.0.1:2379"),
		"OptionKVOpts":           config.OptionKVOpts(map[string]string{globalstore.OptCACertFile: "/nonexistent"}),
		"OptionDiscoveryAddress": config.OptionDiscoveryAddress("127.0.0.1"),
		"OptionHostID":           config.OptionHostID("host-a"),
		"OptionHostLeaseTTL":     config.OptionHostLeaseTTL(10 * time.Second),
		"OptionKVTimeout":        config.OptionKVTimeout(time.Second),
	} {
		c, err := libnetwork.New(append(storeOpts(t), o)...)
		if err == nil {
			c.Stop()
		}
		var br types.BadRequestError
		if !errors.As(err, &br) || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "OptionKVProvider ") {
			t.Errorf("New with %s and no KVProvider: %v; want BadRequest naming it and OptionKVProvider", name, err)
		}
	}
}
