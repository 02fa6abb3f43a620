package bridge

import (
	"net"

	"github.com/opencnm/libnetwork/types"
)

// firewaller is the seam for the host firewall (iptables chains, NAT,
// isolation, published ports). The driver calls it at network create and
// delete and at Program/RevokeExternalConnectivity; Driver.fw is nil until
// the firewall and portmapper packages are wired in, and every caller
// checks for nil. Implementations must be idempotent: del* of something
// already gone succeeds, since DeleteNetwork may be retried.
type firewaller interface {
	// addNetwork installs the network's rules (masquerade or SNAT to
	// HostIP, ICC accept or drop, isolation, internal-network drops).
	addNetwork(c *networkConfig) error
	delNetwork(c *networkConfig) error
	// programEndpoint publishes the sandbox's ports (options carry
	// netlabel.PortMap and netlabel.ExposedPorts) to the endpoint's
	// addresses and returns the bindings with the host ports actually used.
	programEndpoint(c *networkConfig, ep endpointAddrs, options map[string]any) ([]types.PortBinding, error)
	revokeEndpoint(c *networkConfig, ep endpointAddrs) error
}

// endpointAddrs is what the firewall needs to know of an endpoint.
type endpointAddrs struct {
	ID         string
	IPv4       *net.IPNet
	IPv6       *net.IPNet
	HostIfName string // host end of the veth, "" while not joined
}

// ProgramExternalConnectivity is called for the sandbox's gateway endpoint
// with the sandbox's labels. It publishes ports through the firewaller;
// without one it only checks that the endpoint exists.
func (d *Driver) ProgramExternalConnectivity(nid, eid string, options map[string]any) error {
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	addrs := ep.addrs()
	d.mu.Unlock()
	if d.fw == nil || n.cfg.Internal {
		return nil
	}
	bindings, err := d.fw.programEndpoint(n.cfg, addrs, options)
	if err != nil {
		return types.Wrapf(err, "programming external connectivity of endpoint %s", eid)
	}
	d.mu.Lock()
	ep.portMap = bindings
	d.mu.Unlock()
	return nil
}

// RevokeExternalConnectivity undoes ProgramExternalConnectivity. An
// unknown network or endpoint is already revoked: nil.
func (d *Driver) RevokeExternalConnectivity(nid, eid string) error {
	d.mu.Lock()
	n, ep, err := d.endpointLocked(nid, eid)
	if err != nil {
		d.mu.Unlock()
		return nil
	}
	addrs := ep.addrs()
	d.mu.Unlock()
	if d.fw == nil || n.cfg.Internal {
		return nil
	}
	if err := d.fw.revokeEndpoint(n.cfg, addrs); err != nil {
		return types.Wrapf(err, "revoking external connectivity of endpoint %s", eid)
	}
	d.mu.Lock()
	ep.portMap = nil
	d.mu.Unlock()
	return nil
}
