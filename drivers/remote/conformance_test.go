package remote_test

import (
	"sync"
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
)

// The remote driver over a real plugin socket (plugintest) to the fake
// plugin, a fresh plugin per driver.
func TestRemoteConformance(t *testing.T) {
	var mu sync.Mutex
	plugins := map[driverapi.Driver]*fakePlugin{}
	drivertest.Run(t, drivertest.Suite{
		New: func(t *testing.T) driverapi.Driver {
			p := newFakePlugin()
			d, _, _ := newDriver(t, p, viaSocket)
			mu.Lock()
			defer mu.Unlock()
			plugins[d] = p
			return d
		},
		Nodes: func(t *testing.T, d driverapi.Driver) []string {
			mu.Lock()
			p := plugins[d]
			mu.Unlock()
			return p.nodes()
		},
		Network: func(nid string) driverapi.CreateNetworkRequest {
			return driverapi.CreateNetworkRequest{NetworkID: nid, Options: map[string]any{}}
		},
		Join: func(t *testing.T, nid, eid string) driverapi.JoinRequest {
			return driverapi.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: "/var/run/netns/conformance"}
		},
	})
}
