package drivertest

import (
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/types"
)

// Suite describes a driver under test.
type Suite struct {
	// New returns a fresh driver.
	New func(t *testing.T) driverapi.Driver
	// Network returns a valid create request for network nid.
	Network func(nid string) driverapi.CreateNetworkRequest
	// Join returns a join request (sandbox key etc.) for endpoint eid.
	Join func(t *testing.T, nid, eid string) driverapi.JoinRequest
	// SingleNetwork: the driver allows one network which cannot be deleted.
	SingleNetwork bool
	// Interface, when set, returns what the controller would have
	// allocated for endpoint eid (addresses from the network's pool), for
	// drivers that need an address; each eid gets its own.
	Interface func(nid, eid string) driverapi.Interface
	// Objects, required of a driver with GarbageCollector or
	// NetworkAbandoner, returns the names of the objects outside its
	// memory (links, rules) that d holds for network nid or endpoint eid:
	// what collecting or abandoning must remove.
	Objects func(t *testing.T, d driverapi.Driver, nid, eid string) []string
	// OwnNetwork, when set, returns the create request of a network that
	// holds objects of its own (macvlan: an internal one, whose parent is
	// the driver's), for the GarbageCollector and NetworkAbandoner checks;
	// without it they use Network.
	OwnNetwork func(nid string) driverapi.CreateNetworkRequest
	// Nodes, required of a Discoverer, returns the addresses of the nodes
	// d was told of and not told are gone.
	Nodes func(t *testing.T, d driverapi.Driver) []string
}

// ownNetwork is the request the collecting and abandoning checks use.
func (s Suite) ownNetwork(nid string) driverapi.CreateNetworkRequest {
	if s.OwnNetwork != nil {
		return s.OwnNetwork(nid)
	}
	return s.Network(nid)
}

// iface is the CreateEndpoint interface of eid: the Suite's allocation,
// with mac when given.
func (s Suite) iface(nid, eid string, mac net.HardwareAddr) driverapi.Interface {
	var i driverapi.Interface
	if s.Interface != nil {
		i = s.Interface(nid, eid)
	}
	if mac != nil {
		i.MacAddress = mac
	}
	return i
}

// Run checks the driverapi.Driver contract: the life cycle works, teardown
// of what is already gone succeeds, IDs are unique, and concurrent use is
// safe; then, in a subtest per optional interface of driverapi, the
// contract of each one the driver implements (the others are skipped).
func Run(t *testing.T, s Suite) {
	t.Run("Lifecycle", func(t *testing.T) {
		d := s.New(t)
		if d.Type() == "" {
			t.Fatal("Type() is empty")
		}
		if err := d.CreateNetwork(s.Network("n1")); err != nil {
			t.Fatalf("CreateNetwork: %v", err)
		}
		mac := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0, 9}
		got, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1",
			Interface: s.iface("n1", "e1", mac)})
		if err != nil {
			t.Fatalf("CreateEndpoint: %v", err)
		}
		if got != nil && got.MacAddress != nil && got.MacAddress.String() != mac.String() {
			t.Fatalf("CreateEndpoint changed the given MAC %s to %s", mac, got.MacAddress)
		}
		if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1", Interface: s.iface("n1", "e1", nil)}); err == nil && !s.SingleNetwork {
			t.Fatal("second CreateEndpoint with the same ID succeeded")
		}
		info, err := d.EndpointOperInfo("n1", "e1")
		if err != nil || info == nil {
			t.Fatalf("EndpointOperInfo: %v, %v", info, err)
		}
		res, err := d.Join(s.Join(t, "n1", "e1"))
		if err != nil || res == nil {
			t.Fatalf("Join: %v, %v", res, err)
		}
		for i := 0; i < 2; i++ { // the second round is "already gone"
			if err := d.Leave("n1", "e1"); err != nil {
				t.Fatalf("Leave #%d: %v", i+1, err)
			}
			if err := d.DeleteEndpoint("n1", "e1"); err != nil {
				t.Fatalf("DeleteEndpoint #%d: %v", i+1, err)
			}
		}
		err = d.DeleteNetwork("n1")
		if s.SingleNetwork {
			if !types.IsForbidden(err) {
				t.Fatalf("DeleteNetwork of a single-network driver: want Forbidden, got %v", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("DeleteNetwork: %v", err)
		}
		if err := d.DeleteNetwork("n1"); err != nil && !types.IsNotFound(err) {
			t.Fatalf("second DeleteNetwork: want nil or NotFound, got %v", err)
		}
	})
	t.Run("ConcurrentEndpoints", func(t *testing.T) {
		d := s.New(t)
		if err := d.CreateNetwork(s.Network("n2")); err != nil {
			t.Fatalf("CreateNetwork: %v", err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				eid := fmt.Sprintf("e%d", i)
				if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n2", EndpointID: eid, Interface: s.iface("n2", eid, nil)}); err != nil {
					errs <- err
					return
				}
				errs <- d.DeleteEndpoint("n2", eid)
			}(i)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("Optional", func(t *testing.T) { runOptional(t, s) })
}
