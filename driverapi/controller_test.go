package driverapi_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/store"
)

// newController runs a controller on st with every path under the test's
// temp dir. Without root it works in the test's own namespace (the fake
// driver touches no kernel); as root it gets a throwaway one, so that the
// bridge driver's start changes nothing of the machine.
func newController(t *testing.T, dir string, st store.Store) *libnetwork.Controller {
	t.Helper()
	opts := []config.Option{
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
		knobs.WithStore(st),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, config.OptionHostNetNS(testutil.NewHostNS(t).Path()))
	}
	c, err := libnetwork.New(opts...)
	if err != nil && os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		// The controller needs nothing privileged for the fake driver, but
		// the built-in bridge driver's start does.
		t.Skipf("libnetwork.New without root: %v", err)
	}
	if err != nil {
		t.Fatalf("libnetwork.New: %v", err)
	}
	return c
}

var local = driverapi.Capability{DataScope: driverapi.LocalScope, ConnectivityScope: driverapi.LocalScope}

// A controller runs on store.Memory: its records go there and not to a
// file, and a second controller on the same store restores them.
func TestControllerOnMemoryStore(t *testing.T) {
	dir := t.TempDir()
	mem := store.NewMemory()
	c := newController(t, dir, mem)
	if err := c.RegisterDriver("fake", drivertest.NewFake("fake"), local); err != nil {
		t.Fatal(err)
	}
	n, err := c.NewNetwork("fake", "n1", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CreateEndpoint("e1"); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"network", "endpoint"} {
		if !slices.Contains(mem.Kinds(), kind) {
			t.Errorf("memory store kinds %v: no %s record", mem.Kinds(), kind)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "lib", libnetwork.StoreFile)); !os.IsNotExist(err) {
		t.Errorf("store file under DataDir: stat says %v, want it absent", err)
	}
	c.Stop()

	c2 := newController(t, dir, mem)
	defer c2.Stop()
	n2, err := c2.NetworkByName("n1")
	if err != nil {
		t.Fatalf("network after restart on the same memory store: %v", err)
	}
	if _, err := n2.EndpointByName("e1"); err != nil {
		t.Fatalf("endpoint after restart on the same memory store: %v", err)
	}
}

// A driver declaring Capability.AddressLess gets networks without pools
// and endpoints without addresses, whatever its name.
func TestAddressLessCapability(t *testing.T) {
	c := newController(t, t.TempDir(), store.NewMemory())
	defer c.Stop()
	cases := []struct {
		name string
		cap  driverapi.Capability
		want bool // addresses
	}{
		{"plain", local, true},
		{"addressless", driverapi.Capability{DataScope: driverapi.LocalScope, ConnectivityScope: driverapi.LocalScope, AddressLess: true}, false},
	}
	for _, tc := range cases {
		f := drivertest.NewFake(tc.name)
		if err := c.RegisterDriver(tc.name, f, tc.cap); err != nil {
			t.Fatal(err)
		}
		n, err := c.NewNetwork(tc.name, "net-"+tc.name, "")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		v4, _ := n.IpamInfo()
		req, _ := f.Network(n.ID())
		ep, err := n.CreateEndpoint("ep")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		addr := ep.Info().Iface().Address()
		if got := len(v4) > 0 && len(req.IPv4Data) > 0 && addr != nil; got != tc.want {
			t.Errorf("%s: pools %v, driver's IPv4 data %v, endpoint address %v; want addresses %v", tc.name, v4, req.IPv4Data, addr, tc.want)
		}
		if err := ep.Delete(true); err != nil {
			t.Fatal(err)
		}
		if err := n.Delete(); err != nil {
			t.Fatal(err)
		}
	}
}
