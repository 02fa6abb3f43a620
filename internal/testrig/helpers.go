package testrig

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// newController returns a controller whose paths are under t.TempDir().
// As root it works inside a throwaway host namespace; otherwise in the
// test's own namespace, which is fine for tests that never touch the
// kernel (null and fake drivers, sandboxes with external keys).
func NewController(t *testing.T, opts ...config.Option) *libnetwork.Controller {
	t.Helper()
	dir := t.TempDir()
	base := []config.Option{
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
	}
	if os.Geteuid() == 0 {
		host := testutil.NewHostNS(t)
		base = append(base, config.OptionHostNetNS(host.Path()))
	}
	c, err := libnetwork.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("libnetwork.New: %v", err)
	}
	t.Cleanup(c.Stop)
	t.Cleanup(func() { Teardown(t, c) })
	return c
}

// newPrivController is newController for tests that need the kernel.
func NewPrivController(t *testing.T, opts ...config.Option) (*libnetwork.Controller, *testutil.HostNS) {
	t.Helper()
	testutil.RequireRoot(t)
	host := testutil.NewHostNS(t)
	return newPrivControllerIn(t, host, opts...), host
}

// newPrivControllerIn is newPrivController in a host namespace the test
// made (and may have prepared, e.g. forwarding on before the start).
func newPrivControllerIn(t *testing.T, host *testutil.HostNS, opts ...config.Option) *libnetwork.Controller {
	t.Helper()
	dir := t.TempDir()
	base := []config.Option{
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
		config.OptionHostNetNS(host.Path()),
	}
	c, err := libnetwork.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("libnetwork.New: %v", err)
	}
	t.Cleanup(c.Stop)
	t.Cleanup(func() { Teardown(t, c) })
	return c
}

// teardown deletes every sandbox and network a test left, so its namespace
// mounts are gone before t.TempDir() is removed.
func Teardown(t *testing.T, c *libnetwork.Controller) {
	for _, sb := range c.Sandboxes() {
		if err := sb.Delete(); err != nil {
			t.Errorf("teardown: deleting sandbox %s: %v", sb.ContainerID(), err)
		}
	}
	for _, n := range c.Networks() {
		for _, ep := range n.Endpoints() {
			if err := ep.Delete(true); err != nil {
				t.Errorf("teardown: deleting endpoint %s: %v", ep.Name(), err)
			}
		}
		// Forbidden: host/null networks cannot be deleted. Timeout: a
		// test's plugin server was stopped before this cleanup ran.
		if err := n.Delete(); err != nil && !types.IsForbidden(err) && !types.IsTimeout(err) {
			t.Errorf("teardown: deleting network %s: %v", n.Name(), err)
		}
	}
}

// withFake registers a fake driver called "fake" on c.
func WithFake(t *testing.T, c *libnetwork.Controller) *drivertest.Fake {
	t.Helper()
	f := drivertest.NewFake("fake")
	if err := c.RegisterDriver("fake", f, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func Must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// DNSCheckTicks makes the controller run its periodic DNS redirect check
// once per value sent on ticks, and never otherwise.
func DNSCheckTicks(ticks <-chan time.Time) config.Option {
	return config.OptionDriverConfig(knobs.Controller, map[string]any{knobs.DNSCheckTicks: ticks})
}
