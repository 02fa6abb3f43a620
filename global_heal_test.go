package libnetwork_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// cutKV is one host's link to the store that the test can cut, as a
// partition of that host alone: while cut every call but Watch waits for
// its deadline and fails unavailable, as a client of an unreachable etcd
// does. (The watch keeps delivering: what a cut host's mirror sees does
// not matter to these tests.)
type cutKV struct {
	globalstore.KV
	mu  sync.Mutex
	cut chan struct{} // closed while connected
}

func newCutKV(kv globalstore.KV) *cutKV {
	up := make(chan struct{})
	close(up)
	return &cutKV{KV: kv, cut: up}
}

func (k *cutKV) setCut(on bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	select {
	case <-k.cut:
		if on {
			k.cut = make(chan struct{})
		}
	default:
		if !on {
			close(k.cut)
		}
	}
}

func (k *cutKV) wait(ctx context.Context) error {
	k.mu.Lock()
	up := k.cut
	k.mu.Unlock()
	select {
	case <-up:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: cut off: %w", globalstore.ErrUnavailable, ctx.Err())
	}
}

func (k *cutKV) Txn(ctx context.Context, conds []globalstore.Cond, ops []globalstore.Op) (globalstore.TxnResult, error) {
	if err := k.wait(ctx); err != nil {
		return globalstore.TxnResult{}, err
	}
	return k.KV.Txn(ctx, conds, ops)
}

func (k *cutKV) Get(ctx context.Context, key string) (globalstore.KeyValue, bool, error) {
	if err := k.wait(ctx); err != nil {
		return globalstore.KeyValue{}, false, err
	}
	return k.KV.Get(ctx, key)
}

func (k *cutKV) List(ctx context.Context, prefix string) ([]globalstore.KeyValue, int64, error) {
	if err := k.wait(ctx); err != nil {
		return nil, 0, err
	}
	return k.KV.List(ctx, prefix)
}

func (k *cutKV) Grant(ctx context.Context, ttl int64) (globalstore.LeaseID, error) {
	if err := k.wait(ctx); err != nil {
		return 0, err
	}
	return k.KV.Grant(ctx, ttl)
}

func (k *cutKV) KeepAliveOnce(ctx context.Context, id globalstore.LeaseID) error {
	if err := k.wait(ctx); err != nil {
		return err
	}
	return k.KV.KeepAliveOnce(ctx, id)
}

func (k *cutKV) Revoke(ctx context.Context, id globalstore.LeaseID) error {
	if err := k.wait(ctx); err != nil {
		return err
	}
	return k.KV.Revoke(ctx, id)
}

// fenceWatch is a GlobalFake that checks, at every PeerSync handing peers
// (the fence lifted), that each endpoint of its host the test names is
// claimed in the store: forwarding resumes only after the heal.
type fenceWatch struct {
	*drivertest.GlobalFake
	st *globalstore.Store

	mu     sync.Mutex
	nid    string
	mine   []string // endpoint IDs that must be in the store
	broken []string
}

func (f *fenceWatch) PeerSync(nid string, peers []driverapi.Peer) error {
	f.mu.Lock()
	check := nid == f.nid && len(peers) > 0
	mine := append([]string(nil), f.mine...)
	f.mu.Unlock()
	if check {
		for _, eid := range mine {
			if _, err := f.st.Endpoint(context.Background(), nid, eid); err != nil {
				f.mu.Lock()
				f.broken = append(f.broken, fmt.Sprintf("peers synced (%d) while endpoint %s is not claimed: %v", len(peers), eid, err))
				f.mu.Unlock()
			}
		}
	}
	return f.GlobalFake.PeerSync(nid, peers)
}

func (f *fenceWatch) watch(nid string, eids ...string) {
	f.mu.Lock()
	f.nid, f.mine = nid, eids
	f.mu.Unlock()
}

func (f *fenceWatch) violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.broken...)
}

// newHealHost is a unit controller of host id on kv with a fenceWatch as
// its global driver "gfake".
func newHealHost(t *testing.T, srv *memstore.Server, kv globalstore.KV, id string, opts ...config.Option) (*libnetwork.Controller, *fenceWatch) {
	t.Helper()
	base := []config.Option{knobs.Set(knobs.GlobalKV, kv), config.OptionHostID(id)}
	c := testrig.NewUnitController(t, append(base, opts...)...)
	f := &fenceWatch{GlobalFake: drivertest.NewGlobalFake("gfake"), st: globalstore.New(srv.Client(), globalstore.Options{})}
	if err := c.RegisterDriver("gfake", f, f.Capability()); err != nil {
		t.Fatal(err)
	}
	return c, f
}

func hasPeer(g *drivertest.GlobalFake, nid, eid string) bool {
	for _, p := range g.Peers(nid) {
		if p.EndpointID == eid {
			return true
		}
	}
	return false
}

// onHost reports whether the store (per c's mirror) has endpoint eid of n
// on host.
func onHost(n *libnetwork.Network, eid, host string) bool {
	for _, e := range n.ClusterEndpoints() {
		if e.ID == eid && e.Host == host {
			return true
		}
	}
	return false
}

// A host whose lease was lost (evicted) claims its endpoints again on the
// new lease and writes its joined ones' peers; the fence lifts only after
// that, and the other host forwards to it again.
func TestGlobalHealClaimsAgainAfterLostLease(t *testing.T) {
	srv := memstore.New()
	opts := []config.Option{config.OptionHostLeaseTTL(3 * time.Second), config.OptionKVTimeout(500 * time.Millisecond)}
	a, fa := newHealHost(t, srv, srv.Client(), "host-a", opts...)
	b, fb := newHealHost(t, srv, srv.Client(), "host-b", opts...)
	n := testrig.Must[*libnetwork.Network](t)(a.NewNetwork("gfake", "g", "", gPool("10.94.0.0/24")))
	bn := testrig.Must[*libnetwork.Network](t)(b.NetworkByID(n.ID()))
	ea := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ea"))
	idle := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("idle"))
	if err := ea.Join(testrig.ExtSandbox(t, a, "ca")); err != nil {
		t.Fatal(err)
	}
	eb := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("eb"))
	if err := eb.Join(testrig.ExtSandbox(t, b, "cb")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "peers on both hosts", func() bool {
		return hasPeer(fb.GlobalFake, n.ID(), ea.ID()) && hasPeer(fa.GlobalFake, n.ID(), eb.ID())
	})
	fa.watch(n.ID(), ea.ID(), idle.ID())

	start := time.Now()
	if err := b.EvictHost("host-a"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a's endpoints gone from b's view", func() bool {
		return !onHost(bn, ea.ID(), "host-a") && !hasPeer(fb.GlobalFake, n.ID(), ea.ID())
	})
	gone := time.Since(start)
	// a's new session is registered before the heal runs on it.
	st := globalstore.New(srv.Client(), globalstore.Options{})
	eventually(t, "a's new session", func() bool {
		hs, err := st.Hosts(context.Background())
		for _, h := range hs {
			if h.ID == "host-a" && err == nil {
				return true
			}
		}
		return false
	})
	reopened := time.Now()
	eventually(t, "a's endpoints claimed again with a's peer back on b", func() bool {
		return onHost(bn, ea.ID(), "host-a") && onHost(bn, idle.ID(), "host-a") && hasPeer(fb.GlobalFake, n.ID(), ea.ID())
	})
	eventually(t, "a forwarding again (b's peer back on a)", func() bool { return hasPeer(fa.GlobalFake, n.ID(), eb.ID()) })
	// The polls sleep 5 ms: a heal faster than that shows as one poll.
	t.Logf("heal-to-forwarding: %v from a's new session being seen to both hosts' peers back (at most one 5 ms poll: less means within it); %v from the eviction (b saw a's endpoints gone after %v; a noticed at its next renewal, every TTL/3 = 1s)",
		time.Since(reopened), time.Since(start), gone)
	if v := fa.violations(); len(v) > 0 {
		t.Fatalf("the fence lifted before the heal: %v", v)
	}
	if cf := a.Conflicts(); len(cf) != 0 {
		t.Fatalf("conflicts after a heal with nothing taken: %+v", cf)
	}
	eps := bn.ClusterEndpoints()
	if len(eps) != 3 {
		t.Fatalf("cluster endpoints after the heal: %+v", eps)
	}
	for _, e := range eps {
		if e.Name == "ea" && (e.MAC != ea.Info().Iface().MacAddress().String() || e.Addresses[0].Addr().String() != testrig.EpIP(ea)) {
			t.Fatalf("ea claimed again as %+v; want its MAC and address", e)
		}
	}
}

// A host cut off from the store past its lease, whose endpoints' name and
// address other hosts took meanwhile, keeps those endpoints down on heal
// (not in the store, no peer, listed by Conflicts) and claims the others
// again; nothing is ever on two hosts.
func TestGlobalHealKeepsTakenEndpointsDown(t *testing.T) {
	srv := memstore.New()
	opts := []config.Option{config.OptionHostLeaseTTL(3 * time.Second), config.OptionKVTimeout(500 * time.Millisecond)}
	kva := newCutKV(srv.Client())
	a, fa := newHealHost(t, srv, kva, "host-a", opts...)
	b, fb := newHealHost(t, srv, srv.Client(), "host-b", opts...)
	n := testrig.Must[*libnetwork.Network](t)(a.NewNetwork("gfake", "g", "", gPool("10.95.0.0/24")))
	bn := testrig.Must[*libnetwork.Network](t)(b.NetworkByID(n.ID()))
	var eps []*libnetwork.Endpoint
	for i, name := range []string{"keep", "named", "addr"} {
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint(name))
		if err := ep.Join(testrig.ExtSandbox(t, a, fmt.Sprintf("c%d", i))); err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	keep, named, addr := eps[0], eps[1], eps[2]
	eventually(t, "a's peers on b", func() bool { return len(fb.Peers(n.ID())) == 3 })

	kva.setCut(true)
	t.Cleanup(func() { kva.setCut(false) })
	if err := b.EvictHost("host-a"); err != nil { // as its lease running out would
		t.Fatal(err)
	}
	eventually(t, "a's endpoints gone from b's view", func() bool { return len(bn.ClusterEndpoints()) == 0 && len(fb.Peers(n.ID())) == 0 })
	// b takes addr's address and named's name; keep's address stays free.
	bNamed := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("named",
		libnetwork.CreateOptionIpam(net.ParseIP("10.95.0.200"), nil, nil, nil)))
	bAddr := testrig.Must[*libnetwork.Endpoint](t)(bn.CreateEndpoint("other",
		libnetwork.CreateOptionIpam(net.ParseIP(testrig.EpIP(addr)), nil, nil, nil)))
	for i, ep := range []*libnetwork.Endpoint{bNamed, bAddr} {
		if err := ep.Join(testrig.ExtSandbox(t, b, fmt.Sprintf("b%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	fa.watch(n.ID(), keep.ID())

	kva.setCut(false)
	eventually(t, "a healed: keep claimed again, two conflicts", func() bool {
		return onHost(bn, keep.ID(), "host-a") && hasPeer(fb.GlobalFake, n.ID(), keep.ID()) && len(a.Conflicts()) == 2
	})
	eventually(t, "a forwarding again", func() bool { return hasPeer(fa.GlobalFake, n.ID(), bAddr.ID()) })
	cf := a.Conflicts()
	if cf[0].Endpoint != "addr" || cf[0].Owner != bAddr.ID() || cf[0].Host != "host-b" || cf[0].NetworkID != n.ID() ||
		cf[1].Endpoint != "named" || cf[1].Owner != bNamed.ID() || cf[1].Host != "host-b" {
		t.Fatalf("conflicts %+v", cf)
	}
	if v := fa.violations(); len(v) > 0 {
		t.Fatalf("the fence lifted before the heal: %v", v)
	}
	// Never duplicated: one "named", one holder of the address, no peer
	// of the endpoints kept down.
	seen := map[string]string{}
	for _, e := range bn.ClusterEndpoints() {
		if prev, dup := seen[e.Name]; dup {
			t.Fatalf("endpoint name %s on %s and %s", e.Name, prev, e.Host)
		}
		seen[e.Name] = e.Host
		for _, p := range e.Addresses {
			if prev, dup := seen[p.Addr().String()]; dup {
				t.Fatalf("address %s on %s and %s", p.Addr(), prev, e.Host)
			}
			seen[p.Addr().String()] = e.Host
		}
	}
	if seen["named"] != "host-b" || seen[testrig.EpIP(addr)] != "host-b" {
		t.Fatalf("the store's endpoints %v", seen)
	}
	for _, ep := range []*libnetwork.Endpoint{named, addr} {
		if hasPeer(fb.GlobalFake, n.ID(), ep.ID()) {
			t.Fatalf("endpoint %s kept down is a peer on b", ep.Name())
		}
	}

	// One kept down cannot be joined again: up, it would answer for b's name.
	var sb *libnetwork.Sandbox
	a.WalkSandboxes(libnetwork.SandboxContainerWalker(&sb, "c1"))
	if sb == nil {
		t.Fatal("no sandbox c1")
	}
	if err := named.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if err := named.Join(sb); !types.IsForbidden(err) {
		t.Fatalf("join of an endpoint kept down: %v, want Forbidden", err)
	}

	// Deleting one kept down frees nothing of b's and drops its conflict.
	if err := addr.Delete(true); err != nil {
		t.Fatal(err)
	}
	if cf := a.Conflicts(); len(cf) != 1 || cf[0].Endpoint != "named" {
		t.Fatalf("conflicts after deleting addr: %+v", cf)
	}
	// The delete's store write was tried before Delete returned.
	if !onHost(bn, bAddr.ID(), "host-b") || !hasPeer(fa.GlobalFake, n.ID(), bAddr.ID()) {
		t.Fatal("deleting a's endpoint kept down took b's endpoint with it")
	}
}

// At the first session after a restart on a kept lease, an endpoint of
// this host in the store with no local record (a crash between the two
// writes of a create) is deleted, and a local endpoint missing from the
// store is claimed again.
func TestGlobalRestartReconciles(t *testing.T) {
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
		// Stop closes the store client: each run has its own.
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
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("gfake", "g", "", gPool("10.96.0.0/24")))
	missing := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("missing"))
	fine := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("fine"))
	st := globalstore.New(srv.Client(), globalstore.Options{})
	ctx := context.Background()
	hs, err := st.Hosts(ctx)
	if err != nil || len(hs) != 1 {
		t.Fatalf("hosts %v %v", hs, err)
	}
	orphan := globalstore.Endpoint{ID: "orphan-id", NetworkID: n.ID(), Name: "orphan", Host: "host-a",
		Claims: []globalstore.Claim{globalstore.Address(n.ID(), netip.MustParseAddr("10.96.0.200"))}}
	if err := st.CreateEndpoint(ctx, hs[0].Lease, orphan); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteEndpoint(ctx, n.ID(), missing.ID()); err != nil {
		t.Fatal(err)
	}
	c.Stop()

	c = start()
	t.Cleanup(c.Stop)
	stored := func(eid string) bool { _, err := st.Endpoint(ctx, n.ID(), eid); return err == nil }
	eventually(t, "the store reconciled", func() bool {
		return !stored(orphan.ID) && stored(missing.ID()) && stored(fine.ID())
	})
	if h, err := st.Holder(ctx, globalstore.Address(n.ID(), netip.MustParseAddr("10.96.0.200"))); err != nil || h != "" {
		t.Fatalf("the orphan's address is held by %q (%v)", h, err)
	}
	if h, err := st.Holder(ctx, globalstore.EndpointName(n.ID(), "missing")); err != nil || h != missing.ID() {
		t.Fatalf("the missing endpoint's name is held by %q (%v)", h, err)
	}
}
