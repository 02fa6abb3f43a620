package portmapper

import (
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// Flow selects connection-tracking entries of one published port: those
// whose original direction went to HostPort (on HostIP when specific).
type Flow struct {
	Proto    types.Protocol
	HostIP   net.IP
	HostPort uint16
	// KeepTo, when set, spares entries already NATed to this container
	// address: the flush after a map only targets flows that predate the
	// DNAT, and it runs in the background, after new flows may have begun.
	KeepTo net.IP
}

// keepFilter matches what its filter does, except flows whose reply comes
// from keep (so already DNATed there).
type keepFilter struct {
	f    *netlink.ConntrackFilter
	keep net.IP
}

func (k keepFilter) MatchConntrackFlow(flow *netlink.ConntrackFlow) bool {
	return k.f.MatchConntrackFlow(flow) && !flow.Reverse.SrcIP.Equal(k.keep)
}

// Conntrack deletes connection-tracking entries. Without this, a UDP
// "connection" made before a port was unmapped keeps being NATed to the
// old container for as long as packets keep coming.
type Conntrack interface {
	DeleteFlows(flows []Flow) error
}

// NetlinkConntrack deletes entries through a netlink handle opened in the
// host namespace (what `conntrack -D -p udp --orig-port-dst PORT` does).
type NetlinkConntrack struct {
	Handle *netlink.Handle
}

// NewNetlinkConntrack opens a netlink handle in ns; Close releases it.
func NewNetlinkConntrack(ns *netnsutil.NS) (*NetlinkConntrack, error) {
	h, err := netlink.NewHandleAt(ns.Handle(), unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, types.InternalErrorf("opening conntrack netlink handle in %s: %w", ns.Path(), err)
	}
	return &NetlinkConntrack{Handle: h}, nil
}

// Close closes the handle.
func (c *NetlinkConntrack) Close() error {
	c.Handle.Close()
	return nil
}

// DeleteFlows deletes the entries of flows, with one table walk per family.
func (c *NetlinkConntrack) DeleteFlows(flows []Flow) error {
	byFam := map[netlink.InetFamily][]netlink.CustomConntrackFilter{}
	for _, fl := range flows {
		fam := netlink.InetFamily(unix.AF_INET)
		if fl.HostIP != nil && fl.HostIP.To4() == nil {
			fam = unix.AF_INET6
		}
		f := &netlink.ConntrackFilter{}
		if err := f.AddProtocol(uint8(fl.Proto)); err != nil {
			return types.InternalErrorf("building conntrack filter for %v: %w", fl, err)
		}
		if err := f.AddPort(netlink.ConntrackOrigDstPort, fl.HostPort); err != nil {
			return types.InternalErrorf("building conntrack filter for %v: %w", fl, err)
		}
		if fl.HostIP != nil && !fl.HostIP.IsUnspecified() {
			if err := f.AddIP(netlink.ConntrackOrigDstIP, fl.HostIP); err != nil {
				return types.InternalErrorf("building conntrack filter for %v: %w", fl, err)
			}
		}
		if fl.KeepTo != nil {
			byFam[fam] = append(byFam[fam], keepFilter{f: f, keep: fl.KeepTo})
			continue
		}
		byFam[fam] = append(byFam[fam], f)
	}
	for fam, filters := range byFam {
		if _, err := c.Handle.ConntrackDeleteFilters(netlink.ConntrackTable, fam, filters...); err != nil {
			return types.InternalErrorf("deleting conntrack entries: %w", err)
		}
	}
	return nil
}
