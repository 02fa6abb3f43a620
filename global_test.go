package libnetwork_test

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/ipam"
	"github.com/opencnm/libnetwork/types"
)

// gHost is one controller of a unit cluster with its global fake driver
// ("gfake") and a local fake ("fake").
type gHost struct {
	id string
	c  *libnetwork.Controller
	g  *drivertest.GlobalFake
}

// newGHost starts a unit controller with host ID id on the cluster's store.
func newGHost(t *testing.T, srv *memstore.Server, id string, opts ...config.Option) *gHost {
	t.Helper()
	base := []config.Option{knobs.Set(knobs.GlobalKV, srv.Client()), config.OptionHostID(id)}
	c := testrig.NewUnitController(t, append(base, opts...)...)
	testrig.WithFake(t, c)
	g := drivertest.NewGlobalFake("gfake")
	if err := c.RegisterDriver("gfake", g, g.Capability()); err != nil {
		t.Fatal(err)
	}
	return &gHost{id: id, c: c, g: g}
}

func newGCluster(t *testing.T, n int, opts ...config.Option) (*memstore.Server, []*gHost) {
	t.Helper()
	srv := memstore.New()
	var hosts []*gHost
	for i := 0; i < n; i++ {
		hosts = append(hosts, newGHost(t, srv, fmt.Sprintf("host-%c", 'a'+i), opts...))
	}
	return srv, hosts
}

// eventually polls cond until it holds, failing after a bound generous
// enough for a loaded machine (the watch usually delivers in well under a
// millisecond).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func gPool(pool string) libnetwork.NetworkOption {
	return libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: pool}}, nil, nil)
}

// A global network made on one host is found at once by name and ID on
// another, with the same pools and cluster IDs handed to its driver there;
// a host that has a local network of that name keeps it by name.
func TestGlobalNetworkFoundEverywhere(t *testing.T) {
	_, h := newGCluster(t, 3)
	a, b, c := h[0], h[1], h[2]
	local := testrig.FakeNet(t, c.c, "shared")
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "shared", "", libnetwork.NetworkOptionLabels(map[string]string{"k": "v"})))
	if n.Scope() != driverapi.GlobalScope {
		t.Fatalf("scope %q", n.Scope())
	}
	v4, _ := n.IpamInfo()
	if len(v4) != 1 || v4[0].Pool.String() != "10.0.0.0/24" || v4[0].Gateway.IP.String() != "10.0.0.1" {
		t.Fatalf("pool of the first global network: %+v", v4)
	}
	req, _ := a.g.Network(n.ID())
	if len(req.ClusterIDs) != 1 || req.ClusterIDs[0] != 4096 {
		t.Fatalf("cluster IDs on the creating host: %v", req.ClusterIDs)
	}

	byName := testrig.Must[*libnetwork.Network](t)(b.c.NetworkByName("shared"))
	if byName.ID() != n.ID() || byName.Labels()["k"] != "v" || byName.Type() != "gfake" {
		t.Fatalf("host b found %s %s %v", byName.Name(), byName.ID(), byName.Labels())
	}
	bv4, _ := byName.IpamInfo()
	if len(bv4) != 1 || bv4[0].Pool.String() != "10.0.0.0/24" || bv4[0].Gateway.String() != v4[0].Gateway.String() {
		t.Fatalf("host b's pools: %+v", bv4)
	}
	if breq, ok := b.g.Network(n.ID()); !ok || !slices.Equal(breq.ClusterIDs, req.ClusterIDs) {
		t.Fatalf("host b's driver: %v %v", ok, breq.ClusterIDs)
	}

	// c keeps its local "shared" by name and reaches the global one by ID.
	if got := testrig.Must[*libnetwork.Network](t)(c.c.NetworkByName("shared")); got.ID() != local.ID() {
		t.Fatalf("host c's name lookup gave %s, want its local network", got.ID())
	}
	if got := testrig.Must[*libnetwork.Network](t)(c.c.NetworkByID(n.ID())); got.Scope() != driverapi.GlobalScope {
		t.Fatalf("host c by ID: %s", got.Scope())
	}
	// A global create under a local name here is Forbidden.
	_, err := c.c.NewNetwork("gfake", "shared", "")
	if _, ok := err.(libnetwork.NetworkNameError); !ok {
		t.Fatalf("global create under a local name: %v", err)
	}

	// A second network from another host takes another pool and ID (the
	// next ones, unless b's mirror had not seen the first yet and b lost a
	// pick); both show in Networks.
	n2 := testrig.Must[*libnetwork.Network](t)(b.c.NewNetwork("gfake", "second", ""))
	v4b, _ := n2.IpamInfo()
	if p := v4b[0].Pool; p.String() == "10.0.0.0/24" || !netip.MustParsePrefix("10.0.0.0/8").Contains(netip.MustParseAddr(p.IP.String())) {
		t.Fatalf("second pool %s", p)
	}
	if r, _ := b.g.Network(n2.ID()); r.ClusterIDs[0] == 4096 || r.ClusterIDs[0] > 8191 {
		t.Fatalf("second ID %v", r.ClusterIDs)
	}
	eventually(t, "both global networks listed on host a", func() bool {
		var names []string
		for _, x := range a.c.Networks() {
			names = append(names, x.Name())
		}
		return slices.Equal(names, []string{"second", "shared"})
	})
	if _, err := b.c.NetworkByName("nosuch"); !types.IsNotFound(err) {
		t.Fatalf("unknown name: %v", err)
	}
}

// A driver that needs cluster IDs is refused without a global store.
func TestGlobalDriverWithoutStore(t *testing.T) {
	c := testrig.NewUnitController(t)
	g := drivertest.NewGlobalFake("gfake")
	if err := c.RegisterDriver("gfake", g, g.Capability()); err != nil {
		t.Fatal(err)
	}
	_, err := c.NewNetwork("gfake", "g", "")
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "OptionKVProvider") {
		t.Fatalf("global driver without a store: %v", err)
	}
}

// Concurrent creates of one name from every host: exactly one wins, the
// others get NetworkNameError; distinct names get distinct pools and IDs.
func TestGlobalNamesUniqueConcurrent(t *testing.T) {
	srv, h := newGCluster(t, 3)
	var mu sync.Mutex
	won, lost := 0, 0
	var wg sync.WaitGroup
	for _, x := range h {
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := x.c.NewNetwork("gfake", "one", "")
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					won++
				} else if _, ok := err.(libnetwork.NetworkNameError); ok {
					lost++
				} else {
					t.Errorf("create: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	if won != 1 || lost != 11 {
		t.Fatalf("won %d, lost %d", won, lost)
	}

	for i, x := range h {
		for j := 0; j < 4; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := x.c.NewNetwork("gfake", fmt.Sprintf("n%d-%d", i, j), ""); err != nil {
					t.Errorf("create: %v", err)
				}
			}()
		}
	}
	wg.Wait()
	pools, vnis := map[string]bool{}, map[string]bool{}
	for _, k := range srv.Keys() {
		switch {
		case strings.Contains(k, "/claims/pool/"):
			pools[k] = true
		case strings.Contains(k, "/claims/vni/"):
			vnis[k] = true
		}
	}
	if len(pools) != 13 || len(vnis) != 13 {
		t.Fatalf("%d pools and %d IDs claimed for 13 networks", len(pools), len(vnis))
	}
	seen := map[string]string{}
	for _, x := range h {
		for _, n := range x.c.Networks() {
			v4, _ := n.IpamInfo()
			if other, dup := seen[v4[0].Pool.String()]; dup && other != n.ID() {
				t.Errorf("pool %s on two networks", v4[0].Pool)
			}
			seen[v4[0].Pool.String()] = n.ID()
		}
	}
}

// A global network with an IPAM driver of its own: the driver's pools and
// addresses are used as given, and only the name and IDs are claimed.
func TestGlobalNetworkPluginIPAM(t *testing.T) {
	srv, h := newGCluster(t, 2)
	shared, err := ipam.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range h {
		if err := x.c.RegisterIpamDriver("shared", shared); err != nil {
			t.Fatal(err)
		}
	}
	n := testrig.Must[*libnetwork.Network](t)(h[0].c.NewNetwork("gfake", "p", "",
		libnetwork.NetworkOptionIpam("shared", "", []*libnetwork.IpamConf{{PreferredPool: "10.70.0.0/24"}}, nil, nil)))
	ea := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ea"))
	bn := testrig.Must[*libnetwork.Network](t)(h[1].c.NetworkByID(n.ID()))
	eb := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("eb"))
	if testrig.EpIP(ea) == testrig.EpIP(eb) || !strings.HasPrefix(testrig.EpIP(eb), "10.70.0.") {
		t.Fatalf("addresses %s and %s", testrig.EpIP(ea), testrig.EpIP(eb))
	}
	for _, k := range srv.Keys() {
		if strings.Contains(k, "/claims/pool/") || strings.Contains(k, "/addr/") {
			t.Errorf("a plugin's pools and addresses are its own, yet %s was claimed", k)
		}
	}
}

// A global network has a local record: after a restart with the store
// away it is still there.
func TestGlobalNetworkSurvivesRestartWithStoreDown(t *testing.T) {
	srv := memstore.New()
	r := testrig.NewRestartable(t)
	opts := func() []config.Option {
		return []config.Option{knobs.Set(knobs.NoBuiltinDrivers, true), knobs.Set(knobs.GlobalKV, srv.Client()),
			config.OptionHostID("host-a"), config.OptionKVTimeout(300 * time.Millisecond)}
	}
	c := r.Start(opts()...)
	g := drivertest.NewGlobalFake("gfake")
	if err := c.RegisterDriver("gfake", g, g.Capability()); err != nil {
		t.Fatal(err)
	}
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("gfake", "kept", "", gPool("10.80.0.0/24")))
	srv.Stop()
	t.Cleanup(srv.Start) // before the last controller's teardown
	c = r.Start(opts()...)
	got := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("kept"))
	v4, _ := got.IpamInfo()
	if got.ID() != n.ID() || got.Scope() != driverapi.GlobalScope || len(v4) != 1 || v4[0].Pool.String() != "10.80.0.0/24" {
		t.Fatalf("restored %s %s %+v", got.ID(), got.Scope(), v4)
	}
	srv.Start()
}

// Fixed cluster IDs and the user's pool are the user's: taken by another
// network they are Forbidden, not picked again. The gateway and aux
// addresses are claimed with the network, so no host hands them out.
func TestGlobalFixedIDsPoolsAndAux(t *testing.T) {
	_, h := newGCluster(t, 2)
	a, b := h[0], h[1]
	ids := libnetwork.NetworkOptionDriverOpts(map[string]string{drivertest.GlobalIDsOption: "7000,7001"})
	aux := libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.91.0.0/24",
		AuxAddresses: map[string]string{"router": "10.91.0.2"}}}, nil, nil)
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "fixed", "", ids, aux))
	if r, _ := a.g.Network(n.ID()); !slices.Equal(r.ClusterIDs, []uint32{7000, 7001}) {
		t.Fatalf("cluster IDs %v", r.ClusterIDs)
	}
	_, err := b.c.NewNetwork("gfake", "same-ids", "", libnetwork.NetworkOptionDriverOpts(map[string]string{drivertest.GlobalIDsOption: "7001"}))
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "VNI 7001") {
		t.Fatalf("a taken fixed ID: %v", err)
	}
	_, err = b.c.NewNetwork("gfake", "same-pool", "", gPool("10.91.0.0/16"))
	if !types.IsForbidden(err) {
		t.Fatalf("a pool overlapping another global network's: %v", err)
	}
	for _, name := range []string{"same-ids", "same-pool"} {
		if _, err := a.c.NetworkByName(name); !types.IsNotFound(err) {
			t.Fatalf("refused %s is known: %v", name, err)
		}
	}
	bn := testrig.Must[*libnetwork.Network](t)(b.c.NetworkByID(n.ID()))
	ep := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("first"))
	if got := testrig.EpIP(ep); got != "10.91.0.3" {
		t.Fatalf("first endpoint got %s, want the lowest address past gateway and aux", got)
	}
}
