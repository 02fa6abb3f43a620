// Package remote is the network driver that forwards every driver call to a
// Docker v1 network plugin (a process serving the NetworkDriver interface
// over HTTP, found with package plugins). It translates between
// driverapi's typed requests and results and the plugin's JSON messages,
// checks what the plugin answers, and undoes a plugin-side step when the
// answer cannot be used.
package remote

import (
	"fmt"
	"net"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/remote/api"
	"github.com/opencnm/libnetwork/plugins"
	"github.com/opencnm/libnetwork/types"
)

// PluginInterface is the interface name network plugins list in their
// handshake.
const PluginInterface = "NetworkDriver"

// Driver proxies driverapi calls to one network plugin. It keeps no state of
// its own, so it is safe for concurrent use as long as the plugin is; the
// plugin owns idempotence of deletes.
type Driver struct {
	client *plugins.Client
}

// Interfaces a remote driver offers besides driverapi.Driver. A plugin that
// does not implement the external connectivity calls answers 404, which the
// driver treats as success.
var (
	_ driverapi.Driver               = (*Driver)(nil)
	_ driverapi.ExternalConnectivity = (*Driver)(nil)
	_ driverapi.NetworkAllocator     = (*Driver)(nil)
	_ driverapi.Discoverer           = (*Driver)(nil)
	_ driverapi.StateKeeper          = (*Driver)(nil)
)

// New asks the activated plugin behind client for its capabilities and
// returns a driver for it. The plugin's Scope must be "local" or "global";
// an empty ConnectivityScope means the same as Scope.
func New(client *plugins.Client) (*Driver, driverapi.Capability, error) {
	d := &Driver{client: client}
	var resp api.GetCapabilitiesResponse
	if err := d.call("GetCapabilities", nil, &resp); err != nil {
		return nil, driverapi.Capability{}, types.Wrapf(err, "get capabilities of network plugin %q", client.Name())
	}
	c := driverapi.Capability{DataScope: resp.Scope, ConnectivityScope: resp.ConnectivityScope}
	if !validScope(c.DataScope) {
		return nil, driverapi.Capability{}, types.InternalErrorf("network plugin %q: invalid scope %q: expected %q or %q",
			client.Name(), resp.Scope, driverapi.LocalScope, driverapi.GlobalScope)
	}
	if c.ConnectivityScope == "" {
		c.ConnectivityScope = c.DataScope
	}
	if !validScope(c.ConnectivityScope) {
		return nil, driverapi.Capability{}, types.InternalErrorf("network plugin %q: invalid connectivity scope %q: expected %q or %q",
			client.Name(), resp.ConnectivityScope, driverapi.LocalScope, driverapi.GlobalScope)
	}
	return d, c, nil
}

func validScope(s string) bool { return s == driverapi.LocalScope || s == driverapi.GlobalScope }

// response is what every reply type has: the plugin's own error field.
type response interface{ GetError() string }

// call is the single path to the plugin: it sends NetworkDriver.<method>
// and turns a reply's Err field into an error reading "remote: <msg>".
// Transport errors come back with the class the client gave them.
func (d *Driver) call(method string, req any, resp response) error {
	m := PluginInterface + "." + method
	if err := d.client.Call(m, req, resp); err != nil {
		return err
	}
	return d.client.ReportedError(m, resp.GetError())
}

// KeepsState is true: the plugin process holds its networks and endpoints
// across a restart of the controller, and answers a second create of one
// with an error, as real plugins do.
func (d *Driver) KeepsState() bool { return true }

// Type is the plugin's name, which is the network type users ask for.
func (d *Driver) Type() string { return d.client.Name() }

// CreateNetwork sends the network's generic options and its pools.
func (d *Driver) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	return d.call("CreateNetwork", &api.CreateNetworkRequest{
		NetworkID: req.NetworkID,
		Options:   req.Options,
		IPv4Data:  wireIPAMData(req.IPv4Data),
		IPv6Data:  wireIPAMData(req.IPv6Data),
	}, &api.CreateNetworkResponse{})
}

// DeleteNetwork asks the plugin to delete the network.
func (d *Driver) DeleteNetwork(nid string) error {
	return d.call("DeleteNetwork", &api.DeleteNetworkRequest{NetworkID: nid}, &api.DeleteNetworkResponse{})
}

// NetworkAllocate asks the plugin to reserve network-wide resources and
// returns the options it wants passed to CreateNetwork.
func (d *Driver) NetworkAllocate(nid string, options map[string]string, ipv4, ipv6 []driverapi.IPAMData) (map[string]string, error) {
	var resp api.AllocateNetworkResponse
	err := d.call("AllocateNetwork", &api.AllocateNetworkRequest{
		NetworkID: nid,
		Options:   options,
		IPv4Data:  wireIPAMData(ipv4),
		IPv6Data:  wireIPAMData(ipv6),
	}, &resp)
	if err != nil {
		return nil, err
	}
	return resp.Options, nil
}

// NetworkFree releases what NetworkAllocate reserved.
func (d *Driver) NetworkFree(nid string) error {
	return d.call("FreeNetwork", &api.FreeNetworkRequest{NetworkID: nid}, &api.FreeNetworkResponse{})
}

// DiscoverNew forwards node discovery events; other kinds are not part of
// the plugin protocol and are ignored. Which drivers get node events at all
// is the controller's choice.
func (d *Driver) DiscoverNew(dType int, data any) error {
	if dType != driverapi.NodeDiscovery {
		return nil
	}
	return d.call("DiscoverNew", &api.DiscoveryNotification{DiscoveryType: dType, DiscoveryData: data}, &api.DiscoveryResponse{})
}

// DiscoverDelete forwards the withdrawal of a node; other kinds are ignored.
func (d *Driver) DiscoverDelete(dType int, data any) error {
	if dType != driverapi.NodeDiscovery {
		return nil
	}
	return d.call("DiscoverDelete", &api.DiscoveryNotification{DiscoveryType: dType, DiscoveryData: data}, &api.DiscoveryResponse{})
}

func wireIPAMData(in []driverapi.IPAMData) []api.IPAMData {
	if len(in) == 0 {
		return nil
	}
	out := make([]api.IPAMData, 0, len(in))
	for _, d := range in {
		w := api.IPAMData{AddressSpace: d.AddressSpace, Pool: cidr(d.Pool), Gateway: cidr(d.Gateway)}
		if len(d.AuxAddresses) > 0 {
			w.AuxAddresses = make(map[string]string, len(d.AuxAddresses))
			for k, v := range d.AuxAddresses {
				w.AuxAddresses[k] = cidr(v)
			}
		}
		out = append(out, w)
	}
	return out
}

// cidr renders n as a CIDR string, keeping host bits; nil is "".
func cidr(n *net.IPNet) string {
	if n == nil {
		return ""
	}
	return n.String()
}

// badReply is the error for a reply the driver cannot use. The plugin is at
// fault, so the class is Internal.
func badReply(method, format string, a ...any) error {
	return types.InternalErrorf("remote: invalid reply to %s: %s", method, fmt.Sprintf(format, a...))
}
