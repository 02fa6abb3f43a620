package dataplane

import (
	"fmt"
	"time"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/drivers/internal/linkreap"
)

// A new endpoint is not reachable the moment its veth is up. The veth's
// carrier comes on when both ends are up, but the kernel acts on that
// from its link-watch work, asynchronously (tens of milliseconds under
// load): only then does the bridge enable the port (frames before are
// dropped). And an IPv6 address, even without duplicate address
// detection, gets its local route only from the kernel's address work,
// also asynchronous: packets to it before are dropped. So a peer's
// first packets to an endpoint whose Attach just returned could be lost,
// and Attach waits for both.

// brForwarding is BR_STATE_FORWARDING.
const brForwarding = 3

// readyWait bounds how long Attach waits; past it, Attach returns anyway
// and the endpoint becomes reachable when the kernel gets to it.
const readyWait = 2 * time.Second

func (n *Network) openRaw() error {
	return n.ns.Do(func() (err error) {
		n.raw, err = nl.Subscribe(unix.NETLINK_ROUTE)
		return err
	})
}

// openReaper opens the reaper's socket in ns and starts it.
func (n *Network) openReaper() error {
	err := n.ns.Do(func() (err error) {
		n.reapSock, err = nl.Subscribe(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return err
	}
	sock := n.reapSock
	n.reap = linkreap.New(func() error { return groupDelete(sock, reapGroup) }, nil)
	return nil
}

// waitUntil polls ready until it reports true or fails, or readyWait
// passes.
func waitUntil(ready func() (bool, error)) error {
	deadline := time.Now().Add(readyWait)
	pause := 100 * time.Microsecond
	for {
		ok, err := ready()
		if err != nil || ok || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// forwarding reports whether the bridge port at index forwards.
func (n *Network) forwarding(index int) (bool, error) {
	st, err := n.portState(index)
	return st == brForwarding, err
}

// portState reads IFLA_BRPORT_STATE of the port at index. Only the
// AF_BRIDGE link dump reports it; the dump is of the network's own
// namespace, so of its endpoints' ports.
func (n *Network) portState(index int) (int, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: n.raw}}
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		return 0, fmt.Errorf("reading bridge port state: %w", err)
	}
	for _, m := range msgs {
		ifi := nl.DeserializeIfInfomsg(m)
		if int(ifi.Index) != index {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[ifi.Len():])
		if err != nil {
			return 0, fmt.Errorf("reading bridge port state: %w", err)
		}
		for _, a := range attrs {
			if a.Attr.Type&^unix.NLA_F_NESTED != unix.IFLA_PROTINFO {
				continue
			}
			nested, err := nl.ParseRouteAttr(a.Value)
			if err != nil {
				return 0, fmt.Errorf("reading bridge port state: %w", err)
			}
			for _, b := range nested {
				if b.Attr.Type == nl.IFLA_BRPORT_STATE && len(b.Value) > 0 {
					return int(b.Value[0]), nil
				}
			}
		}
	}
	return 0, nil
}
