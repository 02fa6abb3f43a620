package macvlan

import (
	"net"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/internal/optval"
	"github.com/opencnm/libnetwork/internal/macaddr"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// endpoint is the driver's record of one endpoint. Guarded by Driver.mu;
// mac never changes after CreateEndpoint (the addresses are the
// sandbox's to set: the driver keeps none).
type endpoint struct {
	id  string
	mac net.HardwareAddr

	// While joined: the namespace the macvlan link is in ("" for the host
	// namespace, when the sandbox moves it in itself) and its ifindex there.
	sboxKey string
	ifIndex int
	busy    bool // a Join or Leave is doing kernel work
}

// CreateEndpoint records an endpoint; the link is made at Join. It returns
// the MAC it chose when the request had none: a random locally
// administered one, or on a passthru network the parent's, which the
// kernel gives the macvlan anyway. Not 02:42 and the IPv4 address, as the
// bridge: a MAC must be free on the parent when its link comes up, and a
// link in a namespace being destroyed (a crash's leftovers) holds its MAC
// until the kernel gets to it, so an address handed on at once would
// collide. Published ports are refused: a macvlan network has no NAT.
func (d *Driver) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	what := "creating macvlan endpoint " + req.EndpointID
	if req.EndpointID == "" {
		return nil, types.BadRequestErrorf("creating macvlan endpoint: empty endpoint id")
	}
	if err := optval.NoPublishedPorts(what, NetworkType, noNAT, req.Options); err != nil {
		return nil, err
	}
	in := req.Interface
	if in.Address != nil && in.Address.IP.To4() == nil {
		return nil, types.BadRequestErrorf("%s: %s is not an ipv4 address", what, in.Address)
	}
	if in.AddressIPv6 != nil && (in.AddressIPv6.IP.To16() == nil || in.AddressIPv6.IP.To4() != nil) {
		return nil, types.BadRequestErrorf("%s: %s is not an ipv6 address", what, in.AddressIPv6)
	}
	if in.MacAddress != nil && (len(in.MacAddress) != 6 || in.MacAddress[0]&1 != 0) {
		return nil, types.BadRequestErrorf("%s: invalid mac address %s: want a unicast Ethernet address", what, in.MacAddress)
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
	c := n.cfg
	switch {
	case in.Address != nil && c.Pool4 != nil && !c.Pool4.Contains(in.Address.IP):
		return nil, types.BadRequestErrorf("%s: address %s is outside subnet %s", what, in.Address.IP, c.Pool4)
	case in.AddressIPv6 != nil && c.Pool6 != nil && !c.Pool6.Contains(in.AddressIPv6.IP):
		return nil, types.BadRequestErrorf("%s: address %s is outside subnet %s", what, in.AddressIPv6.IP, c.Pool6)
	case c.Mode == ModePassthru && in.MacAddress != nil && in.MacAddress.String() != n.parentMAC.String():
		return nil, types.BadRequestErrorf("%s: a passthru macvlan has its parent's mac %s, not %s", what, n.parentMAC, in.MacAddress)
	}
	ep := &endpoint{id: req.EndpointID, mac: types.GetMacCopy(in.MacAddress)}
	var chosen *driverapi.Interface
	if ep.mac == nil {
		if c.Mode == ModePassthru {
			ep.mac = types.GetMacCopy(n.parentMAC)
		} else {
			ep.mac = macaddr.Random()
		}
		chosen = &driverapi.Interface{MacAddress: types.GetMacCopy(ep.mac)}
	}
	n.endpoints[ep.id] = ep
	return chosen, nil
}

// DeleteEndpoint deletes the endpoint's macvlan link if it is still
// joined (the controller leaves first; a forced delete may not) and
// forgets it. An unknown network or endpoint is already gone: nil.
func (d *Driver) DeleteEndpoint(nid, eid string) error {
	if err := d.Leave(nid, eid); err != nil {
		return types.Wrapf(err, "deleting macvlan endpoint %s", eid)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.networks[nid]
	if n == nil {
		return nil
	}
	ep := n.endpoints[eid]
	if ep == nil {
		return nil
	}
	if ep.busy || ep.ifIndex != 0 {
		return types.ForbiddenErrorf("deleting macvlan endpoint %s: it is joining", eid)
	}
	delete(n.endpoints, eid)
	return nil
}

// EndpointOperInfo returns the endpoint's MAC.
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]any, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ep, err := d.endpointLocked(nid, eid)
	if err != nil {
		return nil, err
	}
	return map[string]any{netlabel.MacAddress: types.GetMacCopy(ep.mac)}, nil
}

func (d *Driver) endpointLocked(nid, eid string) (*network, *endpoint, error) {
	n, err := d.readyNetworkLocked(nid)
	if err != nil {
		return nil, nil, err
	}
	ep := n.endpoints[eid]
	if ep == nil {
		return nil, nil, driverapi.ErrNoEndpoint(eid)
	}
	return n, ep, nil
}

// noNAT is why a macvlan endpoint publishes no ports.
const noNAT = "it has no NAT; containers are reached at their own addresses"
