package libnetwork_test

import (
	"errors"
	"log/slog"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
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
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// vtepController is a controller on a fresh memstore whose discovery
// address 192.0.2.10 is on the loopback of its host namespace, with extra
// options after the base ones.
func vtepController(t *testing.T, opts ...config.Option) *libnetwork.Controller {
	t.Helper()
	testutil.RequireRoot(t)
	host := testutil.NewHostNS(t)
	lo, err := host.Netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := netlink.ParseAddr("192.0.2.10/32")
	if err := host.Netlink.AddrAdd(lo, addr); err != nil {
		t.Fatal(err)
	}
	base := []config.Option{knobs.Set(knobs.NoBuiltinDrivers, true),
		knobs.Set(knobs.GlobalKV, globalstore.KV(memstore.New().Client())),
		config.OptionDiscoveryAddress("192.0.2.10")}
	return testrig.NewPrivControllerIn(t, host, append(base, opts...)...)
}

// refusingPlugin is a global-scope network plugin whose DiscoverNew fails.
type refusingPlugin struct{ p2p }

func (refusingPlugin) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: network.GlobalScope, ConnectivityScope: network.GlobalScope}, nil
}

func (refusingPlugin) DiscoverNew(*network.DiscoveryNotification) error {
	return errors.New("discovery is not supported")
}

// A global-scope plugin whose DiscoverNew fails is still usable (a
// warning says it was not told this host's address), every time it is
// asked for: the failure must not make the name unusable.
func TestPluginKeptWhenDiscoverNewFails(t *testing.T) {
	rec := testrig.NewRecorder()
	dir := plugintest.Dir(t)
	c := vtepController(t, config.OptionPluginDirs(dir), config.OptionLogger(slog.New(rec)))
	testrig.Publish(t, dir, "gplug", testrig.ViaSocket, network.NewHandler(refusingPlugin{}))

	for _, name := range []string{"first", "second"} {
		nw, err := c.NewNetwork("gplug", name, "")
		if err != nil {
			t.Fatalf("NewNetwork(%s) on a plugin that refused DiscoverNew: %v", name, err)
		}
		if nw.Type() != "gplug" {
			t.Fatalf("network %s is of type %q", name, nw.Type())
		}
	}
	rec.WaitFor(t, "network plugin kept without this host's discovery address")
}

// orderFake checks, while it is being announced, that its controller does
// not hand it out yet.
type orderFake struct {
	*drivertest.Fake
	c      *libnetwork.Controller
	fail   bool
	during error // NewNetwork's answer while DiscoverNew ran
}

func (d *orderFake) DiscoverNew(int, any) error {
	_, d.during = d.c.NewNetwork("ofake", "early", "")
	if d.fail {
		return errors.New("refused")
	}
	return nil
}

func (d *orderFake) DiscoverDelete(int, any) error { return nil }

// RegisterDriver announces the host before the driver can be used: a
// network asked for meanwhile does not find it, and a failed
// announcement leaves the driver registered before in place.
func TestRegisterDriverAnnouncesFirst(t *testing.T) {
	c := vtepController(t)
	global := driverapi.Capability{DataScope: driverapi.GlobalScope, ConnectivityScope: driverapi.GlobalScope}
	d := &orderFake{Fake: drivertest.NewFake("ofake"), c: c}
	if err := c.RegisterDriver("ofake", d, global); err != nil {
		t.Fatal(err)
	}
	if d.during == nil || !types.IsNotFound(d.during) {
		t.Fatalf("NewNetwork while the driver was announced: %v; want NotFound (no such driver yet)", d.during)
	}
	bad := &orderFake{Fake: drivertest.NewFake("ofake"), c: c, fail: true}
	if err := c.RegisterDriver("ofake", bad, global); err == nil {
		t.Fatal("RegisterDriver with a failing DiscoverNew succeeded")
	}
	// Meanwhile, and after, the name is the driver registered first.
	if bad.during != nil {
		t.Fatalf("NewNetwork during the failed announcement: %v", bad.during)
	}
	if _, err := c.NewNetwork("ofake", "after", ""); err != nil {
		t.Fatalf("NewNetwork on the driver registered first: %v", err)
	}
	if n, _, _, _ := d.Counts(); n != 2 {
		t.Errorf("the driver registered first has %d networks; want 2", n)
	}
	if n, _, _, _ := bad.Counts(); n != 0 {
		t.Errorf("the driver whose announcement failed has %d networks; want 0", n)
	}
}
