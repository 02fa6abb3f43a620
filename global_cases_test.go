package libnetwork_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// A network deleted and made again with the same explicit ID appears on a
// host that saw the delete.
func TestGlobalNetworkRecreatedWithSameIDAppears(t *testing.T) {
	_, h := newGCluster(t, 2)
	a, b := h[0], h[1]
	const id = "0123456789abcdef0123456789abcdef"
	n := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "again", id))
	eventually(t, "the network on host b", func() bool { _, err := b.c.NetworkByID(id); return err == nil })
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	gone := func() bool {
		_, errA := a.c.NetworkByID(id)
		_, errB := b.c.NetworkByID(id)
		return errA != nil && errB != nil
	}
	eventually(t, "the network gone on both hosts", gone)
	testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "again", id))
	eventually(t, "the network made again on host b", func() bool {
		for _, n := range b.c.Networks() {
			if n.ID() == id {
				return true
			}
		}
		return false
	})
	if _, err := b.c.NetworkByName("again"); err != nil {
		t.Fatalf("network made again, by name on host b: %v", err)
	}
}

// A create undone (its driver failed) with the store refusing the first
// delete of its record still takes the record and its claims back.
func TestGlobalNetworkCreateUndoRetried(t *testing.T) {
	srv := memstore.New()
	kv := &tapKV{KV: srv.Client()}
	a := newGHost(t, srv, "host-a", knobs.Set(knobs.GlobalKV, globalstore.KV(kv)))
	b := newGHost(t, srv, "host-b")
	a.g.Fail("CreateNetwork", errors.New("driver says no"))
	kv.mu.Lock()
	kv.failNetDeletes = 1
	kv.mu.Unlock()
	if _, err := a.c.NewNetwork("gfake", "undone", ""); err == nil {
		t.Fatal("create whose driver failed succeeded")
	}
	st := globalstore.New(srv.Client(), globalstore.Options{})
	eventually(t, "the undone network's record gone from the store", func() bool {
		_, err := st.NetworkByName(context.Background(), "undone")
		return types.IsNotFound(err)
	})
	testrig.Must[*libnetwork.Network](t)(b.c.NewNetwork("gfake", "undone", ""))
}

// Two hosts creating overlapping user pools at once (a /16 and a /24 in
// it, each unseen by the other's check before its commit): the one that
// committed second is undone and Forbidden.
func TestGlobalOverlappingUserPoolsRace(t *testing.T) {
	srv := memstore.New()
	kv := &tapKV{KV: srv.Client()}
	a := newGHost(t, srv, "host-a", knobs.Set(knobs.GlobalKV, globalstore.KV(kv)))
	b := newGHost(t, srv, "host-b")
	kv.mu.Lock()
	kv.beforeNetCreate = func() {
		testrig.Must[*libnetwork.Network](t)(b.c.NewNetwork("gfake", "wide", "", gPool("10.77.0.0/16")))
	}
	kv.mu.Unlock()
	_, err := a.c.NewNetwork("gfake", "narrow", "", gPool("10.77.1.0/24"))
	if !types.IsForbidden(err) {
		t.Fatalf("create of a pool inside one committed first: want Forbidden, got %v", err)
	}
	st := globalstore.New(srv.Client(), globalstore.Options{})
	eventually(t, "the overlapping network gone from the store", func() bool {
		_, err := st.NetworkByName(context.Background(), "narrow")
		return types.IsNotFound(err)
	})
	if _, err := st.NetworkByName(context.Background(), "wide"); err != nil {
		t.Fatalf("the network committed first: %v", err)
	}
}

// A global network reached by ID only (a local network had its name here)
// takes its name back once the local one is gone: lookups by name stay
// here instead of reading the store each time.
func TestGlobalNetworkTakesNameBack(t *testing.T) {
	srv := memstore.New()
	kv := &tapKV{KV: srv.Client()}
	a := newGHost(t, srv, "host-a")
	c := newGHost(t, srv, "host-c", knobs.Set(knobs.GlobalKV, globalstore.KV(kv)))
	local := testrig.FakeNet(t, c.c, "shared")
	g := testrig.Must[*libnetwork.Network](t)(a.c.NewNetwork("gfake", "shared", ""))
	eventually(t, "the global network on host c", func() bool { _, err := c.c.NetworkByID(g.ID()); return err == nil })
	if err := local.Delete(); err != nil {
		t.Fatal(err)
	}
	if n, err := c.c.NetworkByName("shared"); err != nil || n.ID() != g.ID() {
		t.Fatalf("by name after the local network's delete: %v, %v; want the global one", n, err)
	}
	from := kv.count()
	for i := 0; i < 3; i++ {
		if n, err := c.c.NetworkByName("shared"); err != nil || n.ID() != g.ID() {
			t.Fatalf("by name again: %v, %v", n, err)
		}
	}
	for _, call := range kv.since(from) {
		if strings.Contains(call, "shared") {
			t.Fatalf("a lookup by name of a network made here read the store: %s", call)
		}
	}
}

// A local network never touches the global store: its create, an
// endpoint's create, join, leave and delete, and its delete make no call
// (the session's own traffic, under /hosts/ or on the lease, aside).
func TestLocalNetworkNeverTouchesStore(t *testing.T) {
	srv := memstore.New()
	kv := &tapKV{KV: srv.Client()}
	h := newGHost(t, srv, "host-a", knobs.Set(knobs.GlobalKV, globalstore.KV(kv)))
	storeCalls := func(from int) []string {
		var out []string
		for _, call := range kv.since(from) {
			if !strings.Contains(call, "/hosts/") {
				out = append(out, call)
			}
		}
		return out
	}
	// The mirror's snapshot and watch, once, at start.
	eventually(t, "the mirror's watch", func() bool {
		return slices.ContainsFunc(kv.since(0), func(c string) bool { return strings.HasPrefix(c, "watch ") })
	})
	from := kv.count()
	n := testrig.Must[*libnetwork.Network](t)(h.c.NewNetwork("fake", "local", "", gPool("10.61.0.0/24")))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))
	sb := testrig.ExtSandbox(t, h.c, "c1")
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	if _, err := h.c.NetworkByName("local"); err != nil {
		t.Fatal(err)
	}
	if err := ep.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if err := ep.Delete(false); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if calls := storeCalls(from); len(calls) > 0 {
		t.Fatalf("a local network's life called the global store: %q", calls)
	}
	// The wrapper does see this controller's calls: a lookup miss reads.
	from = kv.count()
	if _, err := h.c.NetworkByName("nowhere"); !types.IsNotFound(err) {
		t.Fatalf("unknown network: %v", err)
	}
	if len(storeCalls(from)) == 0 {
		t.Fatal("a lookup miss made no store call the wrapper saw")
	}
}
