package libnetwork

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// patience bounds every wait for something that must happen; it is far
// beyond what the waits take, so load cannot make these tests flake.
const patience = 30 * time.Second

// newClusterCtl starts a controller on the memstore srv with its local
// state in dataDir (the bolt file, kept across restarts) and stops it at
// the test's end unless the test did.
func newClusterCtl(t *testing.T, srv *memstore.Server, dataDir string, opts ...config.Option) *Controller {
	t.Helper()
	c, err := New(append(clusterOpts(t, srv, dataDir), opts...)...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

// clusterOpts are the options of a test controller on srv: no built-in
// drivers, and as root a throwaway host namespace.
func clusterOpts(t *testing.T, srv *memstore.Server, dataDir string) []config.Option {
	dir := t.TempDir()
	opts := []config.Option{
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(dataDir),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
		knobs.Set(knobs.NoBuiltinDrivers, true),
		knobs.Set(knobs.GlobalKV, globalstore.KV(srv.Client())),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, config.OptionHostNetNS(testutil.NewHostNS(t).Path()))
	}
	return opts
}

// event is one call into a recorder.
type event struct {
	up      bool // sessionUp, else fence
	lease   globalstore.LeaseID
	resumed bool
	on      bool
	renewed time.Time // the session's Renewed() when fence(true) came
	at      time.Time
}

// recorder is a sessionSubscriber that keeps what it was told.
type recorder struct {
	cl *cluster
	ch chan event
}

func subscribeRecorder(cl *cluster) *recorder {
	r := &recorder{cl: cl, ch: make(chan event, 64)}
	cl.subscribe(r)
	return r
}

func (r *recorder) sessionUp(ss *globalstore.Session, resumed bool) {
	r.ch <- event{up: true, lease: ss.Lease(), resumed: resumed, at: time.Now()}
}

func (r *recorder) fence(on bool) {
	ev := event{on: on, at: time.Now()}
	r.cl.mu.Lock()
	if r.cl.sess != nil {
		ev.renewed = r.cl.sess.Renewed()
	}
	r.cl.mu.Unlock()
	r.ch <- ev
}

func (r *recorder) next(t *testing.T, what string) event {
	t.Helper()
	select {
	case ev := <-r.ch:
		return ev
	case <-time.After(patience):
		t.Fatalf("no %s within %v", what, patience)
		return event{}
	}
}

func (r *recorder) nextUp(t *testing.T) event {
	t.Helper()
	ev := r.next(t, "sessionUp")
	if !ev.up {
		t.Fatalf("got fence(%v), want sessionUp", ev.on)
	}
	return ev
}

func (r *recorder) nextFence(t *testing.T, on bool) event {
	t.Helper()
	ev := r.next(t, "fence")
	if ev.up || ev.on != on {
		t.Fatalf("got %+v, want fence(%v)", ev, on)
	}
	return ev
}

// With the store down New makes no store call: it returns long before the
// store's timeout could pass, and a local network works; session fails
// NoService wrapping ErrUnavailable when its ctx ends, and succeeds once
// the store is back.
func TestClusterNewWithStoreDown(t *testing.T) {
	srv := memstore.New()
	srv.Stop()
	const timeout = 60 * time.Second
	start := time.Now()
	c := newClusterCtl(t, srv, t.TempDir(), config.OptionKVTimeout(timeout), config.OptionHostLeaseTTL(time.Second))
	if took := time.Since(start); took > timeout/2 {
		t.Fatalf("New with the store down took %v: it waited for the store", took)
	}
	local := driverapi.Capability{DataScope: driverapi.LocalScope, ConnectivityScope: driverapi.LocalScope}
	if err := c.RegisterDriver("fake", drivertest.NewFake("fake"), local); err != nil {
		t.Fatal(err)
	}
	n, err := c.NewNetwork("fake", "local1", "")
	if err != nil {
		t.Fatalf("local network with the store down: %v", err)
	}
	ep, err := n.CreateEndpoint("e1")
	if err != nil {
		t.Fatalf("local endpoint with the store down: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = c.cl.session(ctx)
	cancel()
	if !types.IsNoService(err) || !errors.Is(err, globalstore.ErrUnavailable) {
		t.Fatalf("session with the store down: %v; want NoService wrapping ErrUnavailable", err)
	}

	srv.Start()
	ctx, cancel = context.WithTimeout(context.Background(), patience)
	defer cancel()
	ss, err := c.cl.session(ctx)
	if err != nil {
		t.Fatalf("session after the store came back: %v", err)
	}
	if ss.Host().ID != c.cl.hostID() {
		t.Fatalf("session of host %q, want %q", ss.Host().ID, c.cl.hostID())
	}
	if err := ep.Delete(false); err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
}

// session waits no longer than config KVTimeout for a store that is down.
func TestClusterSessionBoundedByKVTimeout(t *testing.T) {
	srv := memstore.New()
	srv.Stop()
	const timeout = 200 * time.Millisecond
	c := newClusterCtl(t, srv, t.TempDir(), config.OptionKVTimeout(timeout))
	start := time.Now()
	_, err := c.cl.session(context.Background())
	took := time.Since(start)
	if !types.IsNoService(err) || !errors.Is(err, globalstore.ErrUnavailable) {
		t.Fatalf("session with the store down: %v; want NoService wrapping ErrUnavailable", err)
	}
	// The default timeout (5 s) is beyond the bound, so this fails if the
	// option were ignored; the bound is still 20 times the timeout.
	if took < timeout || took > 20*timeout {
		t.Fatalf("session failed after %v; want after the KVTimeout of %v", took, timeout)
	}
}

// The random host ID is made once per DataDir; a configured one wins.
func TestClusterHostIDKept(t *testing.T) {
	srv := memstore.New()
	data := t.TempDir()
	c := newClusterCtl(t, srv, data)
	id := c.cl.hostID()
	if id == "" {
		t.Fatal("no host ID")
	}
	c.Stop()
	c = newClusterCtl(t, srv, data)
	if got := c.cl.hostID(); got != id {
		t.Fatalf("host ID after restart on the same DataDir: %q, want %q", got, id)
	}
	c.Stop()
	if got := newClusterCtl(t, srv, t.TempDir()).cl.hostID(); got == id {
		t.Fatalf("another DataDir has the same random host ID %q", got)
	}
	if got := newClusterCtl(t, srv, data, config.OptionHostID("h-conf")).cl.hostID(); got != "h-conf" {
		t.Fatalf("configured host ID: got %q", got)
	}
}

// Stop abandons the session: the host's keys stay until the TTL. A restart
// within the TTL resumes the same lease; one after it opens a new lease.
func TestClusterRestartResumesLease(t *testing.T) {
	srv := memstore.New()
	data := t.TempDir()
	// A TTL that a restart (New on the same DataDir) fits in many times.
	ttl := config.OptionHostLeaseTTL(5 * time.Second)
	c := newClusterCtl(t, srv, data, ttl)
	r := subscribeRecorder(c.cl)
	first := r.nextUp(t)
	if first.resumed {
		t.Fatal("the first session of a new DataDir says resumed")
	}
	c.Stop()
	hostKey := globalstore.DefaultPrefix + "/hosts/" + c.cl.hostID()
	if !hasKey(srv, hostKey) {
		t.Fatalf("host key %s gone at once after Stop (revoked?); keys %v", hostKey, srv.Keys())
	}
	c = newClusterCtl(t, srv, data, ttl)
	r = subscribeRecorder(c.cl)
	again := r.nextUp(t)
	if !again.resumed || again.lease != first.lease {
		t.Fatalf("restart within the TTL: lease %x resumed=%v; want lease %x resumed", int64(again.lease), again.resumed, int64(first.lease))
	}
	c.Stop()
	deadline := time.Now().Add(patience)
	for hasKey(srv, hostKey) {
		if time.Now().After(deadline) {
			t.Fatalf("host key %s outlived the TTL by %v", hostKey, patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c = newClusterCtl(t, srv, data, ttl)
	r = subscribeRecorder(c.cl)
	// The lease expired from its last renewal on: the host is fenced
	// from the start (TestClusterFenceFromSavedRenewal), which this
	// subscriber may or may not hear before the new session.
	if ev := revokedThenUp(t, r); ev.resumed || ev.lease == first.lease {
		t.Fatalf("restart after the TTL: lease %x resumed=%v; want a new lease", int64(ev.lease), ev.resumed)
	}
}

func hasKey(srv *memstore.Server, key string) bool {
	for _, k := range srv.Keys() {
		if k == key {
			return true
		}
	}
	return false
}

// During an outage the fence goes on before the lease could expire
// (Renewed+TTL), and off again once renewals succeed.
func TestClusterFenceDuringOutage(t *testing.T) {
	srv := memstore.New()
	const ttl = 4 * time.Second
	c := newClusterCtl(t, srv, t.TempDir(), config.OptionHostLeaseTTL(ttl))
	r := subscribeRecorder(c.cl)
	up := r.nextUp(t)
	srv.Stop()
	on := r.nextFence(t, true)
	if on.renewed.IsZero() || !on.at.Before(on.renewed.Add(ttl)) {
		t.Fatalf("fence(true) at %v; the lease could expire at %v (renewed %v + TTL)", on.at, on.renewed.Add(ttl), on.renewed)
	}
	srv.Start()
	r.nextFence(t, false)
	ss, err := c.cl.session(context.Background())
	if err != nil || ss.Lease() != up.lease {
		t.Fatalf("after the outage: session %v, %v; want the lease %x kept", ss, err, int64(up.lease))
	}
}

// A lost lease (here the host is evicted) fences the host at once and a
// new session is opened in the background: sessionUp(resumed=false), then
// the fence goes off.
func TestClusterLostLeaseReopens(t *testing.T) {
	srv := memstore.New()
	c := newClusterCtl(t, srv, t.TempDir(), config.OptionHostLeaseTTL(time.Second))
	r := subscribeRecorder(c.cl)
	first := r.nextUp(t)
	other := globalstore.New(srv.Client(), globalstore.Options{})
	if err := other.Evict(context.Background(), c.cl.hostID()); err != nil {
		t.Fatal(err)
	}
	r.nextFence(t, true)
	ev := r.nextUp(t)
	if ev.resumed || ev.lease == first.lease {
		t.Fatalf("after the lease was lost: lease %x resumed=%v; want a new lease", int64(ev.lease), ev.resumed)
	}
	r.nextFence(t, false)
}

// A subscriber joining late hears of the session that is up, once.
func TestClusterSubscribeLate(t *testing.T) {
	srv := memstore.New()
	c := newClusterCtl(t, srv, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	ss, err := c.cl.session(ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := subscribeRecorder(c.cl)
	if ev := r.nextUp(t); ev.lease != ss.Lease() {
		t.Fatalf("late subscriber told of lease %x, want %x", int64(ev.lease), int64(ss.Lease()))
	}
	select {
	case ev := <-r.ch:
		t.Fatalf("unexpected %+v", ev)
	case <-time.After(100 * time.Millisecond):
	}
}

// Negative durations are BadRequest; zero takes the defaults.
func TestClusterConfigDefaults(t *testing.T) {
	srv := memstore.New()
	c := newClusterCtl(t, srv, t.TempDir())
	if c.cl.ttl != 60*time.Second || c.cl.timeout != 5*time.Second || c.cl.st.Timeout() != 5*time.Second {
		t.Fatalf("defaults: TTL %v, timeout %v (store %v); want 60s, 5s", c.cl.ttl, c.cl.timeout, c.cl.st.Timeout())
	}
	for name, o := range map[string]config.Option{
		"ttl":     config.OptionHostLeaseTTL(-time.Second),
		"timeout": config.OptionKVTimeout(-time.Second),
	} {
		c, err := New(append(clusterOpts(t, srv, t.TempDir()), o)...)
		if err == nil {
			c.Stop()
		}
		if !types.IsBadRequest(err) {
			t.Errorf("negative %s: New says %v; want BadRequest", name, err)
		}
	}
}
