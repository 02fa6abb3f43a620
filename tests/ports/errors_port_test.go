package ports

import (
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/portmapper"
	"github.com/opencnm/libnetwork/types"
)

// A host port already taken, through a real bridge network and port map.
func TestErrorContractPortTaken(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	n := r.BridgeNet(t, "taken", "10.95.0.0/24")
	r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	_, taken := r.Run(t, n, "c2", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)}))
	_, badPort := r.Run(t, n, "c3", nil, libnetwork.OptionPortMapping([]types.PortBinding{testrig.TCP(0, 8081)}))
	testrig.CheckErrCases(t, []testrig.ErrCase{
		{"host port taken", taken, testrig.IsForbidden, testrig.Is(portmapper.ErrPortInUse)},
		{"bad port", badPort, testrig.IsBadRequest, nil},
	})
}
