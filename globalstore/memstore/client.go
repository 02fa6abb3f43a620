package memstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
)

var errClosed = fmt.Errorf("%w: client closed", globalstore.ErrUnavailable)

// Client is one host's connection to a Server.
type Client struct {
	s      *Server
	mu     sync.Mutex
	closed bool
	cancel map[*watcher]context.CancelFunc // open watches; guarded by mu
}

// Client returns a new connection to s.
func (s *Server) Client() *Client {
	return &Client{s: s, cancel: map[*watcher]context.CancelFunc{}}
}

var (
	_ globalstore.KV        = (*Client)(nil)
	_ globalstore.Compactor = (*Client)(nil)
)

func (c *Client) call(ctx context.Context) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return errClosed
	}
	return c.s.reachable(ctx)
}

func (c *Client) Txn(ctx context.Context, conds []globalstore.Cond, ops []globalstore.Op) (globalstore.TxnResult, error) {
	if err := c.call(ctx); err != nil {
		return globalstore.TxnResult{}, err
	}
	return c.s.txn(conds, ops)
}

func (c *Client) Get(ctx context.Context, key string) (globalstore.KeyValue, bool, error) {
	if err := c.call(ctx); err != nil {
		return globalstore.KeyValue{}, false, err
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	e := c.s.data[key]
	if e == nil {
		return globalstore.KeyValue{}, false, nil
	}
	return globalstore.KeyValue{Key: key, Value: append([]byte(nil), e.value...), Lease: e.lease, ModRevision: e.mod}, true, nil
}

func (c *Client) List(ctx context.Context, prefix string) ([]globalstore.KeyValue, int64, error) {
	if err := c.call(ctx); err != nil {
		return nil, 0, err
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	var kvs []globalstore.KeyValue
	for _, k := range c.s.sortedKeys(prefix) {
		e := c.s.data[k]
		kvs = append(kvs, globalstore.KeyValue{Key: k, Value: append([]byte(nil), e.value...), Lease: e.lease, ModRevision: e.mod})
	}
	return kvs, c.s.rev, nil
}

func (c *Client) Grant(ctx context.Context, ttlSeconds int64) (globalstore.LeaseID, error) {
	if err := c.call(ctx); err != nil {
		return 0, err
	}
	if ttlSeconds <= 0 {
		return 0, errors.New("lease TTL must be positive")
	}
	return c.s.grant(time.Duration(ttlSeconds) * time.Second), nil
}

func (c *Client) KeepAliveOnce(ctx context.Context, id globalstore.LeaseID) error {
	if err := c.call(ctx); err != nil {
		return err
	}
	return c.s.keepAlive(id)
}

func (c *Client) Revoke(ctx context.Context, id globalstore.LeaseID) error {
	if err := c.call(ctx); err != nil {
		return err
	}
	c.s.revoke(id)
	return nil
}

func (c *Client) Compact(ctx context.Context, rev int64) error {
	if err := c.call(ctx); err != nil {
		return err
	}
	return c.s.compact(rev)
}

// Close ends the client's watches; its leases live on until they expire.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, cancel := range c.cancel {
		cancel()
	}
	c.mu.Unlock()
	return nil
}

// watcher queues a watch's events without ever blocking a commit.
type watcher struct {
	prefix string
	mu     sync.Mutex
	queue  []globalstore.KVEvent
	wake   chan struct{}
}

// push is called with the server's lock held.
func (w *watcher) push(evs []globalstore.KVEvent) {
	w.mu.Lock()
	for _, e := range evs {
		if strings.HasPrefix(e.Key, w.prefix) {
			w.queue = append(w.queue, e)
		}
	}
	n := len(w.queue)
	w.mu.Unlock()
	if n > 0 {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (c *Client) Watch(ctx context.Context, prefix string, fromRev int64) <-chan globalstore.WatchBatch {
	out := make(chan globalstore.WatchBatch, 1)
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{prefix: prefix, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		cancel()
		close(out)
		return out
	}
	c.cancel[w] = cancel
	c.mu.Unlock()

	s := c.s
	s.mu.Lock()
	if fromRev > 0 && fromRev <= s.compacted {
		compacted := s.compacted
		s.mu.Unlock()
		out <- globalstore.WatchBatch{Err: fmt.Errorf("watch from %d: %w", fromRev, globalstore.ErrCompacted), CompactRevision: compacted}
		c.forget(w)
		close(out)
		return out
	}
	var past []globalstore.KVEvent
	for _, e := range s.history {
		if e.Revision >= fromRev && strings.HasPrefix(e.Key, prefix) {
			past = append(past, e)
		}
	}
	w.queue = past
	s.watchers[w] = true
	s.mu.Unlock()
	if len(past) > 0 {
		// Non-blocking: a commit since the unlock may have woken it already.
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
	go func() {
		defer close(out)
		defer c.forget(w)
		defer func() { s.mu.Lock(); delete(s.watchers, w); s.mu.Unlock() }()
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
			}
			w.mu.Lock()
			evs := w.queue
			w.queue = nil
			w.mu.Unlock()
			if len(evs) == 0 {
				continue
			}
			// A batch holds whole revisions: the queue only ever gets whole ones.
			select {
			case out <- globalstore.WatchBatch{Events: evs}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

func (c *Client) forget(w *watcher) {
	c.mu.Lock()
	if cancel := c.cancel[w]; cancel != nil {
		cancel()
		delete(c.cancel, w)
	}
	c.mu.Unlock()
}
