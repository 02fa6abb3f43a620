package libnetwork_test

import (
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
)

// gwFake is the fake driver with a gateway per network: a network's
// driver options "gw" and "gw6" are what its joins return (none when
// unset), and it remembers which endpoint holds the sandbox's external
// connectivity, i.e. which one the controller chose as the gateway.
type gwFake struct {
	*drivertest.Fake
	mu       sync.Mutex
	external []string
}

func withGwFake(t *testing.T, c *libnetwork.Controller) *gwFake {
	t.Helper()
	f := &gwFake{Fake: drivertest.NewFake("gwfake")}
	if err := c.RegisterDriver("gwfake", f, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *gwFake) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	res, err := f.Fake.Join(req)
	if err != nil {
		return nil, err
	}
	nw, _ := f.Network(req.NetworkID)
	labels, _ := nw.Options[netlabel.GenericData].(map[string]string)
	res.Gateway, res.GatewayIPv6 = net.ParseIP(labels["gw"]), net.ParseIP(labels["gw6"])
	res.DisableGatewayService = labels["nogwsvc"] == "true"
	return res, nil
}

func (f *gwFake) ProgramExternalConnectivity(nid, eid string, opts map[string]any) error {
	if err := f.Fake.ProgramExternalConnectivity(nid, eid, opts); err != nil {
		return err
	}
	f.mu.Lock()
	f.external = append(f.external, eid)
	f.mu.Unlock()
	return nil
}

func (f *gwFake) RevokeExternalConnectivity(nid, eid string) error {
	f.mu.Lock()
	f.external = slices.DeleteFunc(f.external, func(e string) bool { return e == eid })
	f.mu.Unlock()
	return f.Fake.RevokeExternalConnectivity(nid, eid)
}

// gatewayIs fails unless exactly want (nil: none) holds external
// connectivity.
func (f *gwFake) gatewayIs(t *testing.T, want *libnetwork.Endpoint) {
	t.Helper()
	f.mu.Lock()
	got := slices.Clone(f.external)
	f.mu.Unlock()
	switch {
	case want == nil && len(got) != 0:
		t.Fatalf("endpoints %v hold external connectivity, want none", got)
	case want != nil && !slices.Equal(got, []string{want.ID()}):
		t.Fatalf("endpoints %v hold external connectivity, want only %s (%s)", got, want.Name(), want.ID())
	}
}

// gwNet is a gwfake network with the given gateways ("" for none).
func gwNet(t *testing.T, c *libnetwork.Controller, name, gw, gw6 string, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	t.Helper()
	return gwNetLabels(t, c, name, gw, gw6, map[string]string{}, opts...)
}

func gwNetLabels(t *testing.T, c *libnetwork.Controller, name, gw, gw6 string, labels map[string]string, opts ...libnetwork.NetworkOption) *libnetwork.Network {
	t.Helper()
	if gw != "" {
		labels["gw"] = gw
	}
	if gw6 != "" {
		labels["gw6"] = gw6
	}
	return testrig.Must[*libnetwork.Network](t)(c.NewNetwork("gwfake", name, "",
		append([]libnetwork.NetworkOption{libnetwork.NetworkOptionDriverOpts(labels)}, opts...)...))
}

// joinAll creates an endpoint on each network and joins it to sb, in the
// order given.
func joinAll(t *testing.T, sb *libnetwork.Sandbox, nets ...*libnetwork.Network) []*libnetwork.Endpoint {
	t.Helper()
	var eps []*libnetwork.Endpoint
	for _, n := range nets {
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep-" + n.Name()))
		if err := ep.Join(sb); err != nil {
			t.Fatalf("joining %s: %v", ep.Name(), err)
		}
		eps = append(eps, ep)
	}
	return eps
}

func orderIs(t *testing.T, sb *libnetwork.Sandbox, want ...*libnetwork.Endpoint) {
	t.Helper()
	var got, w []string
	for _, ep := range sb.Endpoints() {
		got = append(got, ep.Name())
	}
	for _, ep := range want {
		w = append(w, ep.Name())
	}
	if !slices.Equal(got, w) {
		t.Fatalf("sandbox endpoint order %v, want %v", got, w)
	}
}

// An internal network's endpoint sorts after a non-internal one, even
// when its name sorts first and neither has a gateway, and it never
// becomes the gateway though its driver offers one.
func TestGatewayChoiceInternalLoses(t *testing.T) {
	c := testrig.NewUnitController(t)
	f := withGwFake(t, c)
	internal := gwNet(t, c, "a-internal", "10.71.0.1", "", libnetwork.NetworkOptionInternalNetwork())
	plain := gwNet(t, c, "b-plain", "", "")
	sb := testrig.ExtSandbox(t, c, "c1")
	eps := joinAll(t, sb, internal, plain)
	orderIs(t, sb, eps[1], eps[0])
	f.gatewayIs(t, nil)
	if gw := eps[0].Info().Gateway(); gw != nil {
		t.Fatalf("internal endpoint reports gateway %s", gw)
	}

	// With a gateway on a non-internal network, that one is chosen.
	ext := gwNet(t, c, "c-ext", "10.72.0.1", "")
	eps = append(eps, joinAll(t, sb, ext)...)
	orderIs(t, sb, eps[2], eps[1], eps[0])
	f.gatewayIs(t, eps[2])
}

// More gateways sort first: v4+v6, then v6 only, then v4 only, then none,
// whatever the names. The gateway is the first endpoint with an IPv4
// gateway, so a v6-only endpoint ahead of it is passed over.
func TestGatewayChoiceGatewayCount(t *testing.T) {
	c := testrig.NewUnitController(t)
	f := withGwFake(t, c)
	none := gwNet(t, c, "a-none", "", "")
	v4 := gwNet(t, c, "b-v4", "10.73.0.1", "")
	v6 := gwNet(t, c, "c-v6", "", "fd73::1")
	both := gwNet(t, c, "d-both", "10.74.0.1", "fd74::1")

	sb := testrig.ExtSandbox(t, c, "c1")
	eps := joinAll(t, sb, none, v4, v6)
	orderIs(t, sb, eps[2], eps[1], eps[0])
	f.gatewayIs(t, eps[1]) // v4, behind v6-only

	eps = append(eps, joinAll(t, sb, both)...)
	orderIs(t, sb, eps[3], eps[2], eps[1], eps[0])
	f.gatewayIs(t, eps[3])

	// The dual-stack one leaves: the gateway goes back to the v4 one.
	if err := eps[3].Leave(sb); err != nil {
		t.Fatal(err)
	}
	orderIs(t, sb, eps[2], eps[1], eps[0])
	f.gatewayIs(t, eps[1])
}

// Between otherwise equal endpoints the network name decides, not the
// join order: a later join on a network whose name sorts first takes the
// gateway, and gives it back when it leaves.
func TestGatewayChoiceNameOrder(t *testing.T) {
	c := testrig.NewUnitController(t)
	f := withGwFake(t, c)
	b := gwNet(t, c, "net-b", "10.75.0.1", "")
	a := gwNet(t, c, "net-a", "10.76.0.1", "")
	sb := testrig.ExtSandbox(t, c, "c1")

	eps := joinAll(t, sb, b)
	f.gatewayIs(t, eps[0])
	eps = append(eps, joinAll(t, sb, a)...)
	orderIs(t, sb, eps[1], eps[0])
	f.gatewayIs(t, eps[1])

	if err := eps[1].Leave(sb); err != nil {
		t.Fatal(err)
	}
	f.gatewayIs(t, eps[0])
}

// DisableGatewayService only tells upstream not to add a docker_gwbridge
// endpoint, which this library does not have (docs/design.md): an
// endpoint that sets it and has a gateway is still chosen, as upstream
// chooses it; one without a gateway leaves the sandbox without one, and
// no network is created on the sandbox's behalf.
func TestGatewayChoiceDisableGatewayService(t *testing.T) {
	c := testrig.NewUnitController(t)
	f := withGwFake(t, c)
	nogw := gwNetLabels(t, c, "a-nogw", "", "", map[string]string{"nogwsvc": "true"})
	withgw := gwNetLabels(t, c, "b-withgw", "10.77.0.1", "", map[string]string{"nogwsvc": "true"})
	nets := len(c.Networks())

	sb := testrig.ExtSandbox(t, c, "c1")
	eps := joinAll(t, sb, nogw)
	f.gatewayIs(t, nil)
	if got := len(c.Networks()); got != nets {
		t.Fatalf("%d networks after a join without gateway, want %d", got, nets)
	}
	eps = append(eps, joinAll(t, sb, withgw)...)
	orderIs(t, sb, eps[1], eps[0])
	f.gatewayIs(t, eps[1])
}
