package dataplane

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// reapGroup is the device group of the bridge ends Detach cut off and
// left for the reaper ("ovr"); it differs from linkGroup so that the
// reaper's group delete takes only them. Adopt and RemoveLeftover know
// it: a crash may leave links in it.
const reapGroup = 0x6f7672

// Deleting a link makes the kernel wait for RCU (~20 ms) under the rtnl
// lock, which stalls every other link change on the host meanwhile, so
// the reaper deletes in batches: once no link was retired for reapLull,
// but never keeping one longer than reapMaxAge, and at once for a waiter
// in flush.
const (
	reapLull   = 30 * time.Millisecond
	reapMaxAge = 500 * time.Millisecond
)

// reaper deletes, in the background, the links a network's Detach put in
// reapGroup. Until then they are cut off: the bridge end is down, so the
// bridge forwards nothing to it and the veth drops what the container
// sends. Their names stay taken until the delete: Attach flushes the
// reaper when a name collides.
type reaper struct {
	// mu guards every field but done.
	mu      sync.Mutex
	del     func() error // deletes every link in reapGroup
	cond    *sync.Cond   // signalled when queued, reaped, waiters or closed change
	queued  uint64       // links handed over so far
	reaped  uint64       // of those, how many a finished group delete covered
	last    time.Time    // when the latest link was handed over
	oldest  time.Time    // when the oldest link not covered by taken was handed over
	taken   uint64       // queued when the running group delete began
	waiters int          // callers blocked in flush
	lastErr error        // the latest group delete's failure; nil once one succeeds
	closed  bool
	kick    chan struct{} // wakes the loop from its lull for a flush or close; not guarded
	done    chan struct{}
}

func newReaper(del func() error) *reaper {
	r := &reaper{del: del, kick: make(chan struct{}, 1), done: make(chan struct{})}
	r.cond = sync.NewCond(&r.mu)
	go r.loop()
	return r
}

// queue counts k more links in reapGroup.
func (r *reaper) queue(k int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	// The first link the running delete may miss starts the next
	// batch's age.
	if r.taken == r.queued {
		r.oldest = now
	}
	r.queued += uint64(k)
	r.last = now
	r.cond.Broadcast()
}

// wake ends the loop's lull early.
func (r *reaper) wake() {
	select {
	case r.kick <- struct{}{}:
	default: // a wake is pending already
	}
}

// pending reports whether links wait to be deleted.
func (r *reaper) pending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reaped < r.queued
}

// flush waits until every link queued before the call is deleted and
// returns the failure of the group delete that covered them, if any.
func (r *reaper) flush() error {
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

// close deletes what is queued, stops the loop and returns the last
// delete's failure. Closing twice is harmless.
func (r *reaper) close() error {
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

func (r *reaper) loop() {
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
		for !r.closed && r.waiters == 0 {
			quiet, age := time.Since(r.last), time.Since(r.oldest)
			if quiet >= reapLull || age >= reapMaxAge {
				break
			}
			r.mu.Unlock()
			t := time.NewTimer(min(reapLull-quiet, reapMaxAge-age))
			select {
			case <-t.C:
			case <-r.kick:
				t.Stop()
			}
			r.mu.Lock()
		}
		// Links queued after this snapshot may go in the same request;
		// the next round then finds nothing, which is fine.
		target, del := r.queued, r.del
		r.taken = target
		r.mu.Unlock()
		err := del()
		r.mu.Lock()
		r.lastErr = err
		r.reaped = target
		r.cond.Broadcast()
		if err != nil && r.closed {
			return // close reports it; the links stay in reapGroup for a retry
		}
	}
}

// groupDelete deletes every link of group in sock's namespace with one
// RTM_DELLINK (the netlink library deletes by index only). An empty
// group is success.
func groupDelete(sock *nl.NetlinkSocket, group uint32) error {
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(group)))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting the links of group %#x: %w", group, err)
	}
	return nil
}

// cutOff takes the link called name down and puts it in reapGroup, with
// one request: down, the bridge disables its port and the veth drops
// what its peer sends.
func cutOff(sock *nl.NetlinkSocket, name string) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: sock}}
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Change = unix.IFF_UP // Flags 0: down
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(reapGroup)))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("cutting off %s: %w", name, err)
	}
	return nil
}
