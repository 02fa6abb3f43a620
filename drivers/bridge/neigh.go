package bridge

import (
	"errors"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/types"
)

// Neighbour resolution on a bridge must not depend on flooding every port.
// A broadcast ARP request is cloned to every other port of the bridge, and
// each veth queues its copy on the receiving CPU's backlog, which holds
// net.core.netdev_max_backlog (1,000) packets: on a bridge with ~1,000
// ports the flood overflows it and the gateway's reply, queued behind the
// copies, is dropped. The container never learns the gateway's MAC.
//
// The driver knows every address and MAC on its bridges, so at join it
// programs, in O(1) requests and without any host-wide setting:
//   - proxy ARP on the port (IFLA_BRPORT_PROXYARP): the bridge floods
//     nothing to the port (no broadcast, multicast or unknown unicast:
//     containers only ever need the gateway and each other, both known),
//     and answers an ARP request arriving on it for an address the host
//     namespace has a neighbour entry for, with the owner's MAC. A request
//     for the gateway reaches the bridge's own ARP, which answers as usual;
//   - a static FDB entry of the container's MAC on its port, which the
//     bridge needs to answer for it (a silent container is never learnt,
//     and learnt entries age out);
//   - permanent neighbour entries of the container's addresses on the
//     bridge, which the proxy answers from and the host uses to reach the
//     container without resolving.
//
// Proxy ARP on the port also stops the multicast neighbour solicitations
// containers resolve each other's IPv6 addresses with, so on a network
// with IPv6 the bridge answers those itself: proxy NDP on the bridge
// (per-interface sysctls, setup.go) and a proxy entry of each container's
// IPv6 address. Its answer carries the bridge's MAC, so the first packets
// between two containers go through the host's forwarding, which then
// redirects the sender to the peer's own MAC (an ICMPv6 redirect, which
// hosts accept by default). Proxy NDP needs a forwarding interface with
// IPv6: with the driver's forwarding off, or on a bridge isolated in IPv6
// (gateway mode "isolated"), IPv6 ports do not proxy and keep flooding.
// Solicitations for a container's link-local address are not answered.
//
// The FDB entry goes with the port when the reaper deletes the veth; the
// neighbour entries are deleted by Leave and DeleteEndpoint, with the
// bridge (or by DeleteNetwork on an adopted one), or by CollectGarbage
// after a crash.

// neighbours are the addresses of one endpoint the host namespace holds
// permanent neighbour entries for.
type neighbours struct {
	mac net.HardwareAddr
	ips []net.IP
	v6  net.IP // the IPv6 address among ips, nil if none
}

func (ep *endpoint) neighbours() neighbours {
	nb := neighbours{mac: ep.mac}
	if ep.addr != nil {
		nb.ips = append(nb.ips, ep.addr.IP)
	}
	if ep.addrv6 != nil {
		nb.ips = append(nb.ips, ep.addrv6.IP)
		nb.v6 = ep.addrv6.IP
	}
	return nb
}

// proxiesNeighbours reports whether the ports of network c proxy ARP. On
// a network with IPv6 that also needs the bridge to answer solicitations
// for the containers' IPv6 addresses (proxy NDP), which the kernel does
// only on an interface that forwards, and that has IPv6 at all: without
// the driver's forwarding, or with the bridge isolated in IPv6, such ports
// keep flooding.
func (d *Driver) proxiesNeighbours(c *networkConfig) bool {
	return !c.EnableIPv6 || d.cfg.EnableIPForwarding && !c.isolated(true)
}

// programPort sets the bridge port flags of the host end at index port
// (proxy ARP, hairpin) in one request, and the FDB and neighbour entries for nb. Every part is
// idempotent.
func (d *Driver) programPort(c *networkConfig, brIndex, port int, nb neighbours) error {
	proxy := d.proxiesNeighbours(c)
	if err := d.setPortFlags(port, true, proxy); err != nil {
		return types.InternalErrorf("setting bridge port flags of veth %d on %s: %w", port, c.BridgeName, err)
	}
	if err := d.step("port"); err != nil {
		return err
	}
	fdb := &netlink.Neigh{LinkIndex: port, Family: unix.AF_BRIDGE, Flags: netlink.NTF_MASTER,
		State: netlink.NUD_NOARP, HardwareAddr: nb.mac}
	if err := d.nl.NeighSet(fdb); err != nil {
		return types.InternalErrorf("adding fdb entry %s on %s: %w", nb.mac, c.BridgeName, err)
	}
	for _, ip := range nb.ips {
		n := &netlink.Neigh{LinkIndex: brIndex, IP: ip, HardwareAddr: nb.mac, State: netlink.NUD_PERMANENT}
		if err := d.nl.NeighSet(n); err != nil {
			return types.InternalErrorf("adding neighbour %s of %s on %s: %w", ip, nb.mac, c.BridgeName, err)
		}
	}
	if proxy && c.EnableIPv6 && nb.v6 != nil {
		p := &netlink.Neigh{LinkIndex: brIndex, IP: nb.v6, Flags: netlink.NTF_PROXY}
		if err := d.nl.NeighSet(p); err != nil {
			return types.InternalErrorf("adding proxy neighbour %s on %s: %w", nb.v6, c.BridgeName, err)
		}
	}
	return d.step("neighbours")
}

// setPortFlags sets IFLA_BRPORT_PROXYARP and IFLA_BRPORT_MODE (hairpin) of
// a bridge port in one RTM_SETLINK: the netlink library sends one request
// per flag.
func (d *Driver) setPortFlags(port int, hairpin, proxyARP bool) error {
	if !hairpin && !proxyARP {
		return nil
	}
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_BRIDGE)
	msg.Index = int32(port)
	req.AddData(msg)
	pi := nl.NewRtAttr(unix.IFLA_PROTINFO|unix.NLA_F_NESTED, nil)
	if proxyARP {
		pi.AddRtAttr(nl.IFLA_BRPORT_PROXYARP, []byte{1})
	}
	if hairpin {
		pi.AddRtAttr(nl.IFLA_BRPORT_MODE, []byte{1})
	}
	req.AddData(pi)
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: d.raw}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// portIPv6Off turns IPv6 off on a host end before it comes up. A bridge
// port needs no address of its own, and with IPv6 each host end would add
// routes to the host namespace's IPv6 table (link-local, local, multicast)
// that the kernel walks whole on every link change of any interface
// without carrier (fib6_ifdown): two of those per join and leave made
// their cost grow with the number of ports. The write goes through the
// open conf directory: resolved from /proc/sys it would cost O(sandboxes).
// Skipped when the kernel has no IPv6.
func (d *Driver) portIPv6Off(name string) error {
	if d.ipv6Conf == nil {
		return nil
	}
	err := d.ipv6Conf.Write(name+"/disable_ipv6", "1")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// enslaveUp makes the link at index a port of the bridge at brIndex and
// brings it up, in one RTM_SETLINK (the netlink library takes two).
func (d *Driver) enslaveUp(index, brIndex int) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_UNSPEC)
	msg.Index = int32(index)
	msg.Flags = unix.IFF_UP
	msg.Change = unix.IFF_UP
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.IFLA_MASTER, nl.Uint32Attr(uint32(brIndex))))
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: d.raw}
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// forgetNeighbours deletes the host's neighbour entries of ips on the
// bridge, and the proxy entries of its IPv6 ones; entries already gone
// (or the bridge) are not an error.
func (d *Driver) forgetNeighbours(c *networkConfig, brIndex int, ips []net.IP) error {
	var errs []error
	del := func(n *netlink.Neigh) {
		err := d.nl.NeighDel(n)
		if err != nil && !errors.Is(err, unix.ENOENT) && !isLinkNotFound(err) {
			errs = append(errs, types.InternalErrorf("deleting neighbour %s on %s: %w", n.IP, c.BridgeName, err))
		}
	}
	for _, ip := range ips {
		del(&netlink.Neigh{LinkIndex: brIndex, IP: ip})
		if ip.To4() == nil && c.EnableIPv6 {
			del(&netlink.Neigh{LinkIndex: brIndex, IP: ip, Flags: netlink.NTF_PROXY})
		}
	}
	return errors.Join(errs...)
}

// pruneNeighbours deletes the permanent neighbour entries on the bridge
// of network n that lie in its subnets and belong to no joined endpoint:
// what a crash between a join's entries and its record, or in a leave,
// left behind. Called by CollectGarbage.
func (d *Driver) pruneNeighbours(c *networkConfig, brIndex int, keep map[string]bool) error {
	var errs []error
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6, -netlink.FAMILY_V6} {
		var list []netlink.Neigh
		var err error
		if family < 0 {
			list, err = d.nl.NeighProxyList(brIndex, -family)
		} else {
			list, err = d.nl.NeighList(brIndex, family)
		}
		if err != nil {
			if isLinkNotFound(err) {
				return nil
			}
			return types.InternalErrorf("listing neighbours of %s: %w", c.BridgeName, err)
		}
		for _, n := range list {
			proxy := n.Flags&netlink.NTF_PROXY != 0
			if !proxy && n.State&netlink.NUD_PERMANENT == 0 || n.IP == nil || keep[n.IP.String()] {
				continue
			}
			if !(c.PoolIPv4 != nil && c.PoolIPv4.Contains(n.IP)) && !(c.PoolIPv6 != nil && c.PoolIPv6.Contains(n.IP)) {
				continue
			}
			errs = append(errs, d.forgetNeighbours(c, brIndex, []net.IP{n.IP}))
		}
	}
	return errors.Join(errs...)
}
