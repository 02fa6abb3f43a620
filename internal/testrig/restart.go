package testrig

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// Restartable gives controllers that share one host namespace, ExecRoot
// and DataDir, as one process would across restarts.
type Restartable struct {
	t    *testing.T
	Host *testutil.HostNS
	Base []config.Option
	Last *libnetwork.Controller
}

func NewRestartable(t *testing.T) *Restartable {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	r := &Restartable{t: t, Host: testutil.NewHostNS(t)}
	r.Base = []config.Option{
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
		config.OptionHostNetNS(r.Host.Path()),
	}
	// Whatever the test ends with is torn down, so no mount outlives it.
	t.Cleanup(func() {
		if r.Last != nil {
			Teardown(t, r.Last)
			r.Last.Stop()
		}
	})
	return r
}

// Start stops the previous controller (without tearing anything down, as a
// process exit would) and starts a new one.
func (r *Restartable) Start(opts ...config.Option) *libnetwork.Controller {
	r.t.Helper()
	if r.Last != nil {
		r.Last.Stop()
	}
	c, err := libnetwork.New(append(slices.Clone(r.Base), opts...)...)
	if err != nil {
		r.t.Fatalf("New: %v", err)
	}
	r.Last = c
	return c
}

func PublishedPort(t *testing.T, ep *libnetwork.Endpoint) uint16 {
	t.Helper()
	info := Must[map[string]any](t)(ep.DriverInfo())
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	for _, pb := range pbs {
		if pb.Proto == types.TCP && pb.Port == 80 && pb.HostIP.To4() != nil {
			return pb.HostPort
		}
	}
	t.Fatalf("no IPv4 tcp/80 binding in %v", pbs)
	return 0
}
