package bridge

import (
	"errors"
	"slices"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// Keys of the legacy link options: in the sandbox labels' (join options')
// netlabel.GenericData map, as Docker passes them, each a []string of
// endpoint IDs on the same network.
const (
	ParentEndpoints = "ParentEndpoints"
	ChildEndpoints  = "ChildEndpoints"
)

// linkOptions reads ParentEndpoints and ChildEndpoints from a join's
// options. Other entries of GenericData are not the driver's business.
func linkOptions(what string, opts map[string]any) (parents, children []string, err error) {
	var g map[string]any
	switch v := opts[netlabel.GenericData].(type) {
	case options.Generic:
		g = v
	case map[string]any:
		g = v
	default:
		return nil, nil, nil
	}
	get := func(key string) ([]string, error) {
		v, ok := g[key]
		if !ok || v == nil {
			return nil, nil
		}
		l, ok := v.([]string)
		if !ok {
			return nil, types.BadRequestErrorf("%s: option %s must be []string, not %T", what, key, v)
		}
		return l, nil
	}
	if parents, err = get(ParentEndpoints); err != nil {
		return nil, nil, err
	}
	if children, err = get(ChildEndpoints); err != nil {
		return nil, nil, err
	}
	return parents, children, nil
}

// linksLocked returns the link rules endpoint ep (whose exposed ports are
// exposed) needs on network n, as upstream's: each parent reaches ep on
// ep's exposed ports, ep reaches each child on the child's (a child not
// yet programmed exposes nothing yet; setOwnLinks adds the link when it is). Links exist only where ICC is off:
// with it on, everything on the bridge is allowed anyway. Caller holds
// d.mu.
func (d *Driver) linksLocked(what string, n *network, ep *endpoint, exposed []types.TransportPort, parents, children []string) ([]firewall.Link, error) {
	if n.cfg.EnableICC || n.cfg.Internal || len(parents)+len(children) == 0 {
		return nil, nil
	}
	var out []firewall.Link
	add := func(parent, child *endpoint, ports []types.TransportPort) {
		if len(ports) == 0 {
			return
		}
		if parent.addr != nil && child.addr != nil {
			out = append(out, firewall.Link{Bridge: n.cfg.BridgeName, ParentIP: parent.addr.IP, ChildIP: child.addr.IP, Ports: ports})
		}
		if parent.addrv6 != nil && child.addrv6 != nil {
			out = append(out, firewall.Link{Bridge: n.cfg.BridgeName, ParentIP: parent.addrv6.IP, ChildIP: child.addrv6.IP, Ports: ports})
		}
	}
	for _, id := range parents {
		p := n.endpoints[id]
		if p == nil {
			return nil, types.BadRequestErrorf("%s: %s names endpoint %s, which is not on network %s", what, ParentEndpoints, id, n.cfg.ID)
		}
		add(p, ep, exposed)
	}
	for _, id := range children {
		c := n.endpoints[id]
		if c == nil {
			return nil, types.BadRequestErrorf("%s: %s names endpoint %s, which is not on network %s", what, ChildEndpoints, id, n.cfg.ID)
		}
		add(ep, c, c.linkExposed)
	}
	return out, nil
}

// setOwnLinks records ep's link options and exposed ports and sets its
// link rules; then, since a parent programmed before its child (the order
// a live restore may take) could not know the child's ports, it sets again
// the rules of every endpoint naming ep among its ChildEndpoints. All of
// it under linkMu, so rules are always computed from recorded state that
// no other change interleaves with. On failure ep's links are dropped.
func (d *Driver) setOwnLinks(what string, n *network, ep *endpoint, addrs endpointAddrs, exposed []types.TransportPort, parents, children []string) error {
	d.linkMu.Lock()
	defer d.linkMu.Unlock()
	type job struct {
		addrs endpointAddrs
		links []firewall.Link
	}
	d.mu.Lock()
	own, err := d.linksLocked(what, n, ep, exposed, parents, children)
	had := ep.linkRules
	if err == nil {
		ep.linkParents, ep.linkChildren, ep.linkExposed = parents, children, exposed
	}
	var jobs []job
	for _, p := range n.endpoints {
		if err != nil || n.cfg.EnableICC || n.cfg.Internal {
			break // links exist only with ICC off: no walk per join otherwise
		}
		if p == ep || !slices.Contains(p.linkChildren, ep.id) {
			continue
		}
		links, lerr := d.linksLocked("relinking endpoint "+p.id, n, p, p.linkExposed, p.linkParents, p.linkChildren)
		if lerr != nil {
			continue // another endpoint it names is gone: it keeps what it has
		}
		p.linkRules = p.linkRules || len(links) > 0
		jobs = append(jobs, job{p.addrs(), links})
	}
	d.mu.Unlock()
	if err != nil {
		return err
	}
	// The firewall is not touched by endpoints that have no links and had
	// none: its lock may be held by a batch of port releases.
	if len(own) > 0 || had {
		err = d.fw.setLinks(n.cfg, addrs, own)
		d.mu.Lock()
		ep.linkRules = err != nil || len(own) > 0 // after a failure some may be there
		if err != nil {
			ep.linkParents, ep.linkChildren, ep.linkExposed = nil, nil, nil
		}
		d.mu.Unlock()
		if err != nil {
			return err
		}
	}
	var errs []error
	for _, j := range jobs {
		errs = append(errs, d.fw.setLinks(n.cfg, j.addrs, j.links))
	}
	return errors.Join(errs...)
}

// dropLinksAndRevoke forgets ep's links, removes its link rules and
// revokes its ports, under linkMu so no relink puts the rules back
// meanwhile.
func (d *Driver) dropLinksAndRevoke(n *network, ep *endpoint, addrs endpointAddrs) error {
	d.linkMu.Lock()
	defer d.linkMu.Unlock()
	d.mu.Lock()
	had := ep.linkRules
	ep.linkParents, ep.linkChildren, ep.linkExposed, ep.linkRules = nil, nil, nil, false
	d.mu.Unlock()
	var err error
	if had {
		err = d.fw.setLinks(n.cfg, addrs, nil)
	}
	return errors.Join(err, d.fw.revokeEndpoint(n.cfg, addrs))
}
