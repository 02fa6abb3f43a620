package macvlan

import (
	"errors"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// Deleting a network device makes the kernel wait ~20-30 ms for RCU
// callbacks, holding the rtnl lock, which alone was ~36 ms of a ~37 ms
// container teardown (BenchmarkMacvlanLifecycle). So Leave hands the link
// to a reaper that deletes it in the background, off the caller's path.
// By then the controller has taken the link out of service (down, no
// addresses, renamed "gone<ifindex>"), or is about to destroy its
// namespace; the reaper holds the namespace open meanwhile, because a
// link left to the kernel's asynchronous namespace clean-up keeps its MAC
// busy on the parent for a while (a join with that MAC could not come up),
// and a join with the MAC of a retired link flushes first. During a burst of leaves it waits for a lull (reapLull with
// no new retirement), as the bridge's reaper does, so its rtnl-holding
// deletions do not stall the next container's join; but it never keeps a
// link longer than reapMaxAge, and deletes at once when someone flushes.
const (
	reapLull   = 30 * time.Millisecond
	reapMaxAge = 500 * time.Millisecond
)

// retiredLink is a left endpoint's macvlan: in the namespace ns (nil for
// the host's; held open until the link is deleted), at index, tagged with
// endpoint eid, with MAC mac.
type retiredLink struct {
	ns    *netnsutil.NS
	index int
	eid   string
	mac   string
}

type reaper struct {
	del   func(retiredLink) error
	hurry chan struct{} // wakes a loop waiting for a lull; buffered 1

	mu      sync.Mutex
	cond    *sync.Cond     // signalled when queue, reaped, waiters or closed change
	queue   []retiredLink  // guarded by mu
	macs    map[string]int // MACs of links retired and not yet dealt with (guarded by mu)
	queued  uint64         // links handed over so far (guarded by mu)
	reaped  uint64         // of those, how many the loop has dealt with (guarded by mu)
	last    time.Time      // latest retirement (guarded by mu)
	oldest  time.Time      // oldest retirement still queued (guarded by mu)
	waiters int            // callers in flush (guarded by mu)
	lastErr error          // failures of the latest batch, reported by flush (guarded by mu)
	closed  bool           // guarded by mu
	done    chan struct{}
}

func newReaper(del func(retiredLink) error) *reaper {
	r := &reaper{del: del, hurry: make(chan struct{}, 1), done: make(chan struct{}), macs: map[string]int{}}
	r.cond = sync.NewCond(&r.mu)
	go r.loop()
	return r
}

func (r *reaper) retire(l retiredLink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if len(r.queue) == 0 {
		r.oldest = now
	}
	r.queue = append(r.queue, l)
	r.macs[l.mac]++
	r.queued++
	r.last = now
	r.cond.Broadcast()
}

// holds reports whether a link with mac is retired and not yet deleted.
func (r *reaper) holds(mac string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.macs[mac] > 0
}

// flush returns once every link retired before the call is dealt with,
// with the latest batch's failures.
func (r *reaper) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	target := r.queued
	r.waiters++
	r.wake()
	for r.reaped < target {
		r.cond.Wait()
	}
	r.waiters--
	return r.lastErr
}

// close deletes what is queued and stops the loop.
func (r *reaper) close() {
	r.mu.Lock()
	r.closed = true
	r.wake()
	r.mu.Unlock()
	<-r.done
}

// wake gets the loop going now. Caller holds mu.
func (r *reaper) wake() {
	r.cond.Broadcast()
	select {
	case r.hurry <- struct{}{}:
	default:
	}
}

func (r *reaper) loop() {
	defer close(r.done)
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		for len(r.queue) == 0 && !r.closed {
			r.cond.Wait()
		}
		if len(r.queue) == 0 {
			return // closed, nothing left
		}
		if r.waiters == 0 && !r.closed {
			wait := min(reapLull-time.Since(r.last), reapMaxAge-time.Since(r.oldest))
			if wait > 0 {
				r.mu.Unlock()
				t := time.NewTimer(wait)
				select {
				case <-t.C:
				case <-r.hurry:
				}
				t.Stop()
				r.mu.Lock()
				continue
			}
		}
		batch := r.queue
		r.queue = nil
		r.mu.Unlock()
		var errs []error
		for _, l := range batch {
			errs = append(errs, r.del(l))
		}
		r.mu.Lock()
		for _, l := range batch {
			if r.macs[l.mac]--; r.macs[l.mac] <= 0 {
				delete(r.macs, l.mac)
			}
		}
		r.reaped += uint64(len(batch))
		r.lastErr = errors.Join(errs...)
		r.cond.Broadcast()
	}
}
