package drivertest

import (
	"slices"
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/types"
)

// optional is the contract of one optional interface: implemented reports
// whether d has it, check runs its subtest on a fresh driver.
type optional struct {
	name        string
	implemented func(d driverapi.Driver) bool
	check       func(t *testing.T, s Suite)
}

func has[I any](d driverapi.Driver) bool { _, ok := d.(I); return ok }

// optionals lists every optional interface of package driverapi. A driver
// without one gets a skipped subtest of that name, so a -v run shows which
// contracts each driver is held to.
var optionals = []optional{
	{"ExternalConnectivity", has[driverapi.ExternalConnectivity], checkExternalConnectivity},
	{"NetworkAllocator", has[driverapi.NetworkAllocator], checkNetworkAllocator},
	{"Discoverer", has[driverapi.Discoverer], checkDiscoverer},
	{"NetworkValidator", has[driverapi.NetworkValidator], checkNetworkValidator},
	{"Closer", has[driverapi.Closer], checkCloser},
	{"JoinRestorer", has[driverapi.JoinRestorer], checkJoinRestorer},
	{"GarbageCollector", has[driverapi.GarbageCollector], checkGarbageCollector},
	{"SandboxGarbageCollector", has[driverapi.SandboxGarbageCollector], checkSandboxGarbageCollector},
	{"StateKeeper", has[driverapi.StateKeeper], checkStateKeeper},
	{"NetworkAbandoner", has[driverapi.NetworkAbandoner], checkNetworkAbandoner},
	{"FirewallRepairer", has[driverapi.FirewallRepairer], checkFirewallRepairer},
	{"NameServer", has[driverapi.NameServer], checkNameServer},
}

func runOptional(t *testing.T, s Suite) {
	probe := s.New(t)
	for _, o := range optionals {
		t.Run(o.name, func(t *testing.T) {
			if !o.implemented(probe) {
				t.Skipf("%s does not implement driverapi.%s", probe.Type(), o.name)
			}
			o.check(t, s)
		})
	}
}

// joined returns a fresh driver with network nid and endpoint eid joined
// to a sandbox, and the join's request and result.
func joined(t *testing.T, s Suite, nid, eid string) (driverapi.Driver, driverapi.JoinRequest, *driverapi.JoinResult) {
	t.Helper()
	return joinedIn(t, s, s.Network(nid), eid)
}

// joinedIn is joined, in the network req creates.
func joinedIn(t *testing.T, s Suite, netReq driverapi.CreateNetworkRequest, eid string) (driverapi.Driver, driverapi.JoinRequest, *driverapi.JoinResult) {
	t.Helper()
	nid := netReq.NetworkID
	d := s.New(t)
	if err := d.CreateNetwork(netReq); err != nil {
		t.Fatalf("CreateNetwork: %v", err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: s.iface(nid, eid, nil)}); err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	req := s.Join(t, nid, eid)
	res, err := d.Join(req)
	if err != nil || res == nil {
		t.Fatalf("Join: %v, %v", res, err)
	}
	return d, req, res
}

// teardown leaves and deletes eid; both must succeed.
func teardown(t *testing.T, d driverapi.Driver, nid, eid string) {
	t.Helper()
	if err := d.Leave(nid, eid); err != nil {
		t.Fatalf("Leave: %v", err)
	}
	if err := d.DeleteEndpoint(nid, eid); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
}

func nilOrNotFound(err error) bool { return err == nil || types.IsNotFound(err) }

// Programming a joined endpoint works; revoking works twice (the second
// is "already gone"), and revoking an endpoint the driver never had is
// nil or NotFound.
func checkExternalConnectivity(t *testing.T, s Suite) {
	d, _, _ := joined(t, s, "x1", "e1")
	ext := d.(driverapi.ExternalConnectivity)
	if err := ext.ProgramExternalConnectivity("x1", "e1", map[string]any{}); err != nil {
		t.Fatalf("ProgramExternalConnectivity: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := ext.RevokeExternalConnectivity("x1", "e1"); err != nil {
			t.Fatalf("RevokeExternalConnectivity #%d: %v", i+1, err)
		}
	}
	if err := ext.RevokeExternalConnectivity("x1", "never"); !nilOrNotFound(err) {
		t.Fatalf("RevokeExternalConnectivity of an unknown endpoint: want nil or NotFound, got %v", err)
	}
	teardown(t, d, "x1", "e1")
}

// A network's resources are allocated and freed; a second free is nil or
// NotFound.
func checkNetworkAllocator(t *testing.T, s Suite) {
	d := s.New(t)
	a := d.(driverapi.NetworkAllocator)
	req := s.Network("a1")
	if _, err := a.NetworkAllocate("a1", map[string]string{}, req.IPv4Data, req.IPv6Data); err != nil {
		t.Fatalf("NetworkAllocate: %v", err)
	}
	if err := a.NetworkFree("a1"); err != nil {
		t.Fatalf("NetworkFree: %v", err)
	}
	if err := a.NetworkFree("a1"); !nilOrNotFound(err) {
		t.Fatalf("second NetworkFree: want nil or NotFound, got %v", err)
	}
}

// A node announced is known to the driver until it is withdrawn.
func checkDiscoverer(t *testing.T, s Suite) {
	if s.Nodes == nil {
		t.Fatal("Suite.Nodes is required of a Discoverer")
	}
	d := s.New(t)
	disc := d.(driverapi.Discoverer)
	node := driverapi.NodeDiscoveryData{Address: "192.0.2.1", BindAddress: "192.0.2.1", Self: true}
	if err := disc.DiscoverNew(driverapi.NodeDiscovery, node); err != nil {
		t.Fatalf("DiscoverNew: %v", err)
	}
	if got := s.Nodes(t, d); !slices.Contains(got, node.Address) {
		t.Fatalf("after DiscoverNew of %s the driver knows nodes %v", node.Address, got)
	}
	if err := disc.DiscoverDelete(driverapi.NodeDiscovery, node); err != nil {
		t.Fatalf("DiscoverDelete: %v", err)
	}
	if got := s.Nodes(t, d); slices.Contains(got, node.Address) {
		t.Fatalf("after DiscoverDelete of %s the driver still knows nodes %v", node.Address, got)
	}
}

// A request CreateNetwork accepts passes validation, and validating
// creates nothing: the network can be created afterwards, and deleted.
func checkNetworkValidator(t *testing.T, s Suite) {
	d := s.New(t)
	req := s.Network("v1")
	if err := d.(driverapi.NetworkValidator).ValidateNetwork(req.NetworkID, req.Options); err != nil {
		t.Fatalf("ValidateNetwork of a valid request: %v", err)
	}
	if err := d.CreateNetwork(req); err != nil {
		t.Fatalf("CreateNetwork after ValidateNetwork: %v", err)
	}
	if err := d.DeleteNetwork("v1"); err != nil && !(s.SingleNetwork && types.IsForbidden(err)) {
		t.Fatalf("DeleteNetwork: %v", err)
	}
}

// Close of a driver that holds a joined endpoint returns nil.
func checkCloser(t *testing.T, s Suite) {
	d, _, _ := joined(t, s, "c1", "e1")
	if err := d.(driverapi.Closer).Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// Taking back a join the driver made succeeds and Leave works after it;
// an endpoint the driver does not know is refused with NotFound.
func checkJoinRestorer(t *testing.T, s Suite) {
	d, req, res := joined(t, s, "r1", "e1")
	r := d.(driverapi.JoinRestorer)
	if err := r.RestoreJoin(req, *res); err != nil {
		t.Fatalf("RestoreJoin of a live join: %v", err)
	}
	unknown := req
	unknown.EndpointID = "never"
	if err := r.RestoreJoin(unknown, *res); !types.IsNotFound(err) {
		t.Fatalf("RestoreJoin of an unknown endpoint: want NotFound, got %v", err)
	}
	teardown(t, d, "r1", "e1")
}

// objects returns what d holds outside its memory for nid and eid.
func objects(t *testing.T, s Suite, d driverapi.Driver, nid, eid string) []string {
	t.Helper()
	if s.Objects == nil {
		t.Fatal("Suite.Objects is required of a GarbageCollector or NetworkAbandoner")
	}
	return s.Objects(t, d, nid, eid)
}

// Collecting with everything live keeps the network's and the endpoint's
// objects; collecting with nothing live (what a restart finds after a
// crash) removes them all, and teardown afterwards is "already gone".
func checkGarbageCollector(t *testing.T, s Suite) {
	d, _, _ := joinedIn(t, s, s.ownNetwork("g1"), "e1")
	gc := d.(driverapi.GarbageCollector)
	before := objects(t, s, d, "g1", "e1")
	if len(before) == 0 {
		t.Fatal("a joined endpoint holds no objects: Suite.Objects sees nothing to collect")
	}
	if err := gc.CollectGarbage(map[string]bool{"g1": true}, map[string]bool{"e1": true}); err != nil {
		t.Fatalf("CollectGarbage with everything live: %v", err)
	}
	if got := objects(t, s, d, "g1", "e1"); !slices.Equal(got, before) {
		t.Fatalf("CollectGarbage with everything live changed the objects from %v to %v", before, got)
	}
	if err := gc.CollectGarbage(map[string]bool{}, map[string]bool{}); err != nil {
		t.Fatalf("CollectGarbage with nothing live: %v", err)
	}
	if got := objects(t, s, d, "g1", "e1"); len(got) != 0 {
		t.Fatalf("CollectGarbage with nothing live left %v", got)
	}
	if err := d.Leave("g1", "e1"); !nilOrNotFound(err) {
		t.Fatalf("Leave after collecting: %v", err)
	}
	if err := d.DeleteEndpoint("g1", "e1"); !nilOrNotFound(err) {
		t.Fatalf("DeleteEndpoint after collecting: %v", err)
	}
	if err := d.DeleteNetwork("g1"); !nilOrNotFound(err) && !(s.SingleNetwork && types.IsForbidden(err)) {
		t.Fatalf("DeleteNetwork after collecting: %v", err)
	}
}

// Collecting in the joined endpoint's sandbox with it joined keeps the
// join working (Leave and a new join succeed); collecting with nothing
// joined, in that sandbox and in one that does not exist, succeeds.
func checkSandboxGarbageCollector(t *testing.T, s Suite) {
	d, req, _ := joined(t, s, "h1", "e1")
	gc := d.(driverapi.SandboxGarbageCollector)
	keys := []string{req.SandboxKey, req.SandboxKey + ".gone"}
	if err := gc.CollectSandboxGarbage(keys, map[string]bool{"e1": true}); err != nil {
		t.Fatalf("CollectSandboxGarbage with the endpoint joined: %v", err)
	}
	teardown(t, d, "h1", "e1")
	if err := gc.CollectSandboxGarbage(keys, map[string]bool{}); err != nil {
		t.Fatalf("CollectSandboxGarbage with nothing joined: %v", err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "h1", EndpointID: "e2", Interface: s.iface("h1", "e2", nil)}); err != nil {
		t.Fatalf("CreateEndpoint after collecting: %v", err)
	}
	if _, err := d.Join(s.Join(t, "h1", "e2")); err != nil {
		t.Fatalf("Join after collecting: %v", err)
	}
	teardown(t, d, "h1", "e2")
}

// A driver that keeps state refuses to create a network it already holds
// (so a restarted controller must take it back, not create it), and the
// refusal leaves the network working.
func checkStateKeeper(t *testing.T, s Suite) {
	d := s.New(t)
	if !d.(driverapi.StateKeeper).KeepsState() {
		t.Skip("KeepsState is false: the driver's state lives in the controller's process")
	}
	if err := d.CreateNetwork(s.Network("k1")); err != nil {
		t.Fatalf("CreateNetwork: %v", err)
	}
	if err := d.CreateNetwork(s.Network("k1")); err == nil {
		t.Fatal("a driver that keeps state accepted a second CreateNetwork of the network it holds")
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "k1", EndpointID: "e1", Interface: s.iface("k1", "e1", nil)}); err != nil {
		t.Fatalf("CreateEndpoint after the refused duplicate: %v", err)
	}
	if err := d.DeleteEndpoint("k1", "e1"); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
	if err := d.DeleteNetwork("k1"); err != nil {
		t.Fatalf("DeleteNetwork: %v", err)
	}
}

// Abandoning a created network removes its objects, so creating it again
// (the controller's retry after rolling back) succeeds; abandoning what is
// already gone is success.
func checkNetworkAbandoner(t *testing.T, s Suite) {
	d := s.New(t)
	ab := d.(driverapi.NetworkAbandoner)
	if err := d.CreateNetwork(s.ownNetwork("b1")); err != nil {
		t.Fatalf("CreateNetwork: %v", err)
	}
	if len(objects(t, s, d, "b1", "")) == 0 {
		t.Fatal("a created network holds no objects: Suite.Objects sees nothing to abandon")
	}
	if err := ab.AbandonNetwork(s.ownNetwork("b1")); err != nil {
		t.Fatalf("AbandonNetwork: %v", err)
	}
	if got := objects(t, s, d, "b1", ""); len(got) != 0 {
		t.Fatalf("AbandonNetwork left %v", got)
	}
	if err := d.CreateNetwork(s.ownNetwork("b1")); err != nil {
		t.Fatalf("CreateNetwork after AbandonNetwork: %v", err)
	}
	if err := d.DeleteNetwork("b1"); err != nil {
		t.Fatalf("DeleteNetwork: %v", err)
	}
	if err := ab.AbandonNetwork(s.ownNetwork("b2")); err != nil {
		t.Fatalf("AbandonNetwork of a network never created: %v", err)
	}
}

// With nothing removed behind the driver's back, a repair puts nothing
// back.
func checkFirewallRepairer(t *testing.T, s Suite) {
	d, _, _ := joined(t, s, "f1", "e1")
	rep, err := d.(driverapi.FirewallRepairer).RepairFirewall()
	if err != nil {
		t.Fatalf("RepairFirewall: %v", err)
	}
	if !rep.Empty() {
		t.Fatalf("RepairFirewall with nothing removed put back %+v", rep)
	}
	teardown(t, d, "f1", "e1")
}

// A plain network's endpoints are served by name, and asking twice gives
// the same answer.
func checkNameServer(t *testing.T, s Suite) {
	ns := s.New(t).(driverapi.NameServer)
	opts := s.Network("s1").Options
	if !ns.ServesNames(opts) || !ns.ServesNames(opts) {
		t.Fatal("ServesNames of a plain network: want true")
	}
}
