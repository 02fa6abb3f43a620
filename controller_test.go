package libnetwork_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

func TestNetworkNamesAndQueries(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)

	for _, name := range []string{"", "   "} {
		_, err := c.NewNetwork("fake", name, "")
		var inv libnetwork.ErrInvalidName
		if !errors.As(err, &inv) || !types.IsBadRequest(err) {
			t.Fatalf("NewNetwork(%q): want ErrInvalidName (BadRequest), got %v", name, err)
		}
	}
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("fake", "net1", ""))
	if n.Name() != "net1" || n.Type() != "fake" || len(n.ID()) != 64 {
		t.Fatalf("got name %q type %q id %q", n.Name(), n.Type(), n.ID())
	}
	if _, err := c.NewNetwork("fake", "net1", ""); !types.IsForbidden(err) {
		t.Fatalf("duplicate name: want Forbidden, got %v", err)
	}
	if _, err := c.NewNetwork("fake", "net2", n.ID()); !types.IsForbidden(err) {
		t.Fatalf("duplicate id: want Forbidden, got %v", err)
	}
	if got, err := c.NetworkByName("net1"); err != nil || got != n {
		t.Fatalf("NetworkByName: %v %v", got, err)
	}
	if got, err := c.NetworkByID(n.ID()); err != nil || got != n {
		t.Fatalf("NetworkByID: %v %v", got, err)
	}
	if _, err := c.NetworkByName(""); !types.IsBadRequest(err) {
		t.Fatalf("NetworkByName(\"\"): want BadRequest, got %v", err)
	}
	if _, err := c.NetworkByID(""); !types.IsBadRequest(err) {
		t.Fatalf("NetworkByID(\"\"): want BadRequest, got %v", err)
	}
	if _, err := c.NetworkByName(n.ID()); !types.IsNotFound(err) {
		t.Fatalf("NetworkByName(id): want NotFound, got %v", err)
	}
	if _, err := c.NetworkByID("nope"); !types.IsNotFound(err) {
		t.Fatalf("NetworkByID(miss): want NotFound, got %v", err)
	}

	n2 := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("fake", "net0", ""))
	nets := c.Networks()
	if len(nets) != 2 || nets[0] != n2 || nets[1] != n {
		t.Fatalf("Networks() = %v, want [net0 net1]", nets)
	}
	var seen []*libnetwork.Network
	c.WalkNetworks(func(nw *libnetwork.Network) bool { seen = append(seen, nw); return true })
	if len(seen) != 1 || seen[0] != n2 {
		t.Fatalf("WalkNetworks did not stop at the first network: %v", seen)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	// Teardown is idempotent.
	if err := n.Delete(); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := c.NetworkByName("net1"); !types.IsNotFound(err) {
		t.Fatalf("deleted network still found: %v", err)
	}
	// The name is free again.
	testrig.Must[*libnetwork.Network](t)(c.NewNetwork("fake", "net1", ""))
}

func TestUnknownDriverFailsFast(t *testing.T) {
	c := testrig.NewUnitController(t)
	start := time.Now()
	_, err := c.NewNetwork("framerelay", "n", "")
	var nte libnetwork.NetworkTypeError
	if !errors.As(err, &nte) || !types.IsNotFound(err) {
		t.Fatalf("want NetworkTypeError (NotFound), got %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("unknown driver took %v; it must fail at once", d)
	}
	if _, err := c.NetworkByName("n"); !types.IsNotFound(err) {
		t.Fatalf("failed network left behind: %v", err)
	}
}

func TestBuiltins(t *testing.T) {
	c := testrig.NewController(t)
	if got := fmt.Sprint(c.BuiltinDrivers()); got != "[bridge host macvlan null overlay]" {
		t.Fatalf("BuiltinDrivers() = %s", got)
	}
	if got := fmt.Sprint(c.BuiltinIPAMDrivers()); got != "[default null]" {
		t.Fatalf("BuiltinIPAMDrivers() = %s", got)
	}
	if len(c.ID()) != 64 {
		t.Fatalf("ID() = %q", c.ID())
	}
	testrig.WithFake(t, c)
	if got := fmt.Sprint(c.BuiltinDrivers()); got != "[bridge host macvlan null overlay]" {
		t.Fatalf("a registered driver is not built in: %s", got)
	}
	if err := c.RegisterDriver("bridge", drivertest.NewFake("bridge"), driverapi.Capability{}); !types.IsForbidden(err) {
		t.Fatalf("replacing bridge: want Forbidden, got %v", err)
	}
}

func TestNullAndHostNetworks(t *testing.T) {
	c := testrig.NewController(t)
	for _, typ := range []string{"null", "host"} {
		n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork(typ, typ+"1", ""))
		if _, err := c.NewNetwork(typ, typ+"2", ""); !types.IsForbidden(err) {
			t.Fatalf("second %s network: want Forbidden, got %v", typ, err)
		}
		v4, v6 := n.Info().IpamInfo()
		if len(v4) != 0 || len(v6) != 0 {
			t.Fatalf("%s network got pools: %v %v", typ, v4, v6)
		}
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
		if ep.Info().Iface().Address() != nil {
			t.Fatalf("%s endpoint got an address", typ)
		}
		if err := ep.Delete(false); err != nil {
			t.Fatal(err)
		}
		if err := n.Delete(); !types.IsForbidden(err) {
			t.Fatalf("deleting the %s network: want Forbidden, got %v", typ, err)
		}
		if _, err := c.NetworkByName(typ + "1"); err != nil {
			t.Fatalf("%s network vanished after a refused delete: %v", typ, err)
		}
	}
}

func TestConcurrentNetworkCreateOneWins(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins, forbidden := 0, 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.NewNetwork("fake", "same", "")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case types.IsForbidden(err):
				forbidden++
			default:
				t.Errorf("unexpected error %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || forbidden != 19 {
		t.Fatalf("wins=%d forbidden=%d, want 1 and 19", wins, forbidden)
	}
}
