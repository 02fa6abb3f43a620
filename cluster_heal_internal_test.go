package libnetwork

import (
	"context"
	"encoding/json"
	"net/netip"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/store"
)

// readLease is the lease record of a stopped controller's DataDir.
func readLease(t *testing.T, dataDir string) leaseRecord {
	t.Helper()
	b, err := store.OpenBolt(filepath.Join(dataDir, StoreFile), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, err := b.Get(kindHost, leaseRecordID)
	if err != nil {
		t.Fatalf("lease record: %v", err)
	}
	var r leaseRecord
	if err := json.Unmarshal(v, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// writeLease replaces the lease record of a stopped controller's DataDir.
func writeLease(t *testing.T, dataDir string, r leaseRecord) {
	t.Helper()
	b, err := store.OpenBolt(filepath.Join(dataDir, StoreFile), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Apply(store.Op{Kind: kindHost, ID: leaseRecordID, Value: mustMarshal(r)}); err != nil {
		t.Fatal(err)
	}
}

// revokedThenUp returns the first session a restart that revokes its
// previous lease tells of, past the fence it may tell first (on at the
// revoke, as the claims are gone; the subscriber may come too late to
// hear it).
func revokedThenUp(t *testing.T, r *recorder) event {
	t.Helper()
	for {
		ev := r.next(t, "sessionUp")
		if ev.up {
			return ev
		}
	}
}

// A restart under another TTL does not resume the lease the store keeps
// with the old one: it is revoked and a new session opened; the record
// keeps the TTL.
func TestClusterRestartOtherTTLOpensNewLease(t *testing.T) {
	srv := memstore.New()
	data := t.TempDir()
	c := newClusterCtl(t, srv, data, config.OptionHostLeaseTTL(5*time.Second))
	first := subscribeRecorder(c.cl).nextUp(t)
	c.Stop()
	if r := readLease(t, data); r.TTL != 5*time.Second || r.Lease != first.lease {
		t.Fatalf("lease record %+v; want lease %x with TTL 5s", r, int64(first.lease))
	}
	c = newClusterCtl(t, srv, data, config.OptionHostLeaseTTL(7*time.Second))
	ev := revokedThenUp(t, subscribeRecorder(c.cl))
	if ev.resumed || ev.lease == first.lease {
		t.Fatalf("restart with another TTL: lease %x resumed=%v; want a new lease", int64(ev.lease), ev.resumed)
	}
	st := globalstore.New(srv.Client(), globalstore.Options{})
	if err := st.KV().KeepAliveOnce(context.Background(), first.lease); err == nil {
		t.Fatalf("the old lease %x is still live: it was not revoked", int64(first.lease))
	}
	ss, err := c.cl.session(context.Background())
	if err != nil || ss.TTL() != 7*time.Second {
		t.Fatalf("session %v, %v; want one of TTL 7s", ss, err)
	}
}

// A restart whose host record (the resumed lease's) announces another
// discovery address than this run's revokes it and opens a new session.
func TestClusterRestartOtherAddressOpensNewLease(t *testing.T) {
	srv := memstore.New()
	data := t.TempDir()
	ttl := config.OptionHostLeaseTTL(10 * time.Second)
	c := newClusterCtl(t, srv, data, ttl)
	first := subscribeRecorder(c.cl).nextUp(t)
	id := c.cl.hostID()
	c.Stop()
	// The previous run announced another address (this one has none).
	kv := srv.Client()
	h := globalstore.Host{ID: id, Address: netip.MustParseAddr("192.0.2.7"), Lease: first.lease, Started: time.Now().UTC()}
	b, _ := json.Marshal(h)
	key := globalstore.DefaultPrefix + "/hosts/" + id
	if _, err := kv.Txn(context.Background(), nil, []globalstore.Op{globalstore.Put(key, b, first.lease)}); err != nil {
		t.Fatal(err)
	}
	c = newClusterCtl(t, srv, data, ttl)
	ev := revokedThenUp(t, subscribeRecorder(c.cl))
	if ev.resumed || ev.lease == first.lease {
		t.Fatalf("restart with another address: lease %x resumed=%v; want a new lease", int64(ev.lease), ev.resumed)
	}
	hs, err := c.ClusterHosts()
	if err != nil || len(hs) != 1 || hs[0].Address.IsValid() {
		t.Fatalf("hosts %+v, %v; want this host without the stale address", hs, err)
	}
}

// Before any session of a run, the fence follows the previous lease's
// last renewal kept in the record (each renewal, and Stop), not New: a
// lease that may have expired already fences at once, as does a record
// without a renewal time.
func TestClusterFenceFromSavedRenewal(t *testing.T) {
	srv := memstore.New()
	data := t.TempDir()
	const ttl = 3 * time.Second
	c := newClusterCtl(t, srv, data, config.OptionHostLeaseTTL(ttl))
	up := subscribeRecorder(c.cl).nextUp(t)
	ss, err := c.cl.session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	opened := ss.Renewed()
	// Renewals (every TTL/3) reach the record while the controller runs.
	deadline := time.Now().Add(patience)
	for {
		b, err := c.store.Get(kindHost, leaseRecordID)
		var r leaseRecord
		if err == nil && json.Unmarshal(b, &r) == nil && r.Renewed.After(opened) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal after %v reached the lease record within %v", opened, patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.Stop()
	r := readLease(t, data)
	if r.Lease != up.lease || r.Renewed.IsZero() {
		t.Fatalf("lease record after Stop: %+v", r)
	}

	srv.Stop() // no session can be opened: only the record tells
	t.Cleanup(srv.Start)
	for _, tc := range []struct {
		name    string
		renewed time.Time
		fenced  bool
	}{
		{"renewed just now", time.Now(), false},
		{"renewed a TTL ago", time.Now().Add(-ttl), true},
		{"no renewal time kept", time.Time{}, true},
	} {
		r.Renewed = tc.renewed
		writeLease(t, data, r)
		c := newClusterCtl(t, srv, data, config.OptionHostLeaseTTL(ttl))
		if got := c.cl.fenceState(time.Now()); got != tc.fenced {
			t.Errorf("%s: fenced=%v at New; want %v", tc.name, got, tc.fenced)
		}
		rec := subscribeRecorder(c.cl)
		if tc.fenced {
			rec.nextFence(t, true) // told at once on subscribing
		}
		c.Stop()
	}
}

// seqFake records, per network, the peer calls in order.
type seqFake struct {
	*drivertest.GlobalFake
	mu    sync.Mutex
	calls []string // "sync:<n>" or "add:<eid>"
}

func (f *seqFake) PeerSync(nid string, peers []driverapi.Peer) error {
	f.mu.Lock()
	f.calls = append(f.calls, "sync:"+string(rune('0'+len(peers))))
	f.mu.Unlock()
	return f.GlobalFake.PeerSync(nid, peers)
}

func (f *seqFake) PeerAdd(nid string, p driverapi.Peer) error {
	f.mu.Lock()
	f.calls = append(f.calls, "add:"+p.EndpointID)
	f.mu.Unlock()
	return f.GlobalFake.PeerAdd(nid, p)
}

func (f *seqFake) since(i int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls[i:]...)
}

// A peer arriving from the watch as the fence lifts is not handed to the
// driver (PeerAdd) before the PeerSync of the whole set that ends the
// fence: the driver never holds a partial set after a fence.
func TestMirrorNoPeerAddBeforeUnfenceSync(t *testing.T) {
	srv := memstore.New()
	c := newClusterCtl(t, srv, t.TempDir())
	f := &seqFake{GlobalFake: drivertest.NewGlobalFake("gfake")}
	if err := c.RegisterDriver("gfake", f, f.Capability()); err != nil {
		t.Fatal(err)
	}
	n, err := c.NewNetwork("gfake", "g", "")
	if err != nil {
		t.Fatal(err)
	}
	m := c.mirror
	waitCalls := func(from int, what string, ok func([]string) bool) {
		t.Helper()
		deadline := time.Now().Add(patience)
		for !ok(f.since(from)) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within %v; calls %v", what, patience, f.since(from))
			}
			time.Sleep(time.Millisecond)
		}
	}
	peer := func(i int) globalstore.Event {
		eid := "remote-" + string(rune('a'+i))
		return globalstore.Event{Kind: globalstore.PeerPut, NetworkID: n.ID(), EndpointID: eid,
			Peer: &globalstore.Peer{EndpointID: eid, NetworkID: n.ID(), Host: "host-x",
				VTEP: netip.MustParseAddr("192.0.2.9"), MAC: "02:42:00:00:00:01"}}
	}
	for i := 0; i < 20; i++ {
		mark := len(f.since(0))
		m.fence(true)
		waitCalls(mark, "fenced sync", func(cs []string) bool { return len(cs) > 0 })
		mark = len(f.since(0))
		m.fence(false)
		m.apply(peer(i)) // at once, racing the unfence
		waitCalls(mark, "unfence sync", func(cs []string) bool {
			for _, c := range cs {
				if c[:4] == "sync" {
					return true
				}
			}
			return false
		})
		if cs := f.since(mark); cs[0][:4] != "sync" {
			t.Fatalf("round %d: after the fence lifted the driver got %v: a peer before the sync of the whole set", i, cs)
		}
	}
	if got := len(f.Peers(n.ID())); got != 20 {
		t.Fatalf("driver has %d peers, want the 20 delivered", got)
	}
}
