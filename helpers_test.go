package libnetwork_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// newController returns a controller whose paths are under t.TempDir().
// As root it works inside a throwaway host namespace; otherwise in the
// test's own namespace, which is fine for tests that never touch the
// kernel (null and fake drivers, sandboxes with external keys).
func newController(t *testing.T, opts ...config.Option) *libnetwork.Controller {
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
	return c
}

// newPrivController is newController for tests that need the kernel.
func newPrivController(t *testing.T, opts ...config.Option) (*libnetwork.Controller, *testutil.HostNS) {
	t.Helper()
	testutil.RequireRoot(t)
	dir := t.TempDir()
	host := testutil.NewHostNS(t)
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
	return c, host
}

// withFake registers a fake driver called "fake" on c.
func withFake(t *testing.T, c *libnetwork.Controller) *drivertest.Fake {
	t.Helper()
	f := drivertest.NewFake("fake")
	if err := c.RegisterDriver("fake", f, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
