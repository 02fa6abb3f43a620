package bridgeflow

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// Two controllers in one process, each in its own host namespace with its
// own ExecRoot and DataDir, do not see or disturb each other: the same
// network name, bridge name and subnet work in both.
func TestTwoControllersInOneProcess(t *testing.T) {
	t.Parallel()
	c1, h1 := testrig.NewPrivController(t)
	c2, h2 := testrig.NewPrivController(t)
	var eps []*libnetwork.Endpoint
	for _, c := range []*libnetwork.Controller{c1, c2} {
		n := testrig.BridgeNet(t, c, "same", "cnmsame0", "10.92.0.0/24")
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
		sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
		if err := ep.Join(sb); err != nil {
			t.Fatal(err)
		}
		eps = append(eps, ep)
	}
	if a, b := eps[0].Info().Iface().Address().String(), eps[1].Info().Iface().Address().String(); a != b {
		t.Fatalf("independent controllers gave different first addresses %s and %s", a, b)
	}
	if len(c1.Networks()) != 1 || len(c2.Networks()) != 1 || len(c1.Sandboxes()) != 1 {
		t.Fatal("controllers see each other's objects")
	}
	if !slices.Contains(testrig.LinkNames(t, h1.Netlink), "cnmsame0") || !slices.Contains(testrig.LinkNames(t, h2.Netlink), "cnmsame0") {
		t.Fatal("each host namespace should have its own bridge")
	}
	testrig.Teardown(t, c1)
	testrig.HostLinksSettle(t, h1, "lo")
	if !slices.Contains(testrig.LinkNames(t, h2.Netlink), "cnmsame0") {
		t.Fatal("tearing down one controller touched the other's bridge")
	}
}

func TestRenameAndRefresh(t *testing.T) {
	t.Parallel()
	c := testrig.NewController(t)
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "n")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("old"))
	testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("taken"))
	sb := testrig.ExtSandbox(t, c, "c")
	if err := ep.Join(sb, libnetwork.JoinOptionPriority(3)); err != nil {
		t.Fatal(err)
	}
	if err := sb.Rename("taken"); !types.IsForbidden(err) {
		t.Fatalf("rename onto an existing name: want Forbidden, got %v", err)
	}
	if ep.Name() != "old" {
		t.Fatal("a refused rename changed the name")
	}
	if err := sb.Rename("new"); err != nil {
		t.Fatal(err)
	}
	if got, err := n.EndpointByName("new"); err != nil || got != ep {
		t.Fatalf("renamed endpoint not found by its new name: %v", err)
	}
	if _, err := n.EndpointByName("old"); !types.IsNotFound(err) {
		t.Fatalf("old name still resolves: %v", err)
	}
	// Refresh re-applies options and rejoins every endpoint.
	if err := sb.Refresh(libnetwork.OptionHostname("h2")); err != nil {
		t.Fatal(err)
	}
	if eps := sb.Endpoints(); len(eps) != 1 || eps[0] != ep || ep.Info().Sandbox() != sb {
		t.Fatalf("after Refresh the endpoint is not joined: %v", eps)
	}
}

// A second controller in a host namespace one already works in is refused
// (Forbidden) before it touches anything: its start-up garbage collection
// would take the first one's bridge, rules and ports for leftovers. Once
// the first stops, the namespace is free again.
func TestSecondControllerInOneNamespaceRefused(t *testing.T) {
	t.Parallel()
	c1, host := testrig.NewPrivController(t)
	n := testrig.BridgeNet(t, c1, "mine", "cnmclaim0", "10.93.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c1.NewSandbox("c"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := []config.Option{config.OptionHostNetNS(host.Path()),
		config.OptionExecRoot(filepath.Join(dir, "run")), config.OptionDataDir(filepath.Join(dir, "lib"))}
	if c2, err := libnetwork.New(opts...); !types.IsForbidden(err) || !strings.Contains(err.Error(), "another libnetwork controller") {
		if err == nil {
			c2.Stop()
		}
		t.Fatalf("second controller in one namespace: want Forbidden, got %v", err)
	}
	if _, err := host.Netlink.LinkByName("cnmclaim0"); err != nil {
		t.Fatalf("the refused controller disturbed the first one's bridge: %v", err)
	}
	if got := ep.Info().Iface(); got == nil || got.MacAddress() == nil {
		t.Fatal("the first controller's endpoint lost its interface")
	}
	testrig.Teardown(t, c1)
	c1.Stop()
	c2, err := libnetwork.New(opts...)
	if err != nil {
		t.Fatalf("controller after the first stopped: %v", err)
	}
	c2.Stop()
}
