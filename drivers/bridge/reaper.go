package bridge

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/drivers/internal/linkreap"
	"github.com/opencnm/libnetwork/internal/netnsutil"
)

// ReapGroup is the interface group ("cnm" in ASCII) that marks veths left
// by Leave and waiting to be deleted. Nothing else in the host namespace is
// expected to use it: a group delete removes every link in it.
const ReapGroup = 0x636e6d

// reaper deletes the veths of left endpoints in the background.
//
// Deleting a network device costs the kernel about 20 ms (it waits for RCU
// callbacks before freeing the device, holding the rtnl lock), which alone
// would blow a container teardown budget of a few ms. So Leave only moves
// the host end into ReapGroup, and the reaper deletes the whole group with
// one request, in batches (linkreap's lull and age: a burst of leaves does
// not keep the rtnl lock taken): one 20 ms wait per batch, not per
// endpoint, and never on the caller's path. A sandbox namespace destroyed
// meanwhile takes its veth with it; the reaper then finds less or nothing
// to delete, which is fine.
//
// The host end is not taken down: the container's end is detached (down)
// by the controller before the driver's Leave, or goes with its namespace,
// and without carrier the bridge forwards nothing to the port. Taking it
// down as well cost ~0.55 ms per Leave (the bridge reworks its port state)
// out of ~1.35 ms.
type reaper struct {
	nl    *netlink.Handle   // own handle: a slow delete must not hold the driver's socket
	sock  *nl.NetlinkSocket // raw socket in the host namespace, for the group delete
	sh    *nl.SocketHandle  // sock with its sequence counter; used by the group delete only
	sched *linkreap.Reaper  // runs deleteGroup
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
	r := &reaper{nl: h, sock: sock, sh: &nl.SocketHandle{Socket: sock}}
	r.sched = linkreap.New(r.deleteGroup, func(veths uint64, err error) {
		log.Warn("deleting retired veths failed", "veths", veths, "err", err)
	})
	return r, nil
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
	return r.sched.Queue(1), nil
}

// reapedUpTo returns the highest ticket known deleted: every link retired
// with a ticket up to it is gone (or its group delete failed, which flush
// reports).
func (r *reaper) reapedUpTo() uint64 { return r.sched.ReapedUpTo() }

// flush waits until every link retired before the call is deleted.
func (r *reaper) flush() error { return r.sched.Flush() }

// close deletes what is queued, stops the reaper and releases the sockets.
func (r *reaper) close() {
	_ = r.sched.Close() // a failure was logged; CollectGarbage deletes what stays in ReapGroup
	r.sock.Close()
	r.nl.Close()
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
