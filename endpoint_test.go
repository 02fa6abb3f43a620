package libnetwork_test

import (
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

func TestEndpointQueriesAndAddresses(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n", testrig.IPAMOpt("10.44.0.0/24", "10.44.0.254"))

	v4, _ := n.Info().IpamInfo()
	if len(v4) != 1 || v4[0].Pool.String() != "10.44.0.0/24" || v4[0].Gateway.String() != "10.44.0.254/24" {
		t.Fatalf("IpamInfo = %+v", v4)
	}
	if _, err := n.CreateEndpoint(""); !types.IsBadRequest(err) {
		t.Fatalf("empty endpoint name: want BadRequest, got %v", err)
	}
	ep1 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep1"))
	if got := ep1.Info().Iface().Address().String(); got != "10.44.0.1/24" {
		t.Fatalf("first address = %s, want 10.44.0.1/24", got)
	}
	if _, err := n.CreateEndpoint("ep1"); !types.IsForbidden(err) {
		t.Fatalf("duplicate endpoint: want Forbidden, got %v", err)
	}
	ep2 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep2",
		libnetwork.CreateOptionIpam(net.ParseIP("10.44.0.100"), nil, nil, nil)))
	if got := ep2.Info().Iface().Address().String(); got != "10.44.0.100/24" {
		t.Fatalf("preferred address = %s", got)
	}
	if _, err := n.CreateEndpoint("ep3", libnetwork.CreateOptionIpam(net.ParseIP("10.44.0.100"), nil, nil, nil)); !types.IsForbidden(err) {
		t.Fatalf("taken preferred address: want Forbidden, got %v", err)
	}
	if _, err := n.CreateEndpoint("ep3", libnetwork.CreateOptionIpam(net.ParseIP("10.99.0.1"), nil, nil, nil)); !types.IsBadRequest(err) {
		t.Fatalf("address outside pools: want BadRequest, got %v", err)
	}
	// The failed creations left neither a name nor an address behind.
	ep3 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep3"))
	if got := ep3.Info().Iface().Address().String(); got != "10.44.0.2/24" {
		t.Fatalf("next address = %s, want 10.44.0.2/24", got)
	}
	if ep1.Network() != "n" || ep1.Name() != "ep1" || len(ep1.ID()) != 64 {
		t.Fatalf("accessors: %q %q %q", ep1.Network(), ep1.Name(), ep1.ID())
	}
	if got, err := n.EndpointByName("ep2"); err != nil || got != ep2 {
		t.Fatalf("EndpointByName: %v %v", got, err)
	}
	if got, err := n.EndpointByID(ep2.ID()); err != nil || got != ep2 {
		t.Fatalf("EndpointByID: %v %v", got, err)
	}
	if _, err := n.EndpointByName(""); !types.IsBadRequest(err) {
		t.Fatalf("EndpointByName(\"\"): %v", err)
	}
	if _, err := n.EndpointByID(""); !types.IsBadRequest(err) {
		t.Fatalf("EndpointByID(\"\"): %v", err)
	}
	if _, err := n.EndpointByName("zz"); !types.IsNotFound(err) {
		t.Fatalf("EndpointByName(miss): %v", err)
	}
	if eps := n.Endpoints(); len(eps) != 3 || eps[0] != ep1 || eps[1] != ep2 || eps[2] != ep3 {
		t.Fatalf("Endpoints() = %v", eps)
	}

	err := n.Delete()
	var active *libnetwork.ActiveEndpointsError
	if !errors.As(err, &active) || !types.IsForbidden(err) {
		t.Fatalf("delete with endpoints: want ActiveEndpointsError, got %v", err)
	}
	for _, ep := range n.Endpoints() {
		if err := ep.Delete(false); err != nil {
			t.Fatal(err)
		}
		if err := ep.Delete(false); err != nil {
			t.Fatalf("second endpoint Delete: %v", err)
		}
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	// The pool came back: the same explicit pool can be used again.
	testrig.FakeNet(t, c, "again", testrig.IPAMOpt("10.44.0.0/24", ""))
}

func TestEndpointMACOption(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n")
	mac := net.HardwareAddr{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep",
		libnetwork.EndpointOptionGeneric(map[string]any{netlabel.MacAddress: mac})))
	if got := ep.Info().Iface().MacAddress().String(); got != mac.String() {
		t.Fatalf("MAC = %s", got)
	}
	info := testrig.Must[map[string]any](t)(ep.DriverInfo())
	if got := info[netlabel.MacAddress].(net.HardwareAddr).String(); got != mac.String() {
		t.Fatalf("DriverInfo MAC = %s", got)
	}
	_, err := n.CreateEndpoint("bad", libnetwork.EndpointOptionGeneric(map[string]any{netlabel.MacAddress: "nonsense"}))
	if !types.IsBadRequest(err) {
		t.Fatalf("bad MAC: want BadRequest, got %v", err)
	}
}

func TestAutomaticPoolsDoNotOverlap(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	seen := map[string]bool{}
	for i := 0; i < 5; i++ {
		n := testrig.FakeNet(t, c, string(rune('a'+i)))
		v4, _ := n.Info().IpamInfo()
		pool := v4[0].Pool.String()
		if seen[pool] {
			t.Fatalf("pool %s handed out twice", pool)
		}
		seen[pool] = true
		if v4[0].Gateway == nil || !v4[0].Pool.Contains(v4[0].Gateway.IP) {
			t.Fatalf("gateway %v outside pool %s", v4[0].Gateway, pool)
		}
	}
}

func TestRollbackOnDriverFailure(t *testing.T) {
	c := testrig.NewUnitController(t)
	f := testrig.WithFake(t, c)

	f.Fail(drivertest.StepCreateNetwork, types.InternalErrorf("injected"))
	if _, err := c.NewNetwork("fake", "n", "", testrig.IPAMOpt("10.45.0.0/24", "10.45.0.1")); err == nil {
		t.Fatal("NewNetwork succeeded despite the driver failing")
	}
	f.Fail(drivertest.StepCreateNetwork, nil)
	// Pool, gateway and name were all released.
	n := testrig.FakeNet(t, c, "n", testrig.IPAMOpt("10.45.0.0/24", "10.45.0.1"))

	f.Fail(drivertest.StepCreateEndpoint, types.InternalErrorf("injected"))
	if _, err := n.CreateEndpoint("ep"); err == nil {
		t.Fatal("CreateEndpoint succeeded despite the driver failing")
	}
	f.Fail(drivertest.StepCreateEndpoint, nil)
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	if got := ep.Info().Iface().Address().String(); got != "10.45.0.2/24" {
		t.Fatalf("address after failed create = %s, want 10.45.0.2/24 (the first was released)", got)
	}
	if nets, eps, _, _ := f.Counts(); nets != 1 || eps != 1 {
		t.Fatalf("driver state after rollbacks: %s", f)
	}
}

func TestConcurrentEndpointsGetDistinctAddresses(t *testing.T) {
	c := testrig.NewUnitController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n", testrig.IPAMOpt("10.46.0.0/24", ""))
	var wg sync.WaitGroup
	var mu sync.Mutex
	addrs := map[string]bool{}
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ep, err := n.CreateEndpoint("ep" + string(rune('A'+i)))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			a := ep.Info().Iface().Address().String()
			if addrs[a] {
				t.Errorf("address %s handed out twice", a)
			}
			addrs[a] = true
		}(i)
	}
	wg.Wait()
	if len(addrs) != 50 {
		t.Fatalf("got %d addresses", len(addrs))
	}
}
