package libnetwork

import (
	"github.com/opencnm/libnetwork/drivers/remote"
	remoteipam "github.com/opencnm/libnetwork/ipam/remote"
	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/types"
)

// discoverDriver finds a network-driver plugin called name in the plugin
// directories. With no socket or spec of that name it fails at once with
// NetworkTypeError (upstream waited ~15 s).
func (r *registry) discoverDriver(name string) (*driverEntry, error) {
	client, err := r.plugins.Get(name, remote.PluginInterface)
	if err != nil {
		if types.IsNotFound(err) {
			return nil, NetworkTypeError(name)
		}
		return nil, types.Wrapf(err, "loading network plugin %s", name)
	}
	d, capability, err := remote.New(client)
	if err != nil {
		return nil, types.Wrapf(err, "starting network plugin %s", name)
	}
	return &driverEntry{d: d, cap: capability}, nil
}

// discoverIPAM finds an IPAM plugin called name.
func (r *registry) discoverIPAM(name string) (ipamapi.Ipam, error) {
	client, err := r.plugins.Get(name, ipamapi.PluginEndpointType)
	if err != nil {
		if types.IsNotFound(err) {
			return nil, types.NotFoundErrorf("unknown IPAM driver %q: no built-in driver and no plugin socket or spec of that name: %w", name, err)
		}
		return nil, types.Wrapf(err, "loading IPAM plugin %s", name)
	}
	i, err := remoteipam.New(client)
	if err != nil {
		return nil, types.Wrapf(err, "starting IPAM plugin %s", name)
	}
	return i, nil
}
