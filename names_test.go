package libnetwork_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// hostileIDs are network IDs NewNetwork refuses: they would be
// interface wildcards or templates in the bridge name derived from them,
// break a rule's comment or a path, or hide in a listing.
var hostileIDs = []string{
	"+", "a+", "br-+", "%d", "a%b", "a\x00b", `a"b`, "a'b", `a\b`, "a#b", "a b", " a", "a\tb",
	"a\nb", "a\x7f", "a\xff", "a/b", "../x", ".", "..", "-a", ".a", "a!b", "a:b", "a;b", "a*b",
	"café", strings.Repeat("a", 65),
}

// A hostile network ID is BadRequest naming the field, before anything is
// made: the driver is not called, no pool is taken, no record is written
// (a restart over the same store finds no network).
func TestNewNetworkHostileIDs(t *testing.T) {
	dir := t.TempDir()
	opts := []config.Option{
		// The restart below runs without root too, on the store the
		// first controller wrote.
		knobs.Set(knobs.NoBuiltinDrivers, true),
		knobs.WithStore(store.NewMemory()),
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
	}
	if os.Geteuid() == 0 {
		// The restart below must stay in a throwaway namespace too.
		opts = append(opts, config.OptionHostNetNS(testutil.NewHostNS(t).Path()))
	}
	c := testrig.NewUnitController(t, opts...)
	f := testrig.WithFake(t, c)
	pool := libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.90.0.0/24"}}, nil, nil)
	for _, id := range hostileIDs {
		_, err := c.NewNetwork("fake", "hostile", id, pool)
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), "network id") {
			t.Errorf("NewNetwork(id %q): want BadRequest naming the network id, got %v", id, err)
		}
	}
	if nets, _, _, _ := f.Counts(); nets != 0 {
		t.Fatalf("the driver was asked to create %d networks", nets)
	}
	if n := len(c.Networks()); n != 0 {
		t.Fatalf("%d networks after hostile creates", n)
	}
	// The name and the pool are free, and IDs of the allowed characters
	// pass.
	for _, id := range []string{"a.b", "a_b", "A-1", strings.Repeat("f", 64)} {
		n, err := c.NewNetwork("fake", "ok", id, pool)
		if err != nil {
			t.Fatalf("NewNetwork(id %q): %v", id, err)
		}
		if err := n.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	c.Stop()
	c2, err := libnetwork.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop()
	if n := len(c2.Networks()); n != 0 {
		t.Fatalf("a restart found %d networks", n)
	}
}
