package bridge

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// ReapGroup is the interface group ("cnm" in ASCII) that marks veths left
// by Leave and waiting to be deleted. Nothing else in the host namespace is
// expected to use it: a group delete removes every link in it.
const ReapGroup = 0x636e6d

// A group delete holds the kernel's rtnl lock for its ~20 ms, stalling
// every link change meanwhile, the next container's join or leave
// included. So during a burst of leaves the reaper waits for a lull
// (reapLull with no new retirement), but never keeps a link longer than
// reapMaxAge, and deletes at once when someone waits in flush.
const (
	reapLull   = 30 * time.Millisecond
	reapMaxAge = 500 * time.Millisecond
)

// reaper deletes the veths of left endpoints in the background.
//
// Deleting a network device costs the kernel about 20 ms (it waits for RCU
// callbacks before freeing the device), which alone would blow a container
// teardown budget of a few ms. So Leave only moves the host end into
// ReapGroup, and the reaper
// deletes the whole group with one request: one 20 ms wait per batch, not
// per endpoint, and never on the caller's path. A sandbox namespace
// destroyed meanwhile takes its veth with it; the reaper then finds less
// or nothing to delete, which is fine.
//
// The host end is not taken down: the container's end is detached (down)
// by the controller before the driver's Leave, or goes with its namespace,
// and without carrier the bridge forwards nothing to the port. Taking it
// down as well cost ~0.55 ms per Leave (the bridge reworks its port state)
// out of ~1.35 ms.
type reaper struct {
	nl   *netlink.Handle   // own handle: a slow delete must not hold the driver's socket
	sock *nl.NetlinkSocket // raw socket in the host namespace, for the group delete
	sh   *nl.SocketHandle  // sock with its sequence counter; used by loop only
	del  func() error      // deletes every link in ReapGroup: deleteGroup but in tests
	log  *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond // signalled when queued, reaped or closed change
	queued  uint64     // links handed over so far (guarded by mu)
	reaped  uint64     // of those, how many are known deleted (guarded by mu)
	taken   uint64     // queued when the running group delete began; reaped if none runs (guarded by mu)
	last    time.Time  // when the latest link was handed over (guarded by mu)
	oldest  time.Time  // when the oldest link not covered by taken was handed over (guarded by mu)
	waiters int        // callers blocked in flush (guarded by mu)
	lastErr error      // last group delete failure, reported by flush (guarded by mu)
	closed  bool       // guarded by mu
	done    chan struct{}
}

func newReaper(host *netnsutil.NS, log *slog.Logger) (*reaper, error) {
	h, err := netlink.NewHandleAt(host.Handle())
	if err != nil {
		return nil, fmt.Errorf("netlink handle for veth reaper: %w", err)
	}
	sock, err := rawSocket(host)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("netlink socket for veth reaper: %w", err)
	}
	r := &reaper{nl: h, sock: sock, sh: &nl.SocketHandle{Socket: sock}, log: log, done: make(chan struct{})}
	r.del = r.deleteGroup
	r.start()
	return r, nil
}

func (r *reaper) start() {
	r.cond = sync.NewCond(&r.mu)
	go r.loop()
}

// rawSocket opens a route netlink socket in host, for requests the
// netlink library has no call for. A netlink socket belongs to the
// namespace it was created in.
func rawSocket(host *netnsutil.NS) (*nl.NetlinkSocket, error) {
	var sock *nl.NetlinkSocket
	err := host.Do(func() error {
		var err error
		sock, err = nl.Subscribe(unix.NETLINK_ROUTE)
		return err
	})
	return sock, err
}

// retire queues the link with index for deletion and returns its ticket:
// the link is known deleted once reapedUpTo reaches it. A link already
// gone is not an error; its ticket is 0.
func (r *reaper) retire(index int) (ticket uint64, err error) {
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: index}}
	if err := r.nl.LinkSetGroup(l, ReapGroup); err != nil {
		return 0, ignoreGone(err)
	}
	return r.queue(), nil
}

// queue counts one more link in ReapGroup and returns its ticket.
func (r *reaper) queue() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	// The first link the running delete (if any) may miss starts the
	// next batch's age: measured from an older one, the next delete
	// would follow the running one at once, and during a burst of leaves
	// the reaper would hold the rtnl lock nearly all the time.
	if r.taken == r.queued {
		r.oldest = now
	}
	r.queued++
	r.last = now
	r.cond.Broadcast()
	return r.queued
}

// reapedUpTo returns the highest ticket known deleted: every link retired
// with a ticket up to it is gone (or its group delete failed, which flush
// reports).
func (r *reaper) reapedUpTo() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reaped
}

// flush waits until every link retired before the call is deleted.
func (r *reaper) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	target := r.queued
	r.waiters++
	r.cond.Broadcast()
	for r.reaped < target && !r.closed {
		r.cond.Wait()
	}
	r.waiters--
	return r.lastErr
}

// close deletes what is queued, stops the loop and releases the sockets.
func (r *reaper) close() {
	r.mu.Lock()
	r.closed = true
	r.cond.Broadcast()
	r.mu.Unlock()
	<-r.done
	if r.sock != nil {
		r.sock.Close()
		r.nl.Close()
	}
}

func (r *reaper) loop() {
	defer close(r.done)
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		for r.reaped == r.queued && !r.closed {
			r.cond.Wait()
		}
		if r.reaped == r.queued && r.closed {
			return
		}
		for !r.closed && r.waiters == 0 {
			quiet, age := time.Since(r.last), time.Since(r.oldest)
			if quiet >= reapLull || age >= reapMaxAge {
				break
			}
			r.mu.Unlock()
			time.Sleep(min(reapLull-quiet, reapMaxAge-age))
			r.mu.Lock()
		}
		// Links retired after this snapshot may go in the same request;
		// the next round's delete then finds nothing, which is fine.
		target, from := r.queued, r.reaped
		r.taken = target
		r.mu.Unlock()
		err := r.del()
		if err != nil {
			r.log.Warn("deleting retired veths failed", "veths", target-from, "err", err)
		}
		r.mu.Lock()
		r.lastErr = err
		r.reaped = target
		r.cond.Broadcast()
	}
}

// deleteGroup deletes every link in ReapGroup with one RTM_DELLINK. The
// netlink library only deletes by index, hence the raw request.
func (r *reaper) deleteGroup() error {
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: r.sh}
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(ReapGroup)))
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	if err == nil || errors.Is(err, unix.ENODEV) {
		return nil // ENODEV: the group was empty
	}
	return fmt.Errorf("deleting retired veths: %w", err)
}
