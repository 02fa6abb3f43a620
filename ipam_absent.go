package libnetwork

import (
	"net/netip"
	"sync"

	"github.com/opencnm/libnetwork/ipamapi"
	"github.com/opencnm/libnetwork/types"
)

// absentIPAM stands in for the IPAM driver of a restored network when that
// driver could not be found at restore (a plugin that was not running), as
// absentDriver does for network drivers: the network keeps the pools and
// addresses its records name, and every call looks the driver up again,
// failing with NoService until it is back. Nothing is replayed to it when it
// turns up: a plugin keeps its own state.
type absentIPAM struct {
	ctrl *Controller
	name string
	net  string // the network, for messages

	mu   sync.Mutex   // serialises the look-up
	real ipamapi.Ipam // guarded by mu; set once found
}

var _ ipamapi.Ipam = (*absentIPAM)(nil)

func (a *absentIPAM) get() (ipamapi.Ipam, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.real != nil {
		return a.real, nil
	}
	e, err := a.ctrl.ipamDriver(a.name)
	if err != nil {
		// %v, not %w: the look-up's NotFound must not show through.
		return nil, types.NoServiceErrorf("IPAM driver %s of network %s is not available: %v", a.name, a.net, err)
	}
	a.real = e.Ipam
	return e.Ipam, nil
}

func (a *absentIPAM) GetDefaultAddressSpaces() (string, string, error) {
	i, err := a.get()
	if err != nil {
		return "", "", err
	}
	return i.GetDefaultAddressSpaces()
}

func (a *absentIPAM) RequestPool(req ipamapi.PoolRequest) (ipamapi.AllocatedPool, error) {
	i, err := a.get()
	if err != nil {
		return ipamapi.AllocatedPool{}, err
	}
	return i.RequestPool(req)
}

func (a *absentIPAM) ReleasePool(poolID string) error {
	i, err := a.get()
	if err != nil {
		return err
	}
	return i.ReleasePool(poolID)
}

func (a *absentIPAM) RequestAddress(poolID string, prefer netip.Addr, opts map[string]string) (netip.Prefix, map[string]string, error) {
	i, err := a.get()
	if err != nil {
		return netip.Prefix{}, nil, err
	}
	return i.RequestAddress(poolID, prefer, opts)
}

func (a *absentIPAM) ReleaseAddress(poolID string, addr netip.Addr) error {
	i, err := a.get()
	if err != nil {
		return err
	}
	return i.ReleaseAddress(poolID, addr)
}

// Capabilities are the driver's once it is found, none before: nothing is
// replayed to a driver that is not there, and a call needing a MAC fails
// for want of the driver anyway.
func (a *absentIPAM) Capabilities() ipamapi.Capability {
	i, err := a.get()
	if err != nil {
		return ipamapi.Capability{}
	}
	return i.Capabilities()
}
