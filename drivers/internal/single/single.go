// Package single is the shared body of the host and null drivers: a driver
// with exactly one network and no kernel work of its own.
package single

import (
	"sync"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/types"
)

// Driver allows one network, which cannot be deleted (as upstream: the host
// and null networks exist for the life of the daemon), and endpoints that
// need nothing from the kernel.
type Driver struct {
	typ string

	mu  sync.Mutex
	nid string // the one network; guarded by mu
}

// Capability is the host and null drivers' capability: local, and
// AddressLess.
func Capability() driverapi.Capability {
	return driverapi.Capability{DataScope: driverapi.LocalScope, ConnectivityScope: driverapi.LocalScope, AddressLess: true}
}

// New returns a single-network driver of type typ.
func New(typ string) *Driver { return &Driver{typ: typ} }

// Type returns the network type.
func (d *Driver) Type() string { return d.typ }

// CreateNetwork accepts the first network only.
func (d *Driver) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nid != "" && d.nid != req.NetworkID {
		return types.ForbiddenErrorf("only one instance of %q network is allowed", d.typ)
	}
	d.nid = req.NetworkID
	return nil
}

// DeleteNetwork refuses: the network lives as long as the controller's data.
func (d *Driver) DeleteNetwork(nid string) error {
	return types.ForbiddenErrorf("network of type %q cannot be deleted", d.typ)
}

// CreateEndpoint chooses nothing.
func (d *Driver) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	return nil, nil
}

// DeleteEndpoint has nothing to delete.
func (d *Driver) DeleteEndpoint(nid, eid string) error { return nil }

// EndpointOperInfo returns an empty map.
func (d *Driver) EndpointOperInfo(nid, eid string) (map[string]any, error) {
	return map[string]any{}, nil
}

// Join gives the sandbox no interface.
func (d *Driver) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	return &driverapi.JoinResult{}, nil
}

// Leave has nothing to undo.
func (d *Driver) Leave(nid, eid string) error { return nil }
