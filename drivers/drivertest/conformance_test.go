package drivertest_test

import (
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/drivers/host"
	"github.com/opencnm/libnetwork/drivers/null"
)

func network(nid string) driverapi.CreateNetworkRequest {
	return driverapi.CreateNetworkRequest{NetworkID: nid, Options: map[string]any{}}
}

func join(t *testing.T, nid, eid string) driverapi.JoinRequest {
	return driverapi.JoinRequest{NetworkID: nid, EndpointID: eid}
}

func TestFakeConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Suite{
		New:     func(t *testing.T) driverapi.Driver { return drivertest.NewFake("fake") },
		Network: network, Join: join,
	})
}

func TestNullConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Suite{
		New:     func(t *testing.T) driverapi.Driver { return null.New() },
		Network: network, Join: join, SingleNetwork: true,
	})
}

func TestHostConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Suite{
		New:     func(t *testing.T) driverapi.Driver { return host.New() },
		Network: network, Join: join, SingleNetwork: true,
	})
}

// The single-network drivers declare that their networks hold no
// addresses; the controller reads that, never their names.
func TestSingleDriversAreAddressLess(t *testing.T) {
	for name, c := range map[string]driverapi.Capability{"null": null.Capability(), "host": host.Capability()} {
		if !c.AddressLess || c.DataScope != driverapi.LocalScope {
			t.Errorf("%s declares %+v, want local and AddressLess", name, c)
		}
	}
}
