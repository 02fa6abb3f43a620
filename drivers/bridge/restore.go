package bridge

import (
	"errors"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// Tags written as link aliases: every bridge and host-side veth the driver
// makes names its network or endpoint, so a restarted controller tells its
// own leftovers from anything else in the host namespace. The ID follows
// verbatim, so tags of distinct IDs differ; a valid ID (names.ID: at most
// 64 printable bytes) always fits the kernel's 255-byte alias.
const (
	tagNetwork  = "opencnm:net:"
	tagEndpoint = "opencnm:ep:"
)

// BridgeGroup is the interface group ("cnn") every bridge the driver makes
// is created in; an untagged bridge in it was cut off between creation and
// tagging, and belongs to nobody.
const BridgeGroup = 0x636e6e

func networkTag(nid string) string  { return tagNetwork + nid }
func endpointTag(eid string) string { return tagEndpoint + eid }

// RestoreJoin takes back a join made before a controller restart: it finds
// the endpoint's veth by its tag and records it, touching nothing else.
func (d *Driver) RestoreJoin(req driverapi.JoinRequest, res driverapi.JoinResult) error {
	d.mu.Lock()
	n, err := d.readyNetworkLocked(req.NetworkID)
	var ep *endpoint
	if err == nil {
		if ep = n.endpoints[req.EndpointID]; ep == nil {
			err = driverapi.ErrNoEndpoint(req.EndpointID)
		}
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	// The container end names its peer: one lookup, where listing every
	// host link per join made restoring 1,000 joins take ~40 s.
	if l := d.peerOf(req.SandboxKey, res.DstName); l != nil && d.isLiveVeth(l, req.EndpointID) {
		return d.restoredJoin(n, ep, l)
	}
	links, err := d.nl.LinkList()
	if err != nil {
		return types.InternalErrorf("listing links to restore bridge endpoint %s: %w", req.EndpointID, err)
	}
	for _, l := range links {
		// A veth in ReapGroup is a retired one (a Leave whose deletion a
		// crash cut short) still carrying the tag: never the live join.
		if d.isLiveVeth(l, req.EndpointID) {
			return d.restoredJoin(n, ep, l)
		}
	}
	return types.NotFoundErrorf("restoring bridge endpoint %s: its veth is gone", req.EndpointID)
}

// restoredJoin records the veth l of a join taken back, counts its port
// and programs the port's neighbour settings again: idempotent, and a
// crash may have come between the join's veth and its neighbour entries.
func (d *Driver) restoredJoin(n *network, ep *endpoint, l netlink.Link) error {
	d.mu.Lock()
	if ep.hostIfIndex == 0 {
		n.ports.inUse++
	}
	ep.hostIfName, ep.hostIfIndex = l.Attrs().Name, l.Attrs().Index
	c, brIndex, nb := n.cfg, n.bridgeIndex, ep.neighbours()
	d.mu.Unlock()
	if err := d.programPort(c, brIndex, l.Attrs().Index, nb); err != nil {
		return types.Wrapf(err, "restoring bridge endpoint %s", ep.id)
	}
	return nil
}

// peerOf returns the host end of the veth whose container end is dstName
// in the namespace at key, or nil if that cannot be found that way.
func (d *Driver) peerOf(key, dstName string) netlink.Link {
	if key == "" || dstName == "" {
		return nil
	}
	ns, err := netnsutil.Open(key)
	if err != nil {
		return nil
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		return nil
	}
	defer h.Close()
	l, err := h.LinkByName(dstName)
	if err != nil || l.Attrs().ParentIndex == 0 {
		return nil
	}
	peer, err := d.nl.LinkByIndex(l.Attrs().ParentIndex)
	if err != nil {
		return nil
	}
	return peer
}

// isLiveVeth reports whether l is the veth a join of endpoint eid made
// and a Leave has not retired.
func (d *Driver) isLiveVeth(l netlink.Link, eid string) bool {
	_, ok := l.(*netlink.Veth)
	return ok && l.Attrs().Alias == endpointTag(eid) && l.Attrs().Group != ReapGroup
}

// CollectGarbage deletes bridges and veths tagged with a network or
// endpoint that is gone (leftovers of a crash), veths retired by a Leave
// that a crash kept the reaper from deleting, and the firewall rules of
// networks and endpoints that are gone. The caller makes sure no join is
// in progress.
func (d *Driver) CollectGarbage(liveNetworks, joinedEndpoints map[string]bool) error {
	links, err := d.nl.LinkList()
	if err != nil {
		return types.InternalErrorf("listing links for garbage collection: %w", err)
	}
	// The veth each joined endpoint uses; any other veth with its tag is
	// an old one (retired, or left by an earlier crash).
	inUse := map[string]int{}
	// Per ready network, the addresses whose neighbour entries are live.
	type bridgeNeighbours struct {
		c       *networkConfig
		brIndex int
		keep    map[string]bool
	}
	var bridges []bridgeNeighbours
	d.mu.Lock()
	for _, n := range d.networks {
		bn := bridgeNeighbours{c: n.cfg, brIndex: n.bridgeIndex, keep: map[string]bool{}}
		for id, ep := range n.endpoints {
			if ep.hostIfIndex != 0 {
				inUse[id] = ep.hostIfIndex
			}
			if ep.hostIfIndex != 0 || ep.busy {
				for _, ip := range ep.neighbours().ips {
					bn.keep[ip.String()] = true
				}
			}
		}
		if !n.creating && !n.deleting && n.bridgeIndex != 0 {
			bridges = append(bridges, bn)
		}
	}
	d.mu.Unlock()
	var errs []error
	for _, b := range bridges {
		errs = append(errs, d.pruneNeighbours(b.c, b.brIndex, b.keep))
	}
	for _, l := range links {
		alias := l.Attrs().Alias
		var stale bool
		switch {
		case alias == "" && l.Attrs().Group == BridgeGroup:
			_, isBridge := l.(*netlink.Bridge)
			stale = isBridge
		case strings.HasPrefix(alias, tagNetwork):
			stale = !liveNetworks[strings.TrimPrefix(alias, tagNetwork)]
		case strings.HasPrefix(alias, tagEndpoint):
			id := strings.TrimPrefix(alias, tagEndpoint)
			idx, known := inUse[id]
			stale = !joinedEndpoints[id] || l.Attrs().Group == ReapGroup || (known && idx != l.Attrs().Index)
		}
		if stale {
			errs = append(errs, ignoreGone(d.nl.LinkDel(l)))
		}
	}
	if gc, ok := d.fw.(interface{ pruneUnclaimed() error }); ok {
		errs = append(errs, gc.pruneUnclaimed())
	}
	return errors.Join(errs...)
}

// AbandonNetwork removes what a CreateNetwork cut short by a crash may have
// left of network req.NetworkID, whose creation the controller is rolling
// back. GC finds a bridge by its tag, but a crash between creating the
// bridge and tagging it leaves one without: such a bridge is deleted only
// when it carries the name the driver derives from this network's own ID
// (never a bridge the user named, which may be theirs) and has no ports.
// A network this driver holds is rolled back by deleting it, so that
// creating it again starts clean.
func (d *Driver) AbandonNetwork(req driverapi.CreateNetworkRequest) error {
	d.mu.Lock()
	_, held := d.networks[req.NetworkID]
	d.mu.Unlock()
	if held {
		return d.DeleteNetwork(req.NetworkID)
	}
	c, err := parseNetworkOptions(req.NetworkID, req.Options)
	if err != nil {
		return err
	}
	l, err := d.nl.LinkByName(c.BridgeName)
	if isLinkNotFound(err) {
		return nil
	}
	if err != nil {
		return types.InternalErrorf("looking up bridge %s of abandoned network %s: %w", c.BridgeName, req.NetworkID, err)
	}
	if _, ok := l.(*netlink.Bridge); !ok {
		return nil
	}
	alias := l.Attrs().Alias
	derived := c.BridgeName == "br-"+req.NetworkID[:min(12, len(req.NetworkID))]
	if alias != networkTag(req.NetworkID) && !(alias == "" && derived) {
		return nil
	}
	if ports, err := d.nl.LinkList(); err == nil {
		for _, p := range ports {
			if p.Attrs().MasterIndex == l.Attrs().Index {
				return nil
			}
		}
	}
	return ignoreGone(d.nl.LinkDel(l))
}
