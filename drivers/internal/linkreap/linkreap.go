// Package linkreap deletes a group of links in batches in the background:
// a driver moves the links it is done with into a device group of its own,
// queues them here, and the reaper deletes the whole group with one
// request (the driver's delete func) off the caller's path. The driver
// owns the group and the request; this package owns when it runs.
package linkreap

import (
	"sync"
	"time"
)

// Deleting a network device makes the kernel wait for RCU callbacks
// (~20 ms) under the rtnl lock, stalling every other link change on the
// host meanwhile, the next container's join or leave included. So during
// a burst of retirements the reaper waits for a lull (Lull with no new
// link queued), but never keeps a link longer than MaxAge, and deletes at
// once when someone waits in Flush or Close.
const (
	Lull   = 30 * time.Millisecond
	MaxAge = 500 * time.Millisecond
)

// Reaper schedules the group deletes of one device group.
//
// Every link queued gets a ticket (1, 2, ...); a link is known deleted,
// or its delete failed (which Flush reports), once ReapedUpTo reaches its
// ticket. A link that went meanwhile (with its namespace, say) only makes
// the group delete find less or nothing, which the delete func treats as
// success.
type Reaper struct {
	// mu guards every field but kick and done.
	mu      sync.Mutex
	del     func() error                  // deletes every link in the group
	failed  func(links uint64, err error) // told of each failed delete; may be nil
	cond    *sync.Cond                    // signalled when queued, reaped, waiters or closed change
	queued  uint64                        // links handed over so far
	reaped  uint64                        // of those, how many a finished group delete covered
	taken   uint64                        // queued when the running group delete began
	last    time.Time                     // when the latest link was handed over
	oldest  time.Time                     // when the oldest link not covered by taken was handed over
	waiters int                           // callers blocked in Flush
	lastErr error                         // the latest group delete's failure; nil once one succeeds
	closed  bool
	kick    chan struct{} // wakes the loop from its lull for a Flush or Close
	done    chan struct{} // closed when the loop has returned
}

// New starts a reaper whose group delete is del. failed, if not nil, is
// called (from the reaper's goroutine) with each failed delete's error
// and the number of links it was to delete.
func New(del func() error, failed func(links uint64, err error)) *Reaper {
	r := &Reaper{del: del, failed: failed, kick: make(chan struct{}, 1), done: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	go r.loop()
	return r
}

// Queue counts k more links in the group and returns the ticket of the
// last of them.
func (r *Reaper) Queue(k int) (ticket uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	// The first link the running delete (if any) may miss starts the
	// next batch's age: measured from an older one, the next delete
	// would follow the running one at once, and during a burst the
	// reaper would hold the rtnl lock nearly all the time.
	if r.taken == r.queued {
		r.oldest = now
	}
	r.queued += uint64(k)
	r.last = now
	r.cond.Broadcast()
	return r.queued
}

// ReapedUpTo returns the highest ticket known deleted: every link queued
// with a ticket up to it is gone (or its group delete failed, which
// Flush reports).
func (r *Reaper) ReapedUpTo() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reaped
}

// Pending reports whether queued links wait to be deleted.
func (r *Reaper) Pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reaped < r.queued
}

// Urgent reports whether the reaper deletes without waiting for a lull:
// someone waits in Flush, or Close was called.
func (r *Reaper) Urgent() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.urgentLocked()
}

func (r *Reaper) urgentLocked() bool { return r.closed || r.waiters > 0 }

// Flush waits until every link queued before the call is deleted and
// returns the failure of the group delete that covered them, if any.
// After Close it returns at once.
func (r *Reaper) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	target := r.queued
	r.waiters++
	r.cond.Broadcast()
	r.wake()
	for r.reaped < target && !r.closed {
		r.cond.Wait()
	}
	r.waiters--
	return r.lastErr
}

// Close deletes what is queued, stops the reaper and returns the last
// delete's failure. A delete that fails once closed is not retried: its
// links stay in the group, for the driver's next start to find. Closing
// twice is harmless.
func (r *Reaper) Close() error {
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.wake()
	r.mu.Unlock()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

// WrapDelete replaces the group delete with wrap of it, for the deletes
// that start from now on (tests hold or fail deletes with it).
func (r *Reaper) WrapDelete(wrap func(del func() error) func() error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.del = wrap(r.del)
}

// wake ends the loop's lull early.
func (r *Reaper) wake() {
	select {
	case r.kick <- struct{}{}:
	default: // a wake is pending already
	}
}

func (r *Reaper) loop() {
	defer close(r.done)
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		for r.reaped == r.queued && !r.closed {
			r.cond.Wait()
		}
		if r.reaped == r.queued {
			return // closed with nothing left
		}
		for !r.urgentLocked() {
			quiet, age := time.Since(r.last), time.Since(r.oldest)
			if quiet >= Lull || age >= MaxAge {
				break
			}
			r.mu.Unlock()
			t := time.NewTimer(min(Lull-quiet, MaxAge-age))
			select {
			case <-t.C:
			case <-r.kick:
				t.Stop()
			}
			r.mu.Lock()
		}
		// Links queued after this snapshot may go in the same request;
		// the next round's delete then finds nothing, which is fine.
		target, from, del, failed := r.queued, r.reaped, r.del, r.failed
		r.taken = target
		r.mu.Unlock()
		err := del()
		if err != nil && failed != nil {
			failed(target-from, err)
		}
		r.mu.Lock()
		r.lastErr = err
		r.reaped = target
		r.cond.Broadcast()
		if err != nil && r.closed {
			return // Close reports it; the links stay in the group
		}
	}
}
