package bridge

import (
	"errors"
	"strings"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// Tags written as link aliases: every bridge and host-side veth the driver
// makes names its network or endpoint, so a restarted controller tells its
// own leftovers from anything else in the host namespace.
const (
	tagNetwork  = "opencnm:net:"
	tagEndpoint = "opencnm:ep:"
)

func networkTag(nid string) string  { return tagNetwork + nid }
func endpointTag(eid string) string { return tagEndpoint + eid }

// RestoreJoin takes back a join made before a controller restart: it finds
// the endpoint's veth by its tag and records it, touching nothing else.
func (d *Driver) RestoreJoin(req driverapi.JoinRequest, res driverapi.JoinResult) error {
	links, err := d.nl.LinkList()
	if err != nil {
		return types.InternalErrorf("listing links to restore bridge endpoint %s: %w", req.EndpointID, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.readyNetworkLocked(req.NetworkID)
	if err != nil {
		return err
	}
	ep := n.endpoints[req.EndpointID]
	if ep == nil {
		return driverapi.ErrNoEndpoint(req.EndpointID)
	}
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); ok && l.Attrs().Alias == endpointTag(req.EndpointID) {
			ep.hostIfName, ep.hostIfIndex = l.Attrs().Name, l.Attrs().Index
			return nil
		}
	}
	return types.NotFoundErrorf("restoring bridge endpoint %s: its veth is gone", req.EndpointID)
}

// CollectGarbage deletes bridges and veths tagged with a network or
// endpoint that is gone (leftovers of a crash), and the firewall rules of
// networks and endpoints that are gone.
func (d *Driver) CollectGarbage(liveNetworks, joinedEndpoints map[string]bool) error {
	links, err := d.nl.LinkList()
	if err != nil {
		return types.InternalErrorf("listing links for garbage collection: %w", err)
	}
	var errs []error
	for _, l := range links {
		alias := l.Attrs().Alias
		var stale bool
		switch {
		case strings.HasPrefix(alias, tagNetwork):
			stale = !liveNetworks[strings.TrimPrefix(alias, tagNetwork)]
		case strings.HasPrefix(alias, tagEndpoint):
			stale = !joinedEndpoints[strings.TrimPrefix(alias, tagEndpoint)]
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
