package libnetwork

import (
	"testing"
	"time"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/types"
)

// newGlobalCtl is newClusterCtl with a global fake driver "gfake".
func newGlobalCtl(t *testing.T, srv *memstore.Server, host string, opts ...config.Option) *Controller {
	t.Helper()
	c := newClusterCtl(t, srv, t.TempDir(), append([]config.Option{config.OptionHostID(host)}, opts...)...)
	g := drivertest.NewGlobalFake("gfake")
	if err := c.RegisterDriver("gfake", g, g.Capability()); err != nil {
		t.Fatal(err)
	}
	return c
}

// A lookup of a global network this host will not make (it saw it
// deleted) returns ErrNoSuchNetwork itself, not a wrap of it.
func TestGlobalLookupReturnsNamedError(t *testing.T) {
	srv := memstore.New()
	a, b := newGlobalCtl(t, srv, "host-a"), newGlobalCtl(t, srv, "host-b")
	const id = "fedcba9876543210fedcba9876543210"
	// After the watch's first snapshot, which would clear an older mark.
	for deadline := time.Now().Add(patience); ; time.Sleep(5 * time.Millisecond) {
		b.mirror.mu.Lock()
		synced := b.mirror.resyncs > 0
		b.mirror.mu.Unlock()
		if synced {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for host b's first snapshot")
		}
	}
	b.mirror.markGone(id)
	if _, err := a.NewNetwork("gfake", "seen-gone", id); err != nil {
		t.Fatal(err)
	}
	for _, lookup := range []func() (*Network, error){
		func() (*Network, error) { return b.NetworkByID(id) },
		func() (*Network, error) { return b.NetworkByName("seen-gone") },
	} {
		_, err := lookup()
		if _, ok := err.(ErrNoSuchNetwork); !ok {
			t.Fatalf("lookup of a network deleted here: want ErrNoSuchNetwork itself, got %T %v", err, err)
		}
	}
}

// A lookup miss whose store read failed for the store being away is
// NoService, not NotFound: the network may well exist.
func TestGlobalLookupStoreDownIsNoService(t *testing.T) {
	srv := memstore.New()
	c := newGlobalCtl(t, srv, "host-a", config.OptionKVTimeout(time.Second))
	srv.Stop()
	defer srv.Start()
	if _, err := c.NetworkByName("somewhere"); !types.IsNoService(err) || types.IsNotFound(err) {
		t.Fatalf("lookup by name with the store down: want NoService, got %v", err)
	}
	if _, err := c.NetworkByID("0123456789abcdef0123456789abcdef"); !types.IsNoService(err) || types.IsNotFound(err) {
		t.Fatalf("lookup by ID with the store down: want NoService, got %v", err)
	}
}
