package libnetwork

import (
	"sync"

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
	e := &driverEntry{Driver: d, capability: capability}
	if err := r.announce(name, e); err != nil {
		// The plugin may serve networks that need no VTEP, and a failed
		// announcement is not retried: refusing it here would leave the
		// name unusable until the controller restarts.
		r.log.Warn("network plugin kept without this host's discovery address", "driver", name, "err", err)
	}
	return e, nil
}

// discoverIPAM finds an IPAM plugin called name.
func (r *registry) discoverIPAM(name string) (*ipamEntry, error) {
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
	return newIPAMEntry(name, i, false)
}

// nameLock serialises the discovery of one plugin name: concurrent first
// users of a name share one discovery, while a plugin that is slow to
// answer holds up no other name.
type nameLock struct {
	mu    sync.Mutex
	users int // guarded by registry.mu
}

// lockName locks key ("driver/<name>" or "ipam/<name>") and returns the
// unlock; the lock is dropped from the map with its last user.
func (r *registry) lockName(key string) (unlock func()) {
	r.mu.Lock()
	l := r.discovering[key]
	if l == nil {
		if r.discovering == nil {
			r.discovering = map[string]*nameLock{}
		}
		l = &nameLock{}
		r.discovering[key] = l
	}
	l.users++
	r.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		r.mu.Lock()
		if l.users--; l.users == 0 {
			delete(r.discovering, key)
		}
		r.mu.Unlock()
	}
}
