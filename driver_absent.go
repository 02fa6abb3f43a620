package libnetwork

import (
	"sync"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/undo"
	"github.com/opencnm/libnetwork/types"
)

// absentDriver stands in for the driver of a restored network when that
// driver could not be found at restore (a plugin that was not running).
// The network and its endpoints stay in the model with their addresses
// reserved; every call looks the driver up again and goes to it once it is
// back. Until then calls fail with NoService, never NotFound: deletes take
// NotFound for "already gone" and would forget objects the plugin still
// holds.
type absentDriver struct {
	ctrl *Controller
	net  *Network // the network it stands in for
	typ  string

	mu   sync.Mutex       // serialises the look-up and the replay below
	real driverapi.Driver // guarded by mu; set once found
}

var (
	_ driverapi.Driver               = (*absentDriver)(nil)
	_ driverapi.ExternalConnectivity = (*absentDriver)(nil)
	_ driverapi.StateKeeper          = (*absentDriver)(nil)
)

// keepsState reports whether d keeps its networks and endpoints across a
// restart of the controller (driverapi.StateKeeper).
func keepsState(d driverapi.Driver) bool {
	k, ok := d.(driverapi.StateKeeper)
	return ok && k.KeepsState()
}

// get returns the driver, looking it up if it has not been found yet. A
// driver that turns up and does not keep state (an in-process driver
// registered after New) is first given the network and its endpoints, as
// restore would have; joins restored meanwhile are not replayed to it.
func (a *absentDriver) get() (driverapi.Driver, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.real != nil {
		return a.real, nil
	}
	e, err := a.ctrl.driver(a.typ)
	if err != nil {
		// %v, not %w: the look-up's NotFound must not show through.
		return nil, types.NoServiceErrorf("driver %s of network %s is not available: %v", a.typ, a.net.name, err)
	}
	if !keepsState(e.Driver) {
		if err := a.net.recreateIn(e.Driver); err != nil {
			return nil, err
		}
	}
	a.real = e.Driver
	return e.Driver, nil
}

// KeepsState is true: restore tells the stand-in nothing, and get replays
// what a driver that does not keep state needs when it turns up.
func (a *absentDriver) KeepsState() bool { return true }

func (a *absentDriver) Type() string { return a.typ }

func (a *absentDriver) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	d, err := a.get()
	if err != nil {
		return err
	}
	return d.CreateNetwork(req)
}

func (a *absentDriver) DeleteNetwork(nid string) error {
	d, err := a.get()
	if err != nil {
		return err
	}
	return d.DeleteNetwork(nid)
}

func (a *absentDriver) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	d, err := a.get()
	if err != nil {
		return nil, err
	}
	return d.CreateEndpoint(req)
}

func (a *absentDriver) DeleteEndpoint(nid, eid string) error {
	d, err := a.get()
	if err != nil {
		return err
	}
	return d.DeleteEndpoint(nid, eid)
}

func (a *absentDriver) EndpointOperInfo(nid, eid string) (map[string]any, error) {
	d, err := a.get()
	if err != nil {
		return nil, err
	}
	return d.EndpointOperInfo(nid, eid)
}

func (a *absentDriver) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	d, err := a.get()
	if err != nil {
		return nil, err
	}
	return d.Join(req)
}

func (a *absentDriver) Leave(nid, eid string) error {
	d, err := a.get()
	if err != nil {
		return err
	}
	return d.Leave(nid, eid)
}

func (a *absentDriver) ProgramExternalConnectivity(nid, eid string, options map[string]any) error {
	d, err := a.get()
	if err != nil {
		return err
	}
	if ext, ok := d.(driverapi.ExternalConnectivity); ok {
		return ext.ProgramExternalConnectivity(nid, eid, options)
	}
	return nil
}

func (a *absentDriver) RevokeExternalConnectivity(nid, eid string) error {
	d, err := a.get()
	if err != nil {
		return err
	}
	if ext, ok := d.(driverapi.ExternalConnectivity); ok {
		return ext.RevokeExternalConnectivity(nid, eid)
	}
	return nil
}

// recreateIn creates the network and its endpoints in d, which does not
// keep state, from the model; on error it undoes what it created.
func (n *Network) recreateIn(d driverapi.Driver) error {
	var undo undo.Stack
	ok := false
	defer undo.Unless(&ok)
	req := driverapi.CreateNetworkRequest{NetworkID: n.id, Options: n.driverOptions(),
		IPv4Data: ipamData(n.ipamV4Info), IPv6Data: ipamData(n.ipamV6Info)}
	if err := d.CreateNetwork(req); err != nil {
		return types.Wrapf(err, "re-creating network %s in driver %s", n.name, n.networkType)
	}
	undo.PushFunc(func() { _ = d.DeleteNetwork(n.id) })
	for _, ep := range n.Endpoints() {
		n.ctrl.mu.Lock()
		req := driverapi.CreateEndpointRequest{NetworkID: n.id, EndpointID: ep.id, Options: ep.generic,
			Interface: driverapi.Interface{MacAddress: ep.iface.mac, Address: ep.iface.addr, AddressIPv6: ep.iface.addrv6}}
		n.ctrl.mu.Unlock()
		if _, err := d.CreateEndpoint(req); err != nil {
			return types.Wrapf(err, "re-creating endpoint %s in driver %s", ep.name, n.networkType)
		}
		undo.PushFunc(func() { _ = d.DeleteEndpoint(n.id, ep.id) })
	}
	ok = true
	return nil
}
