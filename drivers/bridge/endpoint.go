package bridge

import (
	"errors"
	"net"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/macaddr"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// endpoint is the driver's record of one endpoint. Its fields are guarded
// by Driver.mu; mac and the addresses never change after CreateEndpoint.
type endpoint struct {
	id     string
	mac    net.HardwareAddr
	addr   *net.IPNet
	addrv6 *net.IPNet

	hostIfName  string // host end of the veth while joined
	hostIfIndex int    // its ifindex
	busy        bool   // a Join or Leave is doing kernel work

	// From CreateOptionPortMapping / CreateOptionExposedPorts.
	ownPorts   []types.PortBinding
	ownExposed []types.TransportPort
	// Set by ProgramExternalConnectivity: operational bindings (real host
	// ports) and the exposed ports of endpoint and sandbox together.
	programmed bool
	portMap    []types.PortBinding
	exposed    []types.TransportPort
	// The legacy links it was programmed with: endpoint IDs, and its
	// exposed ports as its parents' links use them. Guarded by Driver.mu,
	// written only under Driver.linkMu (see links.go).
	linkParents, linkChildren []string
	linkExposed               []types.TransportPort
	linkRules                 bool // link rules of its own may be installed
}

func (ep *endpoint) addrs() endpointAddrs {
	return endpointAddrs{ID: ep.id, IPv4: ep.addr, IPv6: ep.addrv6, HostIfName: ep.hostIfName}
}

// CreateEndpoint records an endpoint; nothing is created in the kernel
// until Join. It returns the MAC it chose when the request had none, and
// the IPv6 address it derived when the network has IPv6 and IPAM gave none.
//
// A chosen MAC is 02:42 followed by the endpoint's IPv4 address, as
// upstream does: deterministic, unique on the bridge because addresses are,
// and recognisable in captures. On an IPv6-only network it is random.
func (d *Driver) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	if req.EndpointID == "" {
		return nil, types.BadRequestErrorf("creating bridge endpoint: empty endpoint id")
	}
	in := req.Interface
	if in.Address != nil && in.Address.IP.To4() == nil {
		return nil, types.BadRequestErrorf("creating bridge endpoint %s: %s is not an ipv4 address", req.EndpointID, in.Address)
	}
	if in.MacAddress != nil && len(in.MacAddress) != 6 {
		return nil, types.BadRequestErrorf("creating bridge endpoint %s: invalid mac address %s", req.EndpointID, in.MacAddress)
	}

	ownPorts, ownExposed, err := portOptions("creating bridge endpoint "+req.EndpointID, req.Options)
	if err != nil {
		return nil, err
	}
	if err := d.canPublish("creating bridge endpoint "+req.EndpointID, ownPorts); err != nil {
		return nil, err
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	n, err := d.readyNetworkLocked(req.NetworkID)
	if err != nil {
		return nil, err
	}
	if _, ok := n.endpoints[req.EndpointID]; ok {
		return nil, driverapi.ErrEndpointExists(req.EndpointID)
	}
	switch {
	case n.cfg.EnableIPv4 && in.Address == nil:
		return nil, types.BadRequestErrorf("creating bridge endpoint %s: no ipv4 address", req.EndpointID)
	case !n.cfg.EnableIPv4 && in.Address != nil:
		return nil, types.BadRequestErrorf("creating bridge endpoint %s: ipv4 address %s on a network with %s=false", req.EndpointID, in.Address, netlabel.EnableIPv4)
	case in.Address != nil && !n.cfg.PoolIPv4.Contains(in.Address.IP):
		return nil, types.BadRequestErrorf("creating bridge endpoint %s: address %s is outside subnet %s", req.EndpointID, in.Address.IP, n.cfg.PoolIPv4)
	}
	ep := &endpoint{
		id:     req.EndpointID,
		mac:    types.GetMacCopy(in.MacAddress),
		addr:   types.GetIPNetCopy(in.Address),
		addrv6: types.GetIPNetCopy(in.AddressIPv6),

		ownPorts:   mergeBindings(ownPorts),
		ownExposed: mergeExposed(ownExposed),
	}
	var chosen driverapi.Interface
	if ep.mac == nil {
		if ep.addr != nil {
			ep.mac = macFromIPv4(ep.addr.IP)
		} else {
			ep.mac = macaddr.Random() // IPv6-only: no address to derive it from
		}
		chosen.MacAddress = types.GetMacCopy(ep.mac)
	}
	if ep.addrv6 == nil && n.cfg.EnableIPv6 && n.cfg.PoolIPv6 != nil {
		v6, err := ipv6FromMAC(n.cfg.PoolIPv6, ep.mac)
		if err != nil {
			return nil, types.Wrapf(err, "creating bridge endpoint %s", req.EndpointID)
		}
		ep.addrv6 = v6
		chosen.AddressIPv6 = types.GetIPNetCopy(v6)
	}
	n.endpoints[ep.id] = ep
	if chosen.MacAddress == nil && chosen.AddressIPv6 == nil {
		return nil, nil
	}
	return &chosen, nil
}

// DeleteEndpoint drops the endpoint and retires a veth it still has, as
// Leave does. An unknown network or endpoint is already gone: nil.
func (d *Driver) DeleteEndpoint(nid, eid string) error {
	d.mu.Lock()
	n := d.networks[nid]
	if n == nil {
		d.mu.Unlock()
		return nil
	}
	ep := n.endpoints[eid]
	if ep == nil {
		d.mu.Unlock()
		return nil
	}
	if ep.busy {
		d.mu.Unlock()
		return types.ForbiddenErrorf("deleting bridge endpoint %s: it is joining or leaving", eid)
	}
	veth, brIndex := ep.hostIfIndex, n.bridgeIndex
	programmed := ep.programmed && !n.cfg.Internal
	addrs := ep.addrs()
	ep.busy = true
	d.mu.Unlock()

	var err error
	if programmed {
		// Normally revoked by the controller before; never leak the ports.
		err = d.dropLinksAndRevoke(n, ep, addrs)
	}
	if veth != 0 {
		ticket, rerr := d.reaper.retire(veth)
		if rerr == nil {
			rerr = d.forgetNeighbours(n.cfg, brIndex, ep.neighbours().ips)
			d.mu.Lock()
			ep.hostIfName, ep.hostIfIndex = "", 0
			n.ports.retire(ticket)
			d.mu.Unlock()
		}
		err = errors.Join(err, rerr)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	ep.busy = false
	if err != nil {
		return types.Wrapf(err, "deleting bridge endpoint %s", eid)
	}
	delete(n.endpoints, eid)
	return nil
}

// EndpointOperInfo returns the endpoint's MAC and, once external
// connectivity is programmed, netlabel.PortMap (the operational bindings,
// with the host ports actually taken) and netlabel.ExposedPorts.
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ep, err := d.endpointLocked(nid, eid)
	if err != nil {
		return nil, err
	}
	info := map[string]any{netlabel.MacAddress: types.GetMacCopy(ep.mac)}
	if len(ep.portMap) > 0 {
		pm := make([]types.PortBinding, len(ep.portMap))
		for i, b := range ep.portMap {
			pm[i] = b.GetCopy()
		}
		info[netlabel.PortMap] = pm
	}
	if len(ep.exposed) > 0 {
		info[netlabel.ExposedPorts] = append([]types.TransportPort(nil), ep.exposed...)
	}
	return info, nil
}

func (d *Driver) endpointLocked(nid, eid string) (*network, *endpoint, error) {
	n := d.networks[nid]
	if n == nil {
		return nil, nil, driverapi.ErrNoNetwork(nid)
	}
	ep := n.endpoints[eid]
	if ep == nil {
		return nil, nil, driverapi.ErrNoEndpoint(eid)
	}
	return n, ep, nil
}

func macFromIPv4(ip net.IP) net.HardwareAddr {
	v4 := ip.To4()
	return net.HardwareAddr{0x02, 0x42, v4[0], v4[1], v4[2], v4[3]}
}

// ipv6FromMAC puts the MAC in the last six bytes of the pool's prefix.
// The pool needs at least 48 host bits.
func ipv6FromMAC(pool *net.IPNet, mac net.HardwareAddr) (*net.IPNet, error) {
	ones, bits := pool.Mask.Size()
	if bits != 128 || ones > 80 {
		return nil, types.ForbiddenErrorf("deriving ipv6 address from mac: subnet %s has fewer than 48 host bits", pool)
	}
	ip := make(net.IP, net.IPv6len)
	copy(ip, pool.IP.To16())
	copy(ip[10:], mac)
	return &net.IPNet{IP: ip, Mask: pool.Mask}, nil
}
