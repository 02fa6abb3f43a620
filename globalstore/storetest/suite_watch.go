package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
)

// Mirror is what a consumer of Watch keeps: the endpoint IDs it knows per
// network, and how many Resyncs it got.
type Mirror struct {
	Endpoints map[string]bool
	Resyncs   int
	Revision  int64
}

// Apply folds ev into m.
func (m *Mirror) Apply(ev globalstore.Event) {
	if m.Endpoints == nil {
		m.Endpoints = map[string]bool{}
	}
	m.Revision = ev.Revision
	switch ev.Kind {
	case globalstore.Resync:
		m.Resyncs++
		m.Endpoints = map[string]bool{}
		for _, e := range ev.Snapshot.Endpoints {
			m.Endpoints[e.ID] = true
		}
	case globalstore.EndpointPut:
		m.Endpoints[ev.EndpointID] = true
	case globalstore.EndpointDelete:
		m.Endpoints[ev.EndpointID] = false
		delete(m.Endpoints, ev.EndpointID)
	}
}

// follow applies events from ch until the mirror holds endpoint want (or,
// with gone, no longer holds it), at most bound.
func follow(t *testing.T, ch <-chan globalstore.Event, m *Mirror, want string, gone bool, bound time.Duration) {
	t.Helper()
	deadline := time.After(bound)
	for m.Endpoints[want] == gone {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("the watch ended")
			}
			m.Apply(ev)
		case <-deadline:
			t.Fatalf("after %v the mirror still does not show %s (gone=%v): %+v", bound, want, gone, m)
		}
	}
}

func watchCompaction(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := store(t, c, Timeout)
	comp, ok := st.KV().(globalstore.Compactor)
	if !ok {
		t.Fatal("the provider's KV does not implement Compactor, which the contract needs")
	}
	ss := session(t, st, "h1")
	if err := st.CreateNetwork(ctx, globalstore.Network{ID: "n1", Name: "blue"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEndpoint(ctx, ss.Lease(), ep("n1", "e0", "e0", "h1", "10.0.0.100")); err != nil {
		t.Fatal(err)
	}
	var m Mirror
	first := st.Watch(ctx)
	follow(t, first, &m, "e0", false, Timeout)
	if m.Resyncs != 1 {
		t.Fatalf("a watch starts with one Resync, got %d", m.Resyncs)
	}
	old := m.Revision
	// Changes the mirror misses, then a compaction past them.
	for i := 1; i <= 5; i++ {
		if err := st.CreateEndpoint(ctx, ss.Lease(), ep("n1", fmt.Sprint("e", i), fmt.Sprint("e", i), "h1", fmt.Sprint("10.0.0.", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteEndpoint(ctx, "n1", "e0"); err != nil {
		t.Fatal(err)
	}
	kvs, rev, err := st.KV().List(ctx, "/test/")
	if err != nil || len(kvs) == 0 {
		t.Fatal(err)
	}
	if err := comp.Compact(ctx, rev); err != nil {
		t.Fatalf("compact: %v", err)
	}
	// A consumer resuming from its old revision gets one Resync with the
	// current state, then live changes; it does not loop on the compaction.
	cancelFirst, stop := context.WithCancel(ctx)
	defer stop()
	resumed := st.WatchFrom(cancelFirst, old)
	follow(t, resumed, &m, "e0", true, Timeout)
	if m.Resyncs != 2 || len(m.Endpoints) != 5 {
		t.Fatalf("after the compaction: want one more Resync and e1..e5, got %+v", m)
	}
	if err := st.CreateEndpoint(ctx, ss.Lease(), ep("n1", "e6", "e6", "h1", "10.0.0.6")); err != nil {
		t.Fatal(err)
	}
	follow(t, resumed, &m, "e6", false, Timeout)
	// Let a looping watch show itself: nothing may arrive but e6's peer-less
	// stream, and no further Resync.
	drain := time.After(500 * time.Millisecond)
	for done := false; !done; {
		select {
		case ev := <-resumed:
			m.Apply(ev)
		case <-drain:
			done = true
		}
	}
	if m.Resyncs != 2 {
		t.Fatalf("the watch re-listed %d times after one compaction", m.Resyncs-1)
	}
	// The provider itself reports the compaction to a raw watch.
	b, ok := <-st.KV().Watch(ctx, "/test/", old)
	if !ok || b.Err == nil {
		t.Fatalf("a raw watch from a compacted revision: want an ErrCompacted batch, got %+v (open %v)", b, ok)
	}
}

// restart checks that data, leases, sessions and watches survive a
// restart of the store.
func restart(t *testing.T, c Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := store(t, c, Timeout)
	ss := session(t, st, "h1")
	if err := st.CreateNetwork(ctx, globalstore.Network{ID: "n1", Name: "blue"}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateEndpoint(ctx, ss.Lease(), ep("n1", "e1", "web", "h1", "10.0.0.2")); err != nil {
		t.Fatal(err)
	}
	var m Mirror
	w := st.Watch(ctx)
	follow(t, w, &m, "e1", false, Timeout)
	c.Stop(t)
	c.Start(t)
	if err := st.CreateEndpoint(ctx, ss.Lease(), ep("n1", "e2", "db", "h1", "10.0.0.3")); err != nil {
		t.Fatalf("create after the restart: %v", err)
	}
	follow(t, w, &m, "e2", false, Timeout)
	if !m.Endpoints["e1"] {
		t.Fatalf("the mirror lost e1 across the restart: %+v", m)
	}
	// The session's lease lives on across the restart and is renewed.
	time.Sleep(TestTTL + TestTTL/2)
	select {
	case <-ss.Lost():
		t.Fatal("the session lost its lease across the restart")
	default:
	}
	if h, err := st.Holder(ctx, globalstore.EndpointName("n1", "web")); err != nil || h != "e1" {
		t.Fatalf("after the restart web is held by %q (%v)", h, err)
	}
}
