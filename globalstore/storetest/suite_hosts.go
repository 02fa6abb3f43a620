package storetest

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/types"
)

// TestTTL is the lease TTL of the suite's hosts: short so expiry is quick,
// yet far above the renewal period (TTL/3) a loaded machine must keep.
const TestTTL = 3 * time.Second

func session(t testing.TB, st *globalstore.Store, host string) *globalstore.Session {
	t.Helper()
	ss, err := st.OpenSession(context.Background(), globalstore.Host{ID: host, Address: netip.MustParseAddr("192.0.2.1")}, TestTTL)
	if err != nil {
		t.Fatalf("open session %s: %v", host, err)
	}
	t.Cleanup(func() { _ = ss.Close(context.Background()) })
	return ss
}

// ep is endpoint name of network nid on host with address a.
func ep(nid, id, name, host, a string) globalstore.Endpoint {
	addr := netip.MustParseAddr(a)
	return globalstore.Endpoint{ID: id, NetworkID: nid, Name: name, Host: host, MAC: "02:00:00:00:00:01",
		Addrs:  []netip.Prefix{netip.PrefixFrom(addr, 24)},
		Claims: []globalstore.Claim{globalstore.Address(nid, addr)}}
}

func endpoints(t *testing.T, c Cluster) {
	ctx := context.Background()
	a, b := store(t, c, Timeout), store(t, c, Timeout)
	sa, sb := session(t, a, "ha"), session(t, b, "hb")
	for _, n := range []string{"n1", "n2"} {
		if err := a.CreateNetwork(ctx, globalstore.Network{ID: n, Name: "net-" + n, Driver: "overlay"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CreateEndpoint(ctx, sa.Lease(), ep("n1", "e1", "web", "ha", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateEndpoint(ctx, sa.Lease(), ep("n1", "e1", "web", "ha", "10.0.0.2")); err != nil {
		t.Fatalf("a retry of the same create must succeed: %v", err)
	}
	var ce *globalstore.ClaimError
	err := b.CreateEndpoint(ctx, sb.Lease(), ep("n1", "e2", "web", "hb", "10.0.0.3"))
	if !types.IsForbidden(err) || !errors.As(err, &ce) || ce.Claim.Kind != globalstore.ClaimEndpointName {
		t.Fatalf("same name in the same network from another host: want Forbidden, got %v", err)
	}
	err = b.CreateEndpoint(ctx, sb.Lease(), ep("n1", "e2", "db", "hb", "10.0.0.2"))
	if !types.IsForbidden(err) || !errors.As(err, &ce) || ce.Claim.Kind != globalstore.ClaimAddress || ce.Owner != "e1" {
		t.Fatalf("a taken address: want Forbidden naming e1, got %v", err)
	}
	if h, _ := b.Holder(ctx, globalstore.EndpointName("n1", "db")); h != "" {
		t.Fatalf("the failed create left name db held by %q", h)
	}
	if err := b.CreateEndpoint(ctx, sb.Lease(), ep("n2", "e3", "web", "hb", "10.0.0.2")); err != nil {
		t.Fatalf("the same name and address in another network must work: %v", err)
	}
	if err := b.CreateEndpoint(ctx, sb.Lease(), ep("n9", "e4", "x", "hb", "10.0.0.9")); !types.IsNotFound(err) {
		t.Fatalf("endpoint in an unknown network: want NotFound, got %v", err)
	}
	if err := b.PutPeer(ctx, sb.Lease(), globalstore.Peer{EndpointID: "e3", NetworkID: "n2", Host: "hb",
		VTEP: netip.MustParseAddr("192.0.2.2"), MAC: "02:00:00:00:00:03"}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutPeer(ctx, sb.Lease(), globalstore.Peer{EndpointID: "e9", NetworkID: "n2"}); !types.IsNotFound(err) {
		t.Fatalf("a peer of no endpoint: want NotFound, got %v", err)
	}
	err = a.DeleteNetwork(ctx, "n2")
	var busy *globalstore.ActiveEndpointsError
	if !types.IsForbidden(err) || !errors.As(err, &busy) || busy.Endpoints["web"] != "hb" {
		t.Fatalf("delete of a network with an endpoint on hb: want Forbidden naming web on hb, got %v", err)
	}
	if err := a.DeleteEndpoint(ctx, "n2", "e3"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteEndpoint(ctx, "n2", "e3"); err != nil {
		t.Fatalf("deleting an endpoint already gone must succeed: %v", err)
	}
	if ps, err := a.Peers(ctx, "n2"); err != nil || len(ps) != 0 {
		t.Fatalf("the endpoint's peer record outlived it: %v, %v", ps, err)
	}
	if err := a.DeleteNetwork(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if kvs, _, _ := a.KV().List(ctx, "/test/nets/n2/"); len(kvs) != 0 {
		t.Fatalf("keys of the deleted network remain: %v", kvs)
	}
	es, err := b.Endpoints(ctx, "n1")
	if err != nil || !slices.Equal(sortedIDs(es), []string{"e1"}) {
		t.Fatalf("endpoints of n1: %v, %v", es, err)
	}
}

// waitFree polls until claim c is free, at most bound.
func waitFree(t testing.TB, st *globalstore.Store, c globalstore.Claim, bound time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		h, err := st.Holder(context.Background(), c)
		if err == nil && h == "" {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still held by %q (%v) after %v", c, h, err, bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func leaseExpiry(t *testing.T, c Cluster) {
	ctx := context.Background()
	deadKV := c.Client(t)
	dead := globalstore.New(deadKV, globalstore.Options{Prefix: "/test", Timeout: Timeout})
	other := store(t, c, Timeout)
	ss, err := dead.OpenSession(ctx, globalstore.Host{ID: "dead"}, TestTTL)
	if err != nil {
		t.Fatal(err)
	}
	if err := dead.CreateNetwork(ctx, globalstore.Network{ID: "n1", Name: "blue"}); err != nil {
		t.Fatal(err)
	}
	e := ep("n1", "e1", "web", "dead", "10.0.0.2")
	if err := dead.CreateEndpoint(ctx, ss.Lease(), e); err != nil {
		t.Fatal(err)
	}
	// Renewals must keep the lease past its TTL while the host lives.
	time.Sleep(TestTTL + TestTTL/2)
	if h, err := other.Holder(ctx, globalstore.EndpointName("n1", "web")); err != nil || h != "e1" {
		t.Fatalf("a live host lost its endpoint name (holder %q, %v)", h, err)
	}
	ss.Abandon() // the host dies: no more renewals, no revoke
	_ = deadKV.Close()
	last := ss.Renewed()
	freed := waitFree(t, other, globalstore.Address("n1", netip.MustParseAddr("10.0.0.2")), TestTTL+20*time.Second)
	t.Logf("lease TTL %v: claims freed %v after the last renewal was sent", TestTTL, freed.Sub(last).Round(time.Millisecond))
	if hs, err := other.Hosts(ctx); err != nil || len(hs) != 0 {
		t.Fatalf("the dead host's record remains: %v, %v", hs, err)
	}
	if es, err := other.Endpoints(ctx, "n1"); err != nil || len(es) != 0 {
		t.Fatalf("the dead host's endpoints remain: %v, %v", es, err)
	}
	so := session(t, other, "other")
	if err := other.CreateEndpoint(ctx, so.Lease(), ep("n1", "e2", "web", "other", "10.0.0.2")); err != nil {
		t.Fatalf("the dead host's name and address must be claimable: %v", err)
	}
	if _, err := other.Network(ctx, "n1"); err != nil {
		t.Fatalf("the network outlives the host that made it: %v", err)
	}
}

func evict(t *testing.T, c Cluster) {
	ctx := context.Background()
	a, b := store(t, c, Timeout), store(t, c, Timeout)
	sa := session(t, a, "ha")
	if _, err := b.OpenSession(ctx, globalstore.Host{ID: "ha"}, TestTTL); !types.IsForbidden(err) {
		t.Fatalf("a second live session for host ha: want Forbidden, got %v", err)
	}
	if err := a.CreateNetwork(ctx, globalstore.Network{ID: "n1", Name: "blue"}); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateEndpoint(ctx, sa.Lease(), ep("n1", "e1", "web", "ha", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := b.Evict(ctx, "ha"); err != nil {
		t.Fatal(err)
	}
	if h, err := b.Holder(ctx, globalstore.EndpointName("n1", "web")); err != nil || h != "" {
		t.Fatalf("after eviction the name is held by %q (%v)", h, err)
	}
	select {
	case <-sa.Lost():
	case <-time.After(TestTTL + 20*time.Second):
		t.Fatal("the evicted host's session never noticed its lease was gone")
	}
	if err := b.Evict(ctx, "ha"); err != nil {
		t.Fatalf("evicting a host already gone must succeed: %v", err)
	}
}

func unavailable(t *testing.T, c Cluster) {
	ctx := context.Background()
	const short = 500 * time.Millisecond
	st := store(t, c, short)
	ss := session(t, st, "h1")
	if err := st.CreateNetwork(ctx, globalstore.Network{ID: "n1", Name: "blue"}); err != nil {
		t.Fatal(err)
	}
	c.Stop(t)
	calls := map[string]func() error{
		"claim":           func() error { return st.Claim(ctx, "o", globalstore.NoLease, globalstore.VNI(7)) },
		"create network":  func() error { return st.CreateNetwork(ctx, globalstore.Network{ID: "n2", Name: "red"}) },
		"create endpoint": func() error { return st.CreateEndpoint(ctx, ss.Lease(), ep("n1", "e1", "web", "h1", "10.0.0.2")) },
		"read network":    func() error { _, err := st.NetworkByName(ctx, "blue"); return err },
		"open session": func() error {
			_, err := st.OpenSession(ctx, globalstore.Host{ID: "h2"}, TestTTL)
			return err
		},
	}
	for name, call := range calls {
		start := time.Now()
		err := call()
		took := time.Since(start)
		if !types.IsNoService(err) || !errors.Is(err, globalstore.ErrUnavailable) {
			t.Errorf("%s with the store down: want NoService wrapping ErrUnavailable, got %v", name, err)
		}
		// Generous: the bound is short, the machine shared.
		if took > short+5*time.Second {
			t.Errorf("%s with the store down took %v, the timeout is %v", name, took, short)
		}
		t.Logf("%s failed after %v: %v", name, took.Round(time.Millisecond), err)
	}
	c.Start(t)
	ok := store(t, c, Timeout)
	for _, cl := range []globalstore.Claim{globalstore.VNI(7), globalstore.NetworkName("red"), globalstore.EndpointName("n1", "web"),
		globalstore.Address("n1", netip.MustParseAddr("10.0.0.2"))} {
		if h, err := ok.Holder(ctx, cl); err != nil || h != "" {
			t.Errorf("after the outage %s is held by %q (%v): a failed call left it behind", cl, h, err)
		}
	}
	if hs, err := ok.Hosts(ctx); err != nil || len(hs) != 1 {
		t.Errorf("after the outage hosts are %v (%v): want only h1", hs, err)
	}
	if err := ok.CreateEndpoint(ctx, ss.Lease(), ep("n1", "e1", "web", "h1", "10.0.0.2")); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

// resume: a host whose controller restarts within the TTL takes up its
// lease again and keeps what it owns; a lease that expired cannot be.
func resume(t *testing.T, c Cluster) {
	ctx := context.Background()
	st := store(t, c, Timeout)
	first, err := st.OpenSession(ctx, globalstore.Host{ID: "h1"}, TestTTL)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateNetwork(ctx, globalstore.Network{ID: "n1", Name: "blue"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEndpoint(ctx, first.Lease(), ep("n1", "e1", "web", "h1", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	first.Abandon() // the controller crashed
	again, err := st.ResumeSession(ctx, globalstore.Host{ID: "h1"}, first.Lease(), TestTTL)
	if err != nil {
		t.Fatalf("resume within the TTL: %v", err)
	}
	time.Sleep(TestTTL + TestTTL/2)
	if h, err := st.Holder(ctx, globalstore.EndpointName("n1", "web")); err != nil || h != "e1" {
		t.Fatalf("after resuming, web is held by %q (%v)", h, err)
	}
	if _, err := st.ResumeSession(ctx, globalstore.Host{ID: "h2"}, first.Lease(), TestTTL); !types.IsNotFound(err) {
		t.Fatalf("resume of a host never registered: want NotFound, got %v", err)
	}
	if err := again.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = st.ResumeSession(ctx, globalstore.Host{ID: "h1"}, first.Lease(), TestTTL)
	if !types.IsNotFound(err) || !errors.Is(err, globalstore.ErrLeaseNotFound) {
		t.Fatalf("resume of a revoked lease: want NotFound wrapping ErrLeaseNotFound, got %v", err)
	}
	if h, _ := st.Holder(ctx, globalstore.EndpointName("n1", "web")); h != "" {
		t.Fatalf("a closed session's claims remain: web held by %q", h)
	}
}
