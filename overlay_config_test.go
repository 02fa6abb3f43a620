package libnetwork_test

import (
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// A daemon label for the overlay driver fails New BadRequest: the driver
// has no setting of that name, and would otherwise ignore it.
func TestOverlayLabelRefused(t *testing.T) {
	testutil.RequireRoot(t)
	c, err := libnetwork.New(config.OptionHostNetNS(testutil.NewHostNS(t).Path()),
		config.OptionDataDir(t.TempDir()), config.OptionExecRoot(t.TempDir()),
		config.OptionLabels([]string{"com.docker.network.driver.overlay.vxlan_port=4790"}))
	if err == nil {
		c.Stop()
	}
	if !types.IsBadRequest(err) {
		t.Fatalf("New with an overlay driver label: %v; want BadRequest", err)
	}
}

// On a host whose VTEP is not known, an overlay network is refused
// before anything of it is claimed in the global store.
func TestOverlayWithoutVTEPClaimsNothing(t *testing.T) {
	srv := memstore.New()
	c, _ := testrig.NewPrivController(t, knobs.Set(knobs.GlobalKV, globalstore.KV(srv.Client())))
	waitSelf(t, c)
	rev := srv.Revision()
	if _, err := c.NewNetwork("overlay", "ov", ""); !types.IsForbidden(err) {
		t.Fatalf("overlay network without a VTEP: %v; want Forbidden", err)
	}
	if got := srv.Revision(); got != rev {
		t.Fatalf("the refused network changed the store: revision %d -> %d (keys %v)", rev, got, srv.Keys())
	}
}

// waitSelf waits until c's own host is registered in the store.
func waitSelf(t *testing.T, c *libnetwork.Controller) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		hs, err := c.ClusterHosts()
		for _, h := range hs {
			if h.Self {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("this host is not registered after 30 s: %v (%v)", hs, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
