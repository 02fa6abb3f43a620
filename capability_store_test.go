package libnetwork_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/store"
)

var local = driverapi.Capability{DataScope: driverapi.LocalScope, ConnectivityScope: driverapi.LocalScope}

// A controller runs on store.Memory: its records go there and not to a
// file, and a second controller on the same store restores them.
func TestControllerOnMemoryStore(t *testing.T) {
	mem := store.NewMemory()
	c := testrig.NewUnitController(t, knobs.WithStore(mem))
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
	if _, err := os.Stat(filepath.Join(c.Config().DataDir, libnetwork.StoreFile)); !os.IsNotExist(err) {
		t.Errorf("store file under DataDir: stat says %v, want it absent", err)
	}
	c.Stop()

	c2 := testrig.NewUnitController(t, knobs.WithStore(mem))
	n2, err := c2.NetworkByName("n1")
	if err != nil {
		t.Fatalf("network after restart on the same memory store: %v", err)
	}
	if _, err := n2.EndpointByName("e1"); err != nil {
		t.Fatalf("endpoint after restart on the same memory store: %v", err)
	}
	// The driver comes back, so the test's teardown can delete both.
	if err := c2.RegisterDriver("fake", drivertest.NewFake("fake"), local); err != nil {
		t.Fatal(err)
	}
}

// A driver declaring Capability.AddressLess gets networks without pools
// and endpoints without addresses, whatever its name.
func TestAddressLessCapability(t *testing.T) {
	c := testrig.NewUnitController(t)
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
