package libnetwork_test

import (
	"errors"
	"fmt"
	"net"
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
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// 3 hosts × 8 goroutines × 30 endpoints on one network: no address twice,
// neither in the store nor in the controllers.
func TestGlobalAddressesUniqueConcurrent(t *testing.T) {
	srv, h := newGCluster(t, 3)
	n := testrig.Must[*libnetwork.Network](t)(h[0].c.NewNetwork("gfake", "big", "", gPool("10.20.0.0/21")))
	var wg sync.WaitGroup
	var mu sync.Mutex
	addrs := map[string]string{}
	for hi, x := range h {
		xn := testrig.Must[*libnetwork.Network](t)(x.c.NetworkByID(n.ID()))
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 30; i++ {
					name := fmt.Sprintf("ep-%d-%d-%d", hi, g, i)
					ep, err := xn.CreateEndpoint(name)
					if err != nil {
						t.Errorf("%s: %v", name, err)
						return
					}
					a := ep.Info().Iface().Address().IP.String()
					mu.Lock()
					if other, dup := addrs[a]; dup {
						t.Errorf("address %s given to %s and %s", a, other, name)
					}
					addrs[a] = name
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	if len(addrs) != 720 {
		t.Fatalf("%d distinct addresses", len(addrs))
	}
	if _, dup := addrs["10.20.0.1"]; dup {
		t.Fatal("the gateway was handed out")
	}
	claims := 0
	for _, k := range srv.Keys() {
		if strings.Contains(k, "/nets/"+n.ID()+"/addr/") {
			claims++
		}
	}
	if claims != 721 { // 720 endpoints and the gateway; a key is unique by construction
		t.Fatalf("%d address claims in the store", claims)
	}
	for _, x := range h {
		eps := testrig.Must[*libnetwork.Network](t)(x.c.NetworkByID(n.ID())).Endpoints()
		if len(eps) != 240 {
			t.Fatalf("host %s lists %d endpoints, want its own 240", x.id, len(eps))
		}
	}
	eventually(t, "the cluster's endpoints in every mirror", func() bool {
		for _, x := range h {
			if len(testrig.Must[*libnetwork.Network](t)(x.c.NetworkByID(n.ID())).ClusterEndpoints()) != 720 {
				return false
			}
		}
		return true
	})
}

// Endpoint names are unique per network across hosts; an explicit address
// another host holds is ErrIPAlreadyAllocated (Forbidden).
func TestGlobalEndpointConflicts(t *testing.T) {
	_, h := newGCluster(t, 2)
	a, b := h[0], h[1]
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "g", "", gPool("10.30.0.0/24")))
	ea := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web", libnetwork.CreateOptionIpam(net.ParseIP("10.30.0.9"), nil, nil, nil)))
	bn := testrig.Must[*libnetwork.Network](t)(b.c.NetworkByID(n.ID()))
	_, err := bn.CreateEndpoint("web")
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "endpoint with name web already exists in network g") || !strings.Contains(err.Error(), a.id) {
		t.Fatalf("duplicate name from another host: %v", err)
	}
	_, err = bn.CreateEndpoint("other", libnetwork.CreateOptionIpam(net.ParseIP("10.30.0.9"), nil, nil, nil))
	if !types.IsForbidden(err) || !errors.Is(err, ipamapi.ErrIPAlreadyAllocated) {
		t.Fatalf("taken explicit address: %v", err)
	}
	if len(bn.Endpoints()) != 0 {
		t.Fatalf("failed creates left %d endpoints", len(bn.Endpoints()))
	}
	if _, e, _, _ := b.g.Counts(); e != 0 {
		t.Fatalf("failed creates left %d driver endpoints", e)
	}
	// The MAC is the controller's, locally administered, and handed to the driver.
	mac := ea.Info().Iface().MacAddress()
	if len(mac) != 6 || mac[0]&2 == 0 || mac[0]&1 != 0 {
		t.Fatalf("MAC %s", mac)
	}
	info := testrig.Must[map[string]any](t)(ea.DriverInfo())
	if info[netlabel.MacAddress].(net.HardwareAddr).String() != mac.String() {
		t.Fatalf("driver has MAC %v, controller %s", info[netlabel.MacAddress], mac)
	}
}

// Joined endpoints are reported to the other hosts' drivers as peers and
// withdrawn on leave and delete; a host that starts later gets the whole
// set in one PeerSync after its first resync.
func TestGlobalPeers(t *testing.T) {
	srv, h := newGCluster(t, 2)
	a, b := h[0], h[1]
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "g", "", gPool("10.40.0.0/24")))
	bn := testrig.Must[*libnetwork.Network](t)(b.c.NetworkByName("g"))
	ea := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ea"))
	sa := testrig.ExtSandbox(t, a.c, "ca")
	if err := ea.Join(sa); err != nil {
		t.Fatal(err)
	}
	peerOf := func(g *drivertest.GlobalFake, eid string) (driverapi.Peer, bool) {
		for _, p := range g.Peers(n.ID()) {
			if p.EndpointID == eid {
				return p, true
			}
		}
		return driverapi.Peer{}, false
	}
	eventually(t, "a's endpoint as a peer on b", func() bool { _, ok := peerOf(b.g, ea.ID()); return ok })
	p, _ := peerOf(b.g, ea.ID())
	if p.MAC.String() != ea.Info().Iface().MacAddress().String() || p.IPv4 != netip.MustParseAddr(ea.Info().Iface().Address().IP.String()) {
		t.Fatalf("peer %+v", p)
	}
	if _, own := peerOf(a.g, ea.ID()); own {
		t.Fatal("a's own endpoint reported to a's driver")
	}

	// A host started now gets a's peer in its first sync.
	c := newGHost(t, srv, "host-c")
	testrig.Must[*libnetwork.Network](t)(c.c.NetworkByID(n.ID()))
	eventually(t, "a's peer synced to the late host", func() bool {
		_, ok := peerOf(c.g, ea.ID())
		return ok && c.g.Syncs(n.ID()) > 0
	})

	eb := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("eb"))
	sb := testrig.ExtSandbox(t, b.c, "cb")
	if err := eb.Join(sb); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b's peer on a", func() bool { _, ok := peerOf(a.g, eb.ID()); return ok })

	if err := ea.Leave(sa); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's peer gone after leave", func() bool {
		_, onB := peerOf(b.g, ea.ID())
		_, onC := peerOf(c.g, ea.ID())
		return !onB && !onC
	})
	if err := eb.Delete(true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b's peer gone after a forced delete", func() bool { _, ok := peerOf(a.g, eb.ID()); return !ok })
}

// The embedded resolver answers names, aliases and PTR of endpoints on
// other hosts of the networks a sandbox joined.
func TestGlobalDNS(t *testing.T) {
	_, h := newGCluster(t, 2)
	a, b := h[0], h[1]
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "gnet", "", gPool("10.50.0.0/24")))
	web := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web", libnetwork.CreateOptionMyAlias("www")))
	bn := testrig.Must[*libnetwork.Network](t)(b.c.NetworkByID(n.ID()))
	me := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("me"))
	sb := testrig.ExtSandbox(t, b.c, "cb")
	if err := me.Join(sb); err != nil {
		t.Fatal(err)
	}
	ip := testrig.EpIP(web)
	eventually(t, "web resolvable on b", func() bool {
		ips, _ := sb.ResolveName("web", types.IPv4)
		return len(ips) == 1
	})
	for _, q := range []string{"web", "WWW", "web.gnet", "www.gnet."} {
		if got := ipStrings(first(sb.ResolveName(q, types.IPv4))); !slices.Equal(got, []string{ip}) {
			t.Errorf("ResolveName(%q) = %v, want [%s]", q, got, ip)
		}
	}
	if ips, known := sb.ResolveName("web", types.IPv6); ips != nil || !known {
		t.Errorf("web over IPv6: %v %v", ips, known)
	}
	if got := sb.ResolveIP(ip); got != "web.gnet" {
		t.Errorf("ResolveIP(%s) = %q", ip, got)
	}
	if err := web.Delete(false); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web gone from b's resolver", func() bool {
		ips, known := sb.ResolveName("web", types.IP)
		return ips == nil && !known && sb.ResolveIP(ip) == ""
	})
}

// Deleting a global network with endpoints on another host is Forbidden,
// naming the host; once they are gone it is deleted everywhere.
func TestGlobalDeleteForbiddenNamesHost(t *testing.T) {
	_, h := newGCluster(t, 2)
	a, b := h[0], h[1]
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "g", ""))
	bn := testrig.Must[*libnetwork.Network](t)(b.c.NetworkByID(n.ID()))
	ep := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("busy"))
	err := n.Delete()
	busy, ok := err.(*libnetwork.ActiveEndpointsError)
	if !ok || !types.IsForbidden(err) || !strings.Contains(busy.Error(), "busy on host "+b.id) {
		t.Fatalf("delete with an endpoint on b: %v", err)
	}
	// On the endpoint's own host the refusal names it too.
	if err := bn.Delete(); !strings.Contains(fmt.Sprint(err), "busy on host "+b.id) {
		t.Fatalf("delete on b with its own endpoint: %v", err)
	}
	if _, err := a.c.NetworkByID(n.ID()); err != nil {
		t.Fatalf("a refused delete lost the network: %v", err)
	}
	if err := ep.Delete(false); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "b drops the deleted network", func() bool {
		_, err := b.c.NetworkByID(n.ID())
		nets, _, _, _ := b.g.Counts()
		return types.IsNotFound(err) && nets == 0
	})
	if _, err := a.c.NetworkByName("g"); !types.IsNotFound(err) {
		t.Fatalf("deleted network by name on a: %v", err)
	}
}

// With the store down, global creates fail NoService within the timeout
// and leave nothing; local networks work; endpoint leave and delete
// succeed and reach the store once it is back.
func TestGlobalStoreDown(t *testing.T) {
	srv, h := newGCluster(t, 2, config.OptionKVTimeout(300*time.Millisecond))
	a, b := h[0], h[1]
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "g", "", gPool("10.60.0.0/24")))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	sb := testrig.ExtSandbox(t, a.c, "ca")
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	bn := testrig.Must[*libnetwork.Network](t)(b.c.NetworkByID(n.ID()))
	before := srv.Keys()

	srv.Stop()
	start := time.Now()
	_, err := a.c.NewNetwork("gfake", "down", "")
	if !types.IsNoService(err) {
		t.Fatalf("global create with the store down: %v", err)
	}
	_, err = n.CreateEndpoint("ep2")
	if !types.IsNoService(err) {
		t.Fatalf("global endpoint create with the store down: %v", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("two failed creates took %s with a 300ms timeout", d)
	}
	for _, x := range a.c.Networks() {
		if x.Name() == "down" {
			t.Fatal("failed global create left a network")
		}
	}
	if len(n.Endpoints()) != 1 {
		t.Fatalf("failed endpoint create left %d endpoints", len(n.Endpoints()))
	}
	// Local networks keep working.
	ln := testrig.FakeNet(t, a.c, "local", testrig.IPAMOpt("10.61.0.0/24", ""))
	lep := testrig.Must[*libnetwork.Endpoint](t)(ln.CreateEndpoint("lep"))
	if err := lep.Delete(false); err != nil {
		t.Fatal(err)
	}
	// Leave and delete succeed; the store gets them when it is back.
	if err := ep.Leave(sb); err != nil {
		t.Fatalf("leave with the store down: %v", err)
	}
	if err := ep.Delete(false); err != nil {
		t.Fatalf("delete with the store down: %v", err)
	}
	srv.Start()
	eventually(t, "the endpoint's keys gone from the store", func() bool {
		for _, k := range srv.Keys() {
			if strings.Contains(k, "/nets/"+n.ID()+"/ep/") || strings.Contains(k, "/peer/") || strings.Contains(k, "/epname/") {
				return false
			}
		}
		return true
	})
	for _, k := range srv.Keys() {
		if strings.Contains(k, "down") {
			t.Fatalf("failed create left key %s", k)
		}
	}
	if len(srv.Keys()) >= len(before) {
		t.Fatalf("keys before %v, after %v", before, srv.Keys())
	}
	eventually(t, "b's mirror without the endpoint", func() bool { return len(bn.ClusterEndpoints()) == 0 })
}

// A host whose lease may have run out (no renewal for most of its TTL)
// hands its drivers no peers, and all of them again once renewals succeed.
func TestGlobalFenceWithdrawsPeers(t *testing.T) {
	srv, h := newGCluster(t, 2, config.OptionHostLeaseTTL(4*time.Second), config.OptionKVTimeout(300*time.Millisecond))
	a, b := h[0], h[1]
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "g", "", gPool("10.92.0.0/24")))
	testrig.Must[*libnetwork.Network](t)(b.c.NetworkByID(n.ID()))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	if err := ep.Join(testrig.ExtSandbox(t, a.c, "ca")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's peer on b", func() bool { return len(b.g.Peers(n.ID())) == 1 })
	srv.Stop()
	t.Cleanup(srv.Start)
	eventually(t, "b fenced: no peers", func() bool { return len(b.g.Peers(n.ID())) == 0 })
	srv.Start()
	eventually(t, "b unfenced: a's peer back", func() bool { return len(b.g.Peers(n.ID())) == 1 })
}

// A dual-stack global network: both families are claimed, reported to
// peers and resolvable on other hosts.
func TestGlobalDualStack(t *testing.T) {
	_, h := newGCluster(t, 2)
	a, b := h[0], h[1]
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "ds", "", libnetwork.NetworkOptionEnableIPv6(true),
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.93.0.0/24"}},
			[]*libnetwork.IpamConf{{PreferredPool: "fd93::/64"}}, nil)))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web"))
	if got := ep.Info().Iface().AddressIPv6(); got == nil || got.String() != "fd93::2/64" {
		t.Fatalf("IPv6 address %v, want fd93::2/64 (past the gateway)", got)
	}
	if err := ep.Join(testrig.ExtSandbox(t, a.c, "ca")); err != nil {
		t.Fatal(err)
	}
	bn := testrig.Must[*libnetwork.Network](t)(b.c.NetworkByID(n.ID()))
	me := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("me"))
	if got := me.Info().Iface().AddressIPv6(); got == nil || got.String() == "fd93::2/64" || got.String() == "fd93::1/64" {
		t.Fatalf("b's IPv6 address %v", got)
	}
	sb := testrig.ExtSandbox(t, b.c, "cb")
	if err := me.Join(sb); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web's IPv6 peer on b", func() bool {
		ps := b.g.Peers(n.ID())
		return len(ps) == 1 && ps[0].IPv6 == netip.MustParseAddr("fd93::2") && ps[0].IPv4 == netip.MustParseAddr(testrig.EpIP(ep))
	})
	if got := ipStrings(first(sb.ResolveName("web", types.IPv6))); !slices.Equal(got, []string{"fd93::2"}) {
		t.Fatalf("AAAA of web on b: %v", got)
	}
	if got := sb.ResolveIP("fd93::2"); got != "web.ds" {
		t.Fatalf("PTR of fd93::2 on b: %q", got)
	}
}
