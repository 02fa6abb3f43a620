package remote

import (
	"fmt"
	"net"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/remote/api"
	"github.com/opencnm/libnetwork/internal/names"
	"github.com/opencnm/libnetwork/types"
)

// CreateEndpoint sends what libnetwork decided for the interface and
// returns what the plugin chose for the fields left empty (nil if it chose
// nothing). A plugin that sets a field libnetwork already set, or answers
// with an unparsable value, gets a DeleteEndpoint so that the failed create
// leaves nothing behind on its side.
func (d *Driver) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	wire := &api.CreateEndpointRequest{
		NetworkID:  req.NetworkID,
		EndpointID: req.EndpointID,
		Options:    req.Options,
		Interface: &api.EndpointInterface{
			Address:     cidr(req.Interface.Address),
			AddressIPv6: cidr(req.Interface.AddressIPv6),
			MacAddress:  macString(req.Interface.MacAddress),
		},
	}
	var resp api.CreateEndpointResponse
	if err := d.call("CreateEndpoint", wire, &resp); err != nil {
		return nil, err
	}
	iface, err := chosenInterface(req.Interface, resp.Interface)
	if err != nil {
		if derr := d.DeleteEndpoint(req.NetworkID, req.EndpointID); derr != nil {
			return nil, fmt.Errorf("%w (rolling back: %v)", err, derr)
		}
		return nil, err
	}
	return iface, nil
}

// chosenInterface checks the plugin's interface fields against what was
// sent and parses them.
func chosenInterface(sent driverapi.Interface, got *api.EndpointInterface) (*driverapi.Interface, error) {
	if got == nil || *got == (api.EndpointInterface{}) {
		return nil, nil
	}
	const method = "CreateEndpoint"
	var out driverapi.Interface
	if got.Address != "" {
		if sent.Address != nil {
			return nil, badReply(method, "plugin set Address %q, already set to %s", got.Address, sent.Address)
		}
		a, err := types.ParseCIDR(got.Address)
		if err != nil || a.IP.To4() == nil {
			return nil, badReply(method, "Address %q is not an IPv4 address in CIDR form", got.Address)
		}
		out.Address = a
	}
	if got.AddressIPv6 != "" {
		if sent.AddressIPv6 != nil {
			return nil, badReply(method, "plugin set AddressIPv6 %q, already set to %s", got.AddressIPv6, sent.AddressIPv6)
		}
		a, err := types.ParseCIDR(got.AddressIPv6)
		if err != nil || a.IP.To4() != nil {
			return nil, badReply(method, "AddressIPv6 %q is not an IPv6 address in CIDR form", got.AddressIPv6)
		}
		out.AddressIPv6 = a
	}
	if got.MacAddress != "" {
		if sent.MacAddress != nil {
			return nil, badReply(method, "plugin set MacAddress %q, already set to %s", got.MacAddress, sent.MacAddress)
		}
		mac, err := net.ParseMAC(got.MacAddress)
		if err != nil {
			return nil, badReply(method, "MacAddress %q: %v", got.MacAddress, err)
		}
		out.MacAddress = mac
	}
	return &out, nil
}

func macString(mac net.HardwareAddr) string {
	if len(mac) == 0 {
		return ""
	}
	return mac.String()
}

// DeleteEndpoint asks the plugin to delete the endpoint.
func (d *Driver) DeleteEndpoint(nid, eid string) error {
	return d.call("DeleteEndpoint", &api.DeleteEndpointRequest{NetworkID: nid, EndpointID: eid}, &api.DeleteEndpointResponse{})
}

// EndpointOperInfo returns the plugin's operational data for the endpoint
// as it sent it (JSON values: strings, numbers, maps, lists).
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]any, error) {
	var resp api.EndpointInfoResponse
	if err := d.call("EndpointOperInfo", &api.EndpointInfoRequest{NetworkID: nid, EndpointID: eid}, &resp); err != nil {
		return nil, err
	}
	if resp.Value == nil {
		// A plugin with nothing to say answers {} or no Value at all:
		// that is an empty answer, as every driver gives, not a missing one.
		resp.Value = map[string]any{}
	}
	return resp.Value, nil
}

// Join asks the plugin to attach the endpoint to the sandbox. The plugin
// names a link it created in the host namespace (SrcName) that the sandbox
// then moves in and renames with DstPrefix; the plugin never enters the
// sandbox itself. A reply that cannot be used is answered with Leave, so a
// failed join leaves nothing behind on the plugin's side.
func (d *Driver) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	var resp api.JoinResponse
	err := d.call("Join", &api.JoinRequest{
		NetworkID:  req.NetworkID,
		EndpointID: req.EndpointID,
		SandboxKey: req.SandboxKey,
		Options:    req.Options,
	}, &resp)
	if err != nil {
		return nil, err
	}
	res, err := joinResult(&resp)
	if err != nil {
		if lerr := d.Leave(req.NetworkID, req.EndpointID); lerr != nil {
			return nil, fmt.Errorf("%w (rolling back: %v)", err, lerr)
		}
		return nil, err
	}
	return res, nil
}

func joinResult(resp *api.JoinResponse) (*driverapi.JoinResult, error) {
	const method = "Join"
	res := &driverapi.JoinResult{DisableGatewayService: resp.DisableGatewayService}
	if n := resp.InterfaceName; n != nil {
		// SrcName is looked up and moved in, DstPrefix names the link in
		// the sandbox: both must be plain interface names (names.Iface),
		// never a wildcard or template the kernel or a rule would expand.
		if n.SrcName != "" {
			if err := names.Iface(n.SrcName); err != nil {
				return nil, badReply(method, "InterfaceName.SrcName: %v", err)
			}
		}
		if n.DstPrefix != "" {
			if err := names.IfacePrefix(n.DstPrefix); err != nil {
				return nil, badReply(method, "InterfaceName.DstPrefix: %v", err)
			}
		}
		res.SrcName, res.DstPrefix = n.SrcName, n.DstPrefix
	}
	if resp.Gateway != "" {
		ip := net.ParseIP(resp.Gateway)
		if ip == nil || ip.To4() == nil {
			return nil, badReply(method, "Gateway %q is not an IPv4 address", resp.Gateway)
		}
		res.Gateway = ip.To4()
	}
	if resp.GatewayIPv6 != "" {
		ip := net.ParseIP(resp.GatewayIPv6)
		if ip == nil || ip.To4() != nil {
			return nil, badReply(method, "GatewayIPv6 %q is not an IPv6 address", resp.GatewayIPv6)
		}
		res.GatewayIPv6 = ip
	}
	for i, r := range resp.StaticRoutes {
		_, dst, err := net.ParseCIDR(r.Destination)
		if err != nil {
			return nil, badReply(method, "route %d: Destination %q is not in CIDR form", i, r.Destination)
		}
		route := &types.StaticRoute{Destination: dst, RouteType: r.RouteType}
		switch r.RouteType {
		case types.NEXTHOP:
			if route.NextHop = net.ParseIP(r.NextHop); route.NextHop == nil {
				return nil, badReply(method, "route %d to %s: NextHop %q is not an IP address", i, r.Destination, r.NextHop)
			}
		case types.CONNECTED:
			// A connected route goes out of the interface; a next hop, if
			// sent, has no meaning and is dropped.
		default:
			return nil, badReply(method, "route %d to %s: unknown RouteType %d", i, r.Destination, r.RouteType)
		}
		res.StaticRoutes = append(res.StaticRoutes, route)
	}
	return res, nil
}

// Leave asks the plugin to detach the endpoint from its sandbox.
func (d *Driver) Leave(nid, eid string) error {
	return d.call("Leave", &api.LeaveRequest{NetworkID: nid, EndpointID: eid}, &api.LeaveResponse{})
}

// ProgramExternalConnectivity forwards the request; a plugin that does not
// implement it (404) has nothing to program, which is success.
func (d *Driver) ProgramExternalConnectivity(nid, eid string, options map[string]any) error {
	err := d.call("ProgramExternalConnectivity", &api.ProgramExternalConnectivityRequest{
		NetworkID: nid, EndpointID: eid, Options: options,
	}, &api.ProgramExternalConnectivityResponse{})
	if types.IsNotImplemented(err) {
		return nil
	}
	return err
}

// RevokeExternalConnectivity forwards the request; 404 is success.
func (d *Driver) RevokeExternalConnectivity(nid, eid string) error {
	err := d.call("RevokeExternalConnectivity", &api.RevokeExternalConnectivityRequest{
		NetworkID: nid, EndpointID: eid,
	}, &api.RevokeExternalConnectivityResponse{})
	if types.IsNotImplemented(err) {
		return nil
	}
	return err
}
