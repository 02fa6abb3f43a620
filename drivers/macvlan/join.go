package macvlan

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/internal/optval"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/types"
)

// Join makes the endpoint's macvlan link on the network's parent.
//
// With a SandboxKey the link is created directly inside that namespace,
// named req.IfaceName("eth"), with the endpoint's MAC and the network's
// MTU (the parent's when none was given): one netlink request from the
// host namespace, so the lower device is found there and the link is born
// in the sandbox. Without one (a sandbox whose key is set later) it is
// made in the host namespace and SrcName tells the sandbox to move it in.
// The sandbox gives it its addresses, brings it up and sets the routes:
// the gateway is the network's IPAM gateway (the LAN's router), none on an
// internal network.
func (d *Driver) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	what := "joining macvlan endpoint " + req.EndpointID
	if err := optval.NoPublishedPorts(what, NetworkType, noNAT, req.Options); err != nil {
		return nil, err
	}
	d.mu.Lock()
	n, ep, err := d.endpointLocked(req.NetworkID, req.EndpointID)
	if err == nil {
		switch {
		case ep.busy:
			err = types.ForbiddenErrorf("%s: a join or leave is in progress", what)
		case ep.ifIndex != 0:
			err = types.ForbiddenErrorf("%s: it is joined already", what)
		case n.cfg.Mode == ModePassthru && n.joinedLocked() > 0:
			err = types.ForbiddenErrorf("%s: parent %s already has its one passthru macvlan", what, n.cfg.Parent)
		case n.deleting:
			err = types.ForbiddenErrorf("%s: network %s is being deleted", what, n.cfg.ID)
		}
	}
	if err != nil {
		d.mu.Unlock()
		return nil, err
	}
	ep.busy = true
	c, parent, mac := n.cfg, n.parentIndex, ep.mac
	standIn := n.standIn
	d.mu.Unlock()

	if !standIn {
		// A user's parent may have been deleted and made again under its
		// name since CreateNetwork: the name is the parent, not the
		// ifindex it had then. The stand-in is the driver's own.
		if parent, err = d.currentParent(c); err != nil {
			d.mu.Lock()
			ep.busy = false
			d.mu.Unlock()
			return nil, err
		}
	}

	if d.reap.holds(mac.String()) {
		// A left link with this MAC still up on the parent would make
		// bringing the new one up fail (EADDRINUSE).
		_ = d.reap.flush()
	}

	key, index, res, err := d.attach(c, parent, mac, req)

	d.mu.Lock()
	defer d.mu.Unlock()
	ep.busy = false
	if err != nil {
		return nil, err
	}
	ep.sboxKey, ep.ifIndex = key, index
	return res, nil
}

// joinedLocked counts the network's joined endpoints, joins in flight
// included. Caller holds d.mu.
func (n *network) joinedLocked() int {
	k := 0
	for _, ep := range n.endpoints {
		if ep.ifIndex != 0 || ep.busy {
			k++
		}
	}
	return k
}

// attach does Join's kernel work, undoing all of it on failure. It
// returns where the link is (the sandbox key, "" for the host) and its
// ifindex there.
func (d *Driver) attach(c *networkConfig, parent int, mac []byte, req driverapi.JoinRequest) (key string, index int, _ *driverapi.JoinResult, err error) {
	what := "joining macvlan endpoint " + req.EndpointID
	attrs := netlink.NewLinkAttrs()
	attrs.ParentIndex = parent
	attrs.MTU = c.Mtu
	if c.Mode != ModePassthru {
		// A passthru macvlan takes its parent's MAC whatever it is given.
		attrs.HardwareAddr = mac
	}
	res := &driverapi.JoinResult{}
	var nl *netlink.Handle // where the link is; nil: the host's d.nl
	if req.SandboxKey != "" {
		sb, err := netnsutil.Open(req.SandboxKey)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", 0, nil, types.NotFoundErrorf("%s: sandbox namespace %s not found", what, req.SandboxKey)
			}
			return "", 0, nil, types.InternalErrorf("%s: %w", what, err)
		}
		defer sb.Close()
		if nl, err = netlink.NewHandleAt(sb.Handle()); err != nil {
			return "", 0, nil, types.InternalErrorf("%s: netlink handle in %s: %w", what, req.SandboxKey, err)
		}
		defer nl.Close()
		attrs.Name = containerIfacePrefix + "0"
		if req.IfaceName != nil {
			attrs.Name = req.IfaceName(containerIfacePrefix)
		}
		if err := names.Iface(attrs.Name); err != nil {
			return "", 0, nil, types.Wrapf(err, "%s", what)
		}
		attrs.Namespace = netlink.NsFd(sb.Fd())
		res.DstName = attrs.Name
		key = req.SandboxKey
	} else {
		attrs.Name = "mv" + randomHex(6)
		res.SrcName, res.DstPrefix = attrs.Name, containerIfacePrefix
	}
	err = d.nl.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: c.mode()})
	if errors.Is(err, unix.EEXIST) && nl != nil {
		// Most likely the link of a Leave from this sandbox that the
		// reaper has not deleted yet (a caller that did not rename it):
		// wait for it, try once more.
		_ = d.reap.flush()
		err = d.nl.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: c.mode()})
	}
	if err != nil {
		switch {
		case errors.Is(err, unix.EEXIST):
			return "", 0, nil, types.ForbiddenErrorf("%s: interface %s exists already: %w", what, attrs.Name, err)
		case errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENOENT):
			return "", 0, nil, types.NotFoundErrorf("%s: parent of network %s is gone: %w", what, c.ID, err)
		case errors.Is(err, unix.EBUSY):
			return "", 0, nil, types.ForbiddenErrorf("%s: parent of network %s is busy (a passthru macvlan, or one of another mode, is on it): %w", what, c.ID, err)
		}
		return "", 0, nil, types.InternalErrorf("%s: creating macvlan %s: %w", what, attrs.Name, err)
	}
	var l netlink.Link
	if nl != nil {
		l, err = nl.LinkByName(attrs.Name)
	} else {
		l, err = d.nl.LinkByName(attrs.Name)
	}
	if err != nil {
		// Untagged, nothing else would ever remove it: delete it by name.
		return "", 0, nil, errors.Join(types.InternalErrorf("%s: reading back macvlan %s: %w", what, attrs.Name, err),
			ignoreGone(d.linkDelByName(nl, attrs.Name)))
	}
	del := func() error { return ignoreGone(d.linkDel(nl, l)) }
	if err := d.linkSetAlias(nl, l, endpointTag(req.EndpointID)); err != nil {
		return "", 0, nil, errors.Join(types.InternalErrorf("%s: tagging macvlan %s: %w", what, attrs.Name, err), del())
	}
	if !c.Internal {
		if c.EnableIPv4 {
			res.Gateway = types.GetIPCopy(c.Gateway4)
		}
		if c.EnableIPv6 {
			res.GatewayIPv6 = types.GetIPCopy(c.Gateway6)
		}
	}
	return key, l.Attrs().Index, res, nil
}

// currentParent is the ifindex of the parent c names, now.
func (d *Driver) currentParent(c *networkConfig) (int, error) {
	what := "joining macvlan network " + c.ID
	l, err := d.nl.LinkByName(c.Parent)
	if isLinkNotFound(err) {
		return 0, types.NotFoundErrorf("%s: parent %s is gone: %w", what, c.Parent, err)
	}
	if err != nil {
		return 0, types.InternalErrorf("%s: looking up parent %s: %w", what, c.Parent, err)
	}
	return l.Attrs().Index, nil
}

// linkDelByName deletes the link called name where nl is (nil: the host),
// found by a dump rather than a lookup by name (which just failed).
func (d *Driver) linkDelByName(nl *netlink.Handle, name string) error {
	var h interface {
		LinkList() ([]netlink.Link, error)
		LinkDel(netlink.Link) error
	} = d.nl
	if nl != nil {
		h = nl
	}
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("listing links to delete %s: %w", name, err)
	}
	for _, l := range links {
		if l.Attrs().Name == name {
			return h.LinkDel(l)
		}
	}
	return nil
}

func (d *Driver) linkDel(nl *netlink.Handle, l netlink.Link) error {
	if nl != nil {
		return nl.LinkDel(l)
	}
	return d.nl.LinkDel(l)
}

func (d *Driver) linkSetAlias(nl *netlink.Handle, l netlink.Link, alias string) error {
	if nl != nil {
		return nl.LinkSetAlias(l, alias)
	}
	return d.nl.LinkSetAlias(l, alias)
}

// Leave hands the endpoint's macvlan link to the reaper, which deletes it
// within a few tens of ms: in its sandbox (which has taken it out of
// service already, or is being destroyed: the reaper holds the namespace
// open until the link is gone, since a link left to the kernel's own
// namespace clean-up keeps its MAC busy on the parent for a while), or in
// the host namespace when the sandbox moved it back there. A passthru link
// is deleted at once: the parent takes no other macvlan while it exists.
// An unknown network or endpoint, one not joined, or a link already gone
// (its sandbox destroyed, its parent deleted) all mean there is nothing to
// do: nil.
func (d *Driver) Leave(nid, eid string) error {
	d.mu.Lock()
	n := d.networks[nid]
	var ep *endpoint
	if n != nil {
		ep = n.endpoints[eid]
	}
	if ep == nil || ep.ifIndex == 0 && !ep.busy {
		d.mu.Unlock()
		return nil
	}
	if ep.busy {
		d.mu.Unlock()
		return types.ForbiddenErrorf("leaving macvlan endpoint %s: a join or leave is in progress", eid)
	}
	ep.busy = true
	l := retiredLink{index: ep.ifIndex, eid: eid, mac: ep.mac.String()}
	key, passthru := ep.sboxKey, n.cfg.Mode == ModePassthru
	d.mu.Unlock()

	var err error
	gone := false
	if key != "" {
		l.ns, err = netnsutil.Open(key)
		if errors.Is(err, os.ErrNotExist) {
			gone, err = true, nil // the namespace went, and its links with it
		}
	}
	switch {
	case err != nil || gone:
	case passthru:
		err = d.removeLink(l)
	default:
		d.reap.retire(l)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	ep.busy = false
	if err != nil {
		return types.InternalErrorf("leaving macvlan endpoint %s: %w", eid, err)
	}
	ep.sboxKey, ep.ifIndex = "", 0
	return nil
}

// removeLink deletes l if it is still there and still carries its
// endpoint's tag, and closes l.ns. A link in the host namespace (the
// sandbox moved it back out) may have a new ifindex there, so the host is
// searched by tag when the index does not match.
func (d *Driver) removeLink(l retiredLink) error {
	if l.ns != nil {
		defer l.ns.Close()
		h, err := netlink.NewHandleAt(l.ns.Handle())
		if err != nil {
			return err
		}
		defer h.Close()
		link, err := h.LinkByIndex(l.index)
		if err == nil && isOurs(link, l.eid) {
			return ignoreGone(h.LinkDel(link))
		}
		return ignoreGone(err)
	}
	if link, err := d.nl.LinkByIndex(l.index); err == nil && isOurs(link, l.eid) {
		return ignoreGone(d.nl.LinkDel(link))
	}
	links, err := d.nl.LinkList()
	if err != nil {
		return err
	}
	for _, link := range links {
		if isOurs(link, l.eid) {
			return ignoreGone(d.nl.LinkDel(link))
		}
	}
	return nil
}

// isOurs reports whether l is the macvlan link of endpoint eid.
func isOurs(l netlink.Link, eid string) bool {
	_, ok := l.(*netlink.Macvlan)
	return ok && l.Attrs().Alias == endpointTag(eid)
}

// RestoreJoin takes back a join made before a controller restart: it finds
// the endpoint's macvlan by name in the sandbox (or by tag in the host
// namespace) and records it, touching nothing.
func (d *Driver) RestoreJoin(req driverapi.JoinRequest, res driverapi.JoinResult) error {
	what := "restoring macvlan endpoint " + req.EndpointID
	d.mu.Lock()
	_, ep, err := d.endpointLocked(req.NetworkID, req.EndpointID)
	d.mu.Unlock()
	if err != nil {
		return err
	}
	key, index := "", 0
	if req.SandboxKey != "" && res.DstName != "" {
		ns, err := netnsutil.Open(req.SandboxKey)
		if err != nil {
			return types.NotFoundErrorf("%s: sandbox namespace %s: %w", what, req.SandboxKey, err)
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns.Handle())
		if err != nil {
			return types.InternalErrorf("%s: netlink handle in %s: %w", what, req.SandboxKey, err)
		}
		defer h.Close()
		if l, err := h.LinkByName(res.DstName); err == nil && isOurs(l, req.EndpointID) {
			key, index = req.SandboxKey, l.Attrs().Index
		}
	} else {
		links, err := d.nl.LinkList()
		if err != nil {
			// Not "gone": a failed listing must not make restore drop a live join.
			return types.InternalErrorf("%s: listing links: %w", what, err)
		}
		for _, l := range links {
			if isOurs(l, req.EndpointID) {
				index = l.Attrs().Index
				break
			}
		}
	}
	if index == 0 {
		return types.NotFoundErrorf("%s: its macvlan link is gone", what)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ep.sboxKey, ep.ifIndex = key, index
	return nil
}

func randomHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)[:n]
}
