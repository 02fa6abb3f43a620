// Package drivertest holds a conformance suite every network driver passes
// and a fake driver, with failure injection, for controller tests.
package drivertest

import (
	"fmt"
	"maps"
	"net"
	"sync"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Steps of the fake driver that can be made to fail.
const (
	StepCreateNetwork  = "CreateNetwork"
	StepCreateEndpoint = "CreateEndpoint"
	StepJoin           = "Join"
	StepProgram        = "ProgramExternalConnectivity"
	StepLeave          = "Leave"
	StepDeleteEndpoint = "DeleteEndpoint"
	StepDeleteNetwork  = "DeleteNetwork"
)

// Fake is an in-memory driver that records its networks, endpoints and
// joins, and fails the steps named in Fail. It implements
// driverapi.ExternalConnectivity.
type Fake struct {
	Name    string
	Gateway net.IP // returned by Join when set

	mu        sync.Mutex
	fail      map[string]error
	networks  map[string]driverapi.CreateNetworkRequest
	endpoints map[string]string // eid -> nid
	joined    map[string]bool
	external  map[string]bool
	macs      map[string]net.HardwareAddr
	calls     []string
}

// NewFake returns a fake driver of type name.
func NewFake(name string) *Fake {
	return &Fake{Name: name, fail: map[string]error{}, networks: map[string]driverapi.CreateNetworkRequest{},
		endpoints: map[string]string{}, joined: map[string]bool{}, external: map[string]bool{},
		macs: map[string]net.HardwareAddr{}}
}

// Fail makes step return err from now on (nil clears it).
func (f *Fake) Fail(step string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.fail, step)
		return
	}
	f.fail[step] = err
}

func (f *Fake) step(name string) error {
	f.calls = append(f.calls, name)
	return f.fail[name]
}

// Counts returns how many networks, endpoints, joins and programmed
// external connectivities the driver holds now.
func (f *Fake) Counts() (networks, endpoints, joins, external int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.networks), len(f.endpoints), len(f.joined), len(f.external)
}

// Network returns the request a network was created with.
func (f *Fake) Network(nid string) (driverapi.CreateNetworkRequest, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.networks[nid]
	return r, ok
}

// Type returns the fake's type name.
func (f *Fake) Type() string { return f.Name }

// CreateNetwork records the network.
func (f *Fake) CreateNetwork(req driverapi.CreateNetworkRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step(StepCreateNetwork); err != nil {
		return err
	}
	if _, ok := f.networks[req.NetworkID]; ok {
		return types.ForbiddenErrorf("network %s exists", req.NetworkID)
	}
	req.Options = maps.Clone(req.Options)
	f.networks[req.NetworkID] = req
	return nil
}

// DeleteNetwork forgets the network; unknown is fine.
func (f *Fake) DeleteNetwork(nid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step(StepDeleteNetwork); err != nil {
		return err
	}
	for _, n := range f.endpoints {
		if n == nid {
			return types.ForbiddenErrorf("network %s has endpoints", nid)
		}
	}
	delete(f.networks, nid)
	return nil
}

// CreateEndpoint records the endpoint and chooses a MAC if none was given.
func (f *Fake) CreateEndpoint(req driverapi.CreateEndpointRequest) (*driverapi.Interface, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step(StepCreateEndpoint); err != nil {
		return nil, err
	}
	if _, ok := f.networks[req.NetworkID]; !ok {
		return nil, driverapi.ErrNoNetwork(req.NetworkID)
	}
	if _, ok := f.endpoints[req.EndpointID]; ok {
		return nil, driverapi.ErrEndpointExists(req.EndpointID)
	}
	f.endpoints[req.EndpointID] = req.NetworkID
	if req.Interface.MacAddress != nil {
		f.macs[req.EndpointID] = req.Interface.MacAddress
		return nil, nil
	}
	mac := net.HardwareAddr{0x02, 0xfa, 0, 0, 0, byte(len(f.endpoints))}
	f.macs[req.EndpointID] = mac
	return &driverapi.Interface{MacAddress: mac}, nil
}

// DeleteEndpoint forgets the endpoint; unknown is fine.
func (f *Fake) DeleteEndpoint(nid, eid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step(StepDeleteEndpoint); err != nil {
		return err
	}
	delete(f.endpoints, eid)
	delete(f.macs, eid)
	return nil
}

// EndpointOperInfo returns the endpoint's MAC.
func (f *Fake) EndpointOperInfo(nid, eid string) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.endpoints[eid]; !ok {
		return nil, driverapi.ErrNoEndpoint(eid)
	}
	return map[string]any{netlabel.MacAddress: f.macs[eid]}, nil
}

// Join records the join; the fake gives the sandbox no interface.
func (f *Fake) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step(StepJoin); err != nil {
		return nil, err
	}
	if _, ok := f.endpoints[req.EndpointID]; !ok {
		return nil, driverapi.ErrNoEndpoint(req.EndpointID)
	}
	if f.joined[req.EndpointID] {
		return nil, types.ForbiddenErrorf("endpoint %s already joined", req.EndpointID)
	}
	f.joined[req.EndpointID] = true
	return &driverapi.JoinResult{Gateway: f.Gateway}, nil
}

// Leave forgets the join; not joined is fine.
func (f *Fake) Leave(nid, eid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step(StepLeave); err != nil {
		return err
	}
	delete(f.joined, eid)
	return nil
}

// ProgramExternalConnectivity records the endpoint as the sandbox's gateway.
func (f *Fake) ProgramExternalConnectivity(nid, eid string, options map[string]any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.step(StepProgram); err != nil {
		return err
	}
	f.external[eid] = true
	return nil
}

// RevokeExternalConnectivity forgets it.
func (f *Fake) RevokeExternalConnectivity(nid, eid string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.external, eid)
	return nil
}

// String summarises the fake's state for failure messages.
func (f *Fake) String() string {
	n, e, j, x := f.Counts()
	return fmt.Sprintf("fake %s: %d networks, %d endpoints, %d joins, %d external", f.Name, n, e, j, x)
}
