package testrig

import (
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// PortsOf is what ep publishes, as the driver reports it, by name.
func PortsOf(t *testing.T, ep *libnetwork.Endpoint) []string {
	t.Helper()
	info := Must[map[string]any](t)(ep.DriverInfo())
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	return PortNames(pbs)
}
