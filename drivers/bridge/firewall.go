package bridge

import (
	"net"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

const (
	labelPortMap      = netlabel.PortMap
	labelExposedPorts = netlabel.ExposedPorts
)

// firewaller is the seam for the host firewall (iptables chains, NAT,
// isolation, published ports). The driver calls it at network create and
// delete and at Program/RevokeExternalConnectivity. Driver.fw is a
// *hostFirewall when iptables is enabled (the default) and noFirewall
// otherwise. Implementations must be idempotent: del* of something already
// gone succeeds, since DeleteNetwork may be retried.
type firewaller interface {
	// addNetwork installs the network's rules (masquerade or SNAT to
	// HostIP, ICC accept or drop, isolation, internal-network drops).
	addNetwork(c *networkConfig) error
	delNetwork(c *networkConfig) error
	// programEndpoint publishes bindings to the endpoint's addresses and
	// returns the bindings with the host ports actually used. A failure
	// leaves nothing of the call behind.
	programEndpoint(c *networkConfig, ep endpointAddrs, bindings []types.PortBinding) ([]types.PortBinding, error)
	// setLinks makes the endpoint's legacy link rules exactly links (none
	// removes them); a failure leaves the endpoint's previous links.
	setLinks(c *networkConfig, ep endpointAddrs, links []firewall.Link) error
	// revokeEndpoint unpublishes the endpoint's ports; it may finish the
	// work in the background, as long as a port is never given out twice.
	revokeEndpoint(c *networkConfig, ep endpointAddrs) error
	// flush waits for work revokeEndpoint left running.
	flush() error
	close() error
}

// noFirewall is the firewaller of a driver without iptables
// (EnableIPTables=false): there are no rules to install or remove. What
// only rules can do (publishing a port, ICC off, legacy links) the driver
// refuses or skips before it gets here (see firewalled).
type noFirewall struct{}

func (noFirewall) addNetwork(*networkConfig) error { return nil }
func (noFirewall) delNetwork(*networkConfig) error { return nil }
func (noFirewall) programEndpoint(*networkConfig, endpointAddrs, []types.PortBinding) ([]types.PortBinding, error) {
	return nil, nil
}
func (noFirewall) setLinks(*networkConfig, endpointAddrs, []firewall.Link) error { return nil }
func (noFirewall) revokeEndpoint(*networkConfig, endpointAddrs) error            { return nil }
func (noFirewall) flush() error                                                  { return nil }
func (noFirewall) close() error                                                  { return nil }

// firewalled reports whether the driver has a firewall that enforces
// rules: published ports, ICC off and legacy links need one.
func (d *Driver) firewalled() bool {
	_, none := d.fw.(noFirewall)
	return !none
}

// endpointAddrs is what the firewall needs to know of an endpoint.
type endpointAddrs struct {
	ID         string
	IPv4       *net.IPNet
	IPv6       *net.IPNet
	HostIfName string // host end of the veth, "" while not joined
}

// ProgramExternalConnectivity is called for the sandbox's gateway endpoint
// with the sandbox's labels. It publishes the union of the sandbox's
// netlabel.PortMap and the endpoint's own (CreateOptionPortMapping) on the
// endpoint's addresses, or, when the labels carry netlabel.OperPortMap (a
// live restore), exactly those bindings; and records the exposed ports. A host port
// already taken fails with a Forbidden error naming it, and leaves nothing.
func (d *Driver) ProgramExternalConnectivity(nid, eid string, options map[string]any) error {
	what := "programming external connectivity of endpoint " + eid
	sbPorts, sbExposed, err := portOptions(what, options)
	if err != nil {
		return err
	}
	oper, err := operPortOption(what, options)
	if err != nil {
		return err
	}
	parents, children, err := linkOptions(what, options)
	if err != nil {
		return err
	}
	if err := d.canPublish(what, sbPorts); err != nil {
		return err
	}
	if err := d.canPublish(what, oper); err != nil {
		return err
	}
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	if ep.busy {
		d.mu.Unlock()
		return types.ForbiddenErrorf("programming external connectivity of endpoint %s: a join or leave is in progress", eid)
	}
	addrs := ep.addrs()
	bindings := mergeBindings(ep.ownPorts, sbPorts)
	if oper != nil {
		// A restart: the very ports published before, which already
		// include the endpoint's own. Merging them with its own requests
		// would publish a chosen port a second time, on a new host port.
		bindings = mergeBindings(rejoinRouted(oper))
	}
	exposed := mergeExposed(ep.ownExposed, sbExposed)
	if d.firewalled() {
		// Refuse bad links before any kernel work; setOwnLinks computes
		// them again under linkMu.
		if _, err := d.linksLocked(what, n, ep, exposed, parents, children); err != nil {
			d.mu.Unlock()
			return err
		}
	}
	again := ep.programmed
	ep.busy = true
	d.mu.Unlock()

	var mapped []types.PortBinding
	if d.firewalled() && !n.cfg.Internal { // internal networks publish nothing
		if again {
			// Programmed twice without a revoke: start over.
			err = d.fw.revokeEndpoint(n.cfg, addrs)
		}
		if err == nil {
			mapped, err = d.fw.programEndpoint(n.cfg, addrs, bindings)
		}
		if err == nil {
			err = d.setOwnLinks(what, n, ep, addrs, exposed, parents, children)
		}
		if err != nil {
			d.dropLinksAndRevoke(n, ep, addrs)
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	ep.busy = false
	if err != nil {
		ep.portMap, ep.exposed, ep.programmed = nil, nil, false
		return types.Wrapf(err, "programming external connectivity of endpoint %s", eid)
	}
	ep.portMap, ep.exposed, ep.programmed = mapped, exposed, true
	return nil
}

// canPublish refuses published ports when the driver has no firewall
// (EnableIPTables=false): a port is published by NAT only, since no
// userland proxy is ever run, so accepting the binding would report a
// port that nothing answers on.
func (d *Driver) canPublish(what string, bindings []types.PortBinding) error {
	if !d.firewalled() && len(bindings) > 0 {
		return types.BadRequestErrorf("%s: publishing port %s needs the bridge driver option EnableIPTables (it is false)", what, bindings[0])
	}
	return nil
}

// RevokeExternalConnectivity undoes ProgramExternalConnectivity. The
// published ports stop being reported at once; their rules and sockets go
// in the background (see portmapper.Release). An unknown network or
// endpoint is already revoked: nil.
func (d *Driver) RevokeExternalConnectivity(nid, eid string) error {
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	if err != nil || !ep.programmed {
		d.mu.Unlock()
		return nil
	}
	if ep.busy {
		d.mu.Unlock()
		return types.ForbiddenErrorf("revoking external connectivity of endpoint %s: a join or leave is in progress", eid)
	}
	addrs := ep.addrs()
	d.mu.Unlock()
	if !n.cfg.Internal {
		if err := d.dropLinksAndRevoke(n, ep, addrs); err != nil {
			return types.Wrapf(err, "revoking external connectivity of endpoint %s", eid)
		}
	}
	d.mu.Lock()
	ep.portMap, ep.exposed, ep.programmed = nil, nil, false
	d.mu.Unlock()
	return nil
}
