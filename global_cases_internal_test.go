package libnetwork

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/ipamapi"
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
	waitSnapshot(t, b) // a snapshot after the mark would clear it
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

// waitSnapshot waits for c's mirror to have applied the watch's first
// snapshot.
func waitSnapshot(t *testing.T, c *Controller) {
	t.Helper()
	for deadline := time.Now().Add(patience); ; time.Sleep(5 * time.Millisecond) {
		c.mirror.mu.Lock()
		synced := c.mirror.resyncs > 0
		c.mirror.mu.Unlock()
		if synced {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for the mirror's first snapshot")
		}
	}
}

// NewNetwork, a lookup and Delete of a global network each have one
// deadline of KVTimeout: a store answering each of their calls in a little
// more than half the timeout makes them NoService, where a deadline per
// store call would let them take twice KVTimeout or more.
func TestGlobalNetworkCallsOneDeadline(t *testing.T) {
	srv := memstore.New()
	const timeout = 2 * time.Second
	kv := &slowKV{KV: srv.Client()}
	a := newGlobalCtl(t, srv, "host-a", config.OptionKVTimeout(timeout), knobs.Set(knobs.GlobalKV, globalstore.KV(kv)))
	b := newGlobalCtl(t, srv, "host-b")
	waitSnapshot(t, a)
	n, err := a.NewNetwork("gfake", "to-delete", "")
	if err != nil {
		t.Fatal(err)
	}
	const id = "00112233445566778899aabbccddeeff"
	a.mirror.markGone(id) // so a lookup of it misses here and reads the store
	if _, err := b.NewNetwork("gfake", "elsewhere", id); err != nil {
		t.Fatal(err)
	}
	kv.setDelay(timeout * 6 / 10)
	defer kv.setDelay(0)
	for what, call := range map[string]func() error{
		"NewNetwork":    func() error { _, err := a.NewNetwork("gfake", "slow", ""); return err },
		"NetworkByName": func() error { _, err := a.NetworkByName("elsewhere"); return err },
		"Delete":        func() error { return n.Delete() },
	} {
		start := time.Now()
		err := call()
		t.Logf("%s over a store answering in %v, timeout %v: %v after %v", what, timeout*6/10, timeout, err, time.Since(start))
		if !types.IsNoService(err) {
			t.Errorf("%s: %v; want NoService (its calls together outlast KVTimeout)", what, err)
		}
	}
}

// After a recent loss in the network, an address pick is one of the
// lowest spread free addresses, at random: racing hosts part ways, and
// addresses stay low.
func TestGlobalAddressPickAmongLowestFree(t *testing.T) {
	const nid = "n1"
	m := &mirror{nets: map[string]globalstore.Network{nid: {ID: nid}},
		eps:      map[string]map[string]globalstore.Endpoint{nid: {}},
		inflight: map[globalstore.Claim]bool{}, hints: map[globalstore.Claim]time.Time{},
		listed: map[globalstore.Claim]time.Time{}}
	// .2 to .33 are used: the lowest free are .1 and .34 on.
	for i := 2; i <= 33; i++ {
		a := netip.AddrFrom4([4]byte{10, 9, 0, byte(i)})
		m.eps[nid][a.String()] = globalstore.Endpoint{Addrs: []netip.Prefix{netip.PrefixFrom(a, 16)}}
	}
	lowest := map[netip.Addr]bool{netip.MustParseAddr("10.9.0.1"): true}
	for i := 34; len(lowest) < spread; i++ {
		lowest[netip.AddrFrom4([4]byte{10, 9, 0, byte(i)})] = true
	}
	m.hints[globalstore.Address(nid, netip.MustParseAddr("10.9.0.2"))] = time.Now()
	g := &globalIPAM{m: m, nid: nid}
	id := globalPoolID(ipamapi.GlobalDefaultAddressSpace, netip.MustParsePrefix("10.9.0.0/16"), netip.Prefix{})
	seen := map[netip.Addr]bool{}
	for i := 0; i < 400; i++ {
		p, _, err := g.RequestAddress(id, netip.Addr{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !lowest[p.Addr()] {
			t.Fatalf("pick %d after a loss: %s, not among the %d lowest free", i, p.Addr(), spread)
		}
		seen[p.Addr()] = true
		_ = g.ReleaseAddress(id, p.Addr())
	}
	// 400 uniform picks of 64 miss more than half of them with a
	// probability far below 1e-100.
	if len(seen) < spread/2 {
		t.Fatalf("400 picks after a loss hit only %d of the %d lowest free addresses", len(seen), spread)
	}
}

// A write for an endpoint whose earlier write is still at the store does
// not wait for it (the caller must not wait out the store's timeout), and
// lands after it: one endpoint's writes stay in order, the latest wins.
func TestGlobalWriteDoesNotWaitForStripe(t *testing.T) {
	m := &mirror{log: slog.New(slog.DiscardHandler), queue: map[string]*storeWrite{}, kick: make(chan struct{}, 1)}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.runQueue() }()
	defer m.close()
	release := make(chan struct{})
	var mu sync.Mutex
	var order []string
	record := func(s string) {
		mu.Lock()
		order = append(order, s)
		mu.Unlock()
	}
	entered := make(chan struct{})
	go m.write("ep1", "first", func(ctx context.Context) error {
		close(entered)
		<-release // the store is slow to answer
		record("first")
		return nil
	})
	<-entered
	second := make(chan struct{})
	go func() {
		m.write("ep1", "second", func(ctx context.Context) error { record("second"); return nil })
		m.write("ep2", "other", func(ctx context.Context) error { record("other"); return nil })
		close(second)
	}()
	select {
	case <-second:
	case <-time.After(patience):
		close(release)
		t.Fatal("a write waited for the store call of an earlier one")
	}
	close(release)
	for deadline := time.Now().Add(patience); m.queued() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("writes still queued: %d", m.queued())
		}
	}
	mu.Lock()
	defer mu.Unlock()
	first, sec := slices.Index(order, "first"), slices.Index(order, "second")
	if first < 0 || sec < 0 || sec < first || !slices.Contains(order, "other") {
		t.Fatalf("writes done in the order %v; want first before second, and other", order)
	}
}
