package libnetwork

import (
	"context"
	"hash/fnv"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/types"
)

// storeWrite is a write to the global store that must not fail its caller
// (a peer record after a join or leave, the delete of an endpoint): tried
// at once, and when the store does not take it, again in the background
// until it does. The host's lease is the last resort: if the host dies
// first, the lease takes the records with it.
type storeWrite struct {
	what string
	do   func(ctx context.Context) error
}

// writeLockStripes is how many locks the writes' keys hash to. Every store
// call for a key (a write's try or retry, a heal's reclaim) runs holding
// the key's stripe, so one endpoint's calls never overlap and a retried
// write never lands after a newer one (a peer put after its delete). A
// stripe is held across a store call; only the background queue and the
// heal wait for one, never a caller of write.
const writeLockStripes = 64

// lockFor locks the stripe of key and returns its unlock.
func (m *mirror) lockFor(key string) func() {
	l := m.stripe(key)
	l.Lock()
	return l.Unlock
}

// stripe is the lock of key's writes.
func (m *mirror) stripe(key string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return &m.wlocks[h.Sum32()%writeLockStripes]
}

// write makes w the write wanted for key (an endpoint ID, or the ID of a
// network whose create is undone), replacing any
// queued one, and tries it now unless writes are waiting for the store
// (this key's own included: then the store is most likely away, and the
// caller should not wait out its timeout) or the key's lock is busy (a
// retry of an older write of it, which the caller must not wait out
// either: the queue runs this one after it).
func (m *mirror) write(key, what string, do func(ctx context.Context) error) {
	w := &storeWrite{what: what, do: do}
	l := m.stripe(key)
	locked := l.TryLock()
	m.mu.Lock()
	backlog := len(m.queue)
	m.queue[key] = w
	m.mu.Unlock()
	if locked {
		if backlog == 0 {
			err := do(m.ctx)
			if !retriable(err) {
				m.finish(key, w, err)
				l.Unlock()
				return
			}
			m.log.Warn("global store write queued for retry", "what", what, "error", err)
		}
		l.Unlock()
	}
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// retriable reports whether a failed write may succeed later: the store
// did not answer. Any other failure (the store refused it) is final.
func retriable(err error) bool {
	return err != nil && (types.IsNoService(err) || types.IsTimeout(err))
}

// finish drops w, done or failed for good (logged).
func (m *mirror) finish(key string, w *storeWrite, err error) {
	if err != nil {
		m.log.Warn("global store write failed, not retried", "what", w.what, "error", err)
	}
	m.done(key, w)
}

// done drops w from the queue if it is still the write wanted for key.
func (m *mirror) done(key string, w *storeWrite) {
	m.mu.Lock()
	if m.queue[key] == w {
		delete(m.queue, key)
	}
	m.mu.Unlock()
}

// queued returns how many writes wait for the store.
func (m *mirror) queued() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.queue)
}

// runQueue retries the queued writes, waiting 100 ms doubling to 5 s
// between rounds that left some behind, until the mirror closes.
func (m *mirror) runQueue() {
	wait := 100 * time.Millisecond
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-m.kick:
		case <-time.After(wait):
		}
		m.mu.Lock()
		keys := make([]string, 0, len(m.queue))
		for k := range m.queue {
			keys = append(keys, k)
		}
		m.mu.Unlock()
		failed := false
		for _, k := range keys {
			if m.ctx.Err() != nil {
				return
			}
			if !m.retry(k) {
				failed = true
			}
		}
		if failed {
			wait = min(2*wait, 5*time.Second)
		} else {
			wait = 100 * time.Millisecond
		}
	}
}

// retry runs the write wanted for key once; false if it failed again.
func (m *mirror) retry(key string) bool {
	unlock := m.lockFor(key)
	defer unlock()
	m.mu.Lock()
	w := m.queue[key]
	m.mu.Unlock()
	if w == nil {
		return true
	}
	err := w.do(m.ctx)
	if retriable(err) {
		m.log.Debug("global store write still failing", "what", w.what, "error", err)
		return false
	}
	if err == nil {
		m.log.Info("global store write done after retry", "what", w.what)
	}
	m.finish(key, w, err)
	return true
}
