package libnetwork

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/types"
)

// slowKV is a KV whose reads, listings, transactions and revokes take
// delay once it is set (as a store far away or overloaded does), and
// which tells renewals on entered.
type slowKV struct {
	globalstore.KV
	mu      sync.Mutex
	delay   time.Duration // guarded by mu; 0: as fast as the KV
	entered chan struct{} // a renewal began; nil: nobody listens
	ended   chan error    // why a renewal's ctx ended (nil: it did not), with entered
}

func (k *slowKV) wait(ctx context.Context) error {
	k.mu.Lock()
	d := k.delay
	k.mu.Unlock()
	if d == 0 {
		return nil
	}
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", globalstore.ErrUnavailable, ctx.Err())
	}
}

func (k *slowKV) setDelay(d time.Duration) {
	k.mu.Lock()
	k.delay = d
	k.mu.Unlock()
}

func (k *slowKV) Txn(ctx context.Context, conds []globalstore.Cond, ops []globalstore.Op) (globalstore.TxnResult, error) {
	if err := k.wait(ctx); err != nil {
		return globalstore.TxnResult{}, err
	}
	return k.KV.Txn(ctx, conds, ops)
}

func (k *slowKV) Get(ctx context.Context, key string) (globalstore.KeyValue, bool, error) {
	if err := k.wait(ctx); err != nil {
		return globalstore.KeyValue{}, false, err
	}
	return k.KV.Get(ctx, key)
}

func (k *slowKV) List(ctx context.Context, prefix string) ([]globalstore.KeyValue, int64, error) {
	if err := k.wait(ctx); err != nil {
		return nil, 0, err
	}
	return k.KV.List(ctx, prefix)
}

func (k *slowKV) Revoke(ctx context.Context, id globalstore.LeaseID) error {
	if err := k.wait(ctx); err != nil {
		return err
	}
	return k.KV.Revoke(ctx, id)
}

func (k *slowKV) KeepAliveOnce(ctx context.Context, id globalstore.LeaseID) error {
	k.mu.Lock()
	entered, ended := k.entered, k.ended
	k.mu.Unlock()
	if entered == nil {
		return k.KV.KeepAliveOnce(ctx, id)
	}
	select {
	case entered <- struct{}{}:
	default:
	}
	err := k.KV.KeepAliveOnce(ctx, id)
	select {
	case ended <- ctx.Err():
	default:
	}
	return err
}

// EvictHost has one deadline of KVTimeout: a store answering each of its
// three calls in a little more than half the timeout makes it fail
// NoService, where three separate deadlines let it take 1.8 timeouts.
func TestEvictHostOneDeadline(t *testing.T) {
	srv := memstore.New()
	b := newClusterCtl(t, srv, t.TempDir(), config.OptionHostID("host-b"), config.OptionHostLeaseTTL(30*time.Second))
	const timeout = 2 * time.Second
	kv := &slowKV{KV: srv.Client()}
	a := newClusterCtl(t, srv, t.TempDir(), config.OptionHostID("host-a"), config.OptionHostLeaseTTL(30*time.Second),
		config.OptionKVTimeout(timeout), knobs.Set(knobs.GlobalKV, globalstore.KV(kv)))
	for _, c := range []*Controller{a, b} {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		_, err := c.cl.session(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	kv.setDelay(timeout * 6 / 10)
	start := time.Now()
	err := a.EvictHost("host-b")
	t.Logf("EvictHost over a store answering in %v, timeout %v: %v after %v", timeout*6/10, timeout, err, time.Since(start))
	if !types.IsNoService(err) {
		t.Fatalf("EvictHost: %v; want NoService (its calls together outlast KVTimeout)", err)
	}
}

// Stop with the store down does not wait for the renewal in flight: the
// renewal's context is cancelled at once, not left to its deadline.
func TestClusterStopWithStoreDown(t *testing.T) {
	srv := memstore.New()
	kv := &slowKV{KV: srv.Client(), entered: make(chan struct{}, 1), ended: make(chan error, 1)}
	// Renewals every 5 s, each bounded by 5 s: far beyond what Stop takes.
	c, err := New(append(clusterOpts(t, srv, t.TempDir()), config.OptionHostLeaseTTL(15*time.Second),
		config.OptionKVTimeout(60*time.Second), knobs.Set(knobs.GlobalKV, globalstore.KV(kv)))...)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			c.Stop()
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := c.cl.session(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	select {
	case <-kv.entered:
	case <-time.After(patience):
		t.Fatalf("no renewal within %v", patience)
	}
	start := time.Now()
	c.Stop()
	stopped = true
	took := time.Since(start)
	var why error
	select {
	case why = <-kv.ended:
	default:
	}
	t.Logf("Stop with the store down took %v; the renewal ended with %v", took, why)
	if why != context.Canceled {
		t.Fatalf("the renewal in flight at Stop ended with %v; want context.Canceled (Stop cancels it)", why)
	}
	if took > 15*time.Second {
		t.Fatalf("Stop with the store down took %v; want far below the KVTimeout of 60 s", took)
	}
}

// A waiter woken by a session that is lost again before it looks is told
// the store is unavailable, in a readable error.
func TestClusterSessionLostAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl := &cluster{host: globalstore.Host{ID: "host-a"}, timeout: patience, ctx: ctx, up: make(chan struct{})}
	close(cl.up) // published, and lost at once: sess is nil again
	for _, last := range []error{nil, types.NoServiceErrorf("grant lease: refused")} {
		cl.lastErr = last
		_, err := cl.session(context.Background())
		if !types.IsNoService(err) || !errors.Is(err, globalstore.ErrUnavailable) || strings.Contains(err.Error(), "%!") {
			t.Errorf("session lost at once (last error %v): %v; want a readable NoService wrapping ErrUnavailable", last, err)
		}
	}
}
