package remote_test

import (
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
)

// The remote driver over a real plugin socket (plugintest) to the fake
// plugin, a fresh plugin per driver.
func TestRemoteConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Suite{
		New: func(t *testing.T) driverapi.Driver {
			d, _, _ := newDriver(t, newFakePlugin(), viaSocket)
			return d
		},
		Network: func(nid string) driverapi.CreateNetworkRequest {
			return driverapi.CreateNetworkRequest{NetworkID: nid, Options: map[string]any{}}
		},
		Join: func(t *testing.T, nid, eid string) driverapi.JoinRequest {
			return driverapi.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: "/var/run/netns/conformance"}
		},
	})
}
