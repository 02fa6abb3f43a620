package bridge

import (
	"fmt"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// The bridge driver, with its real firewall, each driver in a throwaway
// host namespace and each join in a sandbox namespace of its own.
func TestBridgeConformance(t *testing.T) {
	testutil.RequireRoot(t)
	var mu sync.Mutex
	addrs := map[string]int{} // nid/eid -> host part in 10.15.0.0/24
	drivertest.Run(t, drivertest.Suite{
		New: func(t *testing.T) driverapi.Driver {
			d, _ := newTestDriver(t, nil)
			return d
		},
		Network: func(nid string) driverapi.CreateNetworkRequest { return netReq(t, nid, "10.15.0.1/24", nil) },
		Join: func(t *testing.T, nid, eid string) driverapi.JoinRequest {
			sb := testutil.NewNamedNS(t, "sb")
			return driverapi.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: sb.Path(), IfaceName: ifname0}
		},
		Interface: func(nid, eid string) driverapi.Interface {
			mu.Lock()
			defer mu.Unlock()
			key := nid + "/" + eid
			if _, ok := addrs[key]; !ok {
				addrs[key] = len(addrs) + 2
			}
			return driverapi.Interface{Address: mustCIDR(t, fmt.Sprintf("10.15.0.%d/24", addrs[key]))}
		},
		Objects: func(t *testing.T, d driverapi.Driver, nid, eid string) []string {
			return drivertest.LinkNames(t, d.(*Driver).nl.LinkList, func(alias string) bool {
				return alias == networkTag(nid) || (eid != "" && alias == endpointTag(eid))
			})
		},
	})
}
