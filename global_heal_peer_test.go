package libnetwork_test

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// At the first session after a restart on a kept lease, the peer record
// of an endpoint that is not joined here (a crash between a leave and its
// store write) is deleted: no host forwards to an interface that is gone.
func TestGlobalRestartDeletesStalePeer(t *testing.T) {
	srv := memstore.New()
	dir := t.TempDir()
	opts := []config.Option{knobs.Set(knobs.NoBuiltinDrivers, true),
		config.OptionHostID("host-a"), config.OptionHostLeaseTTL(30 * time.Second),
		config.OptionDataDir(filepath.Join(dir, "lib")), config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins"))}
	if os.Geteuid() == 0 {
		opts = append(opts, config.OptionHostNetNS(testutil.NewHostNS(t).Path()))
	}
	start := func() *libnetwork.Controller {
		c, err := libnetwork.New(append(opts, knobs.Set(knobs.GlobalKV, globalstore.KV(srv.Client())))...)
		if err != nil {
			t.Fatal(err)
		}
		g := drivertest.NewGlobalFake("gfake")
		if err := c.RegisterDriver("gfake", g, g.Capability()); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("gfake", "g", "", gPool("10.97.0.0/24")))
	left := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("left"))
	st := globalstore.New(srv.Client(), globalstore.Options{})
	ctx := context.Background()
	hs, err := st.Hosts(ctx)
	if err != nil || len(hs) != 1 {
		t.Fatalf("hosts %v %v", hs, err)
	}
	a, _ := netip.AddrFromSlice(left.Info().Iface().Address().IP.To4())
	stale := globalstore.Peer{EndpointID: left.ID(), NetworkID: n.ID(), Host: "host-a",
		VTEP: netip.MustParseAddr("192.0.2.1"), MAC: left.Info().Iface().MacAddress().String(), IPs: []netip.Addr{a}}
	if err := st.PutPeer(ctx, hs[0].Lease, stale); err != nil {
		t.Fatal(err)
	}
	c.Stop()

	c = start()
	t.Cleanup(c.Stop)
	eventually(t, "the stale peer deleted", func() bool {
		peers, err := st.Peers(ctx, n.ID())
		return err == nil && len(peers) == 0
	})
	if _, err := st.Endpoint(ctx, n.ID(), left.ID()); err != nil {
		t.Fatalf("the endpoint's record went with its peer: %v", err)
	}
}
