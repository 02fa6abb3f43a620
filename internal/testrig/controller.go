package testrig

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// NewController returns a controller with the built-in drivers in a
// throwaway host namespace with its state under t.TempDir(), for tests
// that need nothing of the kernel but those drivers (null and host
// networks, sandboxes with external keys); over the fake driver alone,
// NewUnitController. It needs root: libnetwork.New starts the built-in
// bridge driver, which opens netlink in the host namespace. Without root
// it skips (fails under CI=true), as every privileged test does.
func NewController(t *testing.T, opts ...config.Option) *libnetwork.Controller {
	t.Helper()
	c, _ := NewPrivController(t, opts...)
	return c
}

// NewUnitController returns a controller for unit tests over drivers the
// test registers (WithFake): it starts without the built-in network
// drivers, on a memory store, and so needs no root. As root it runs in a
// throwaway host namespace, so nothing it does reaches the machine's;
// without root it runs in the process's own, where a controller makes
// nothing in the kernel and claims nothing.
func NewUnitController(t *testing.T, opts ...config.Option) *libnetwork.Controller {
	t.Helper()
	base := []config.Option{knobs.Set(knobs.NoBuiltinDrivers, true), knobs.WithStore(store.NewMemory())}
	if os.Geteuid() == 0 {
		base = append(base, config.OptionHostNetNS(testutil.NewHostNS(t).Path()))
	}
	return start(t, append(base, opts...))
}

// NewPrivController is NewController for tests that look at the kernel:
// it returns the host namespace too.
func NewPrivController(t *testing.T, opts ...config.Option) (*libnetwork.Controller, *testutil.HostNS) {
	t.Helper()
	testutil.RequireRoot(t)
	host := testutil.NewHostNS(t)
	return NewPrivControllerIn(t, host, opts...), host
}

// NewPrivControllerIn is NewPrivController in a host namespace the test
// made (and may have prepared, e.g. forwarding on before the start).
func NewPrivControllerIn(t *testing.T, host *testutil.HostNS, opts ...config.Option) *libnetwork.Controller {
	t.Helper()
	testutil.RequireRoot(t)
	return start(t, append([]config.Option{config.OptionHostNetNS(host.Path())}, opts...))
}

// stops holds, per plugin directory of a running test controller, the
// function that stops it (see Publish).
var stops sync.Map // string -> *stopper

type stopper struct {
	owner *testing.T // the test whose cleanup stops the controller
	stop  func()
}

// start makes the controller with its state under t.TempDir() and opts
// applied last. At the test's end it deletes what the test left and
// stops, once, whichever cleanup gets there first.
func start(t *testing.T, opts []config.Option) *libnetwork.Controller {
	t.Helper()
	dir := t.TempDir()
	base := []config.Option{
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
	}
	c, err := libnetwork.New(append(base, opts...)...)
	if err != nil {
		t.Fatalf("libnetwork.New: %v", err)
	}
	s := &stopper{owner: t, stop: sync.OnceFunc(func() {
		Teardown(t, c)
		c.Stop()
	})}
	dirs := c.Config().PluginDirs
	for _, d := range dirs {
		stops.Store(d, s)
	}
	t.Cleanup(func() {
		s.stop()
		for _, d := range dirs {
			stops.CompareAndDelete(d, s)
		}
	})
	return c
}

// stopBefore makes the controller using plugin directory dir (if one
// runs) stop before cleanups registered earlier than this call, such as
// the plugin server just started: the controller's teardown then talks to
// a live plugin instead of waiting out its timeout. Only for t's own
// controller: a subtest's server must not end its parent's controller.
func stopBefore(t *testing.T, dir string) {
	if s, ok := stops.Load(dir); ok && s.(*stopper).owner == t {
		t.Cleanup(s.(*stopper).stop)
	}
}

// Teardown deletes every sandbox and network a test left, so its namespace
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

// WithFake registers a fake driver called "fake" on c.
func WithFake(t *testing.T, c *libnetwork.Controller) *drivertest.Fake {
	t.Helper()
	f := drivertest.NewFake("fake")
	if err := c.RegisterDriver("fake", f, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
		t.Fatal(err)
	}
	return f
}

// Must returns a function that fails t on a non-nil error and else
// passes the value through.
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
	return knobs.Set(knobs.DNSCheckTicks, ticks)
}
