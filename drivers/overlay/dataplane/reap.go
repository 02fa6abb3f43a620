package dataplane

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// reapGroup is the device group of the bridge ends Detach cut off and
// left for the reaper ("ovr"); it differs from linkGroup so that the
// reaper's group delete takes only them. Adopt and RemoveLeftover know
// it: a crash may leave links in it.
const reapGroup = 0x6f7672

// The reaper (linkreap, over groupDelete of reapGroup) deletes, in the
// background and in batches, the links a network's Detach put in
// reapGroup. Until then they are cut off: the bridge end is down, so the
// bridge forwards nothing to it and the veth drops what the container
// sends. Their names stay taken until the delete: Attach flushes the
// reaper when a name collides.

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
