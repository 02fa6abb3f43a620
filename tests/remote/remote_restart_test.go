package remote

import (
	"slices"
	"strings"
	"testing"

	"github.com/docker/go-plugins-helpers/network"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/plugins/plugintest"
	"github.com/opencnm/libnetwork/types"
)

// A restarted controller trusts its records of a network plugin's network
// and endpoints instead of creating them again (the plugin keeps them and
// refuses duplicates); a live-restored sandbox keeps the plugin's
// interface. A plugin not running at restart costs nothing: its network
// and endpoints stay, RestoreError says so, calls fail with NoService while
// it is away, and once it is back they go to it again.
func TestRestartTrustsPluginRecords(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	dir := plugintest.Dir(t)
	opts := []config.Option{config.OptionPluginDirs(dir), config.OptionPluginTimeout(5 * testrig.PluginTimeout)}
	p := testrig.NewVethPlugin(t, r.Host)
	srv := testrig.Publish(t, dir, "vethnet", testrig.ViaSocket, network.NewHandler(p))

	c := r.Start(opts...)
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("vethnet", "rnet", "", testrig.IPAMOpt("10.77.0.0/24", "10.77.0.1")))
	joinedEP := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("joined"))
	idle := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("idle"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c1"))
	if err := joinedEP.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, sbNL := testrig.SandboxNS(t, sb)
	eth0 := testrig.Must[netlink.Link](t)(sbNL.LinkByName("eth0"))
	addr, mac := joinedEP.Info().Iface().Address().String(), joinedEP.Info().Iface().MacAddress().String()
	live := config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}})

	restored := func(c *libnetwork.Controller) (*libnetwork.Network, *libnetwork.Endpoint, *libnetwork.Endpoint, *libnetwork.Sandbox) {
		t.Helper()
		n := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("rnet"))
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.EndpointByName("joined"))
		idle := testrig.Must[*libnetwork.Endpoint](t)(n.EndpointByName("idle"))
		rsb := testrig.Must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID()))
		if got := ep.Info().Iface(); got.Address().String() != addr || got.MacAddress().String() != mac || ep.Info().Sandbox() != rsb {
			t.Fatalf("joined endpoint came back as %s %s in %v, want %s %s", got.Address(), got.MacAddress(), ep.Info().Sandbox(), addr, mac)
		}
		if l, err := sbNL.LinkByName("eth0"); err != nil || l.Attrs().Index != eth0.Attrs().Index {
			t.Fatalf("the plugin's interface did not survive the restart: %v", err)
		}
		return n, ep, idle, rsb
	}

	// The plugin is running: nothing is created twice.
	c = r.Start(append(opts, live)...)
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore with the plugin running: %v", err)
	}
	restored(c)
	for _, call := range []string{"CreateNetwork " + n.ID(), "CreateEndpoint " + joinedEP.ID(), "CreateEndpoint " + idle.ID()} {
		if got := p.Count(call); got != 1 {
			t.Fatalf("%s sent %d times, want once: %v", call, got, p.CallList())
		}
	}

	// The plugin is gone at the next restart.
	srv.Kill()
	c = r.Start(append(opts, live)...)
	rerr := c.RestoreError()
	if rerr == nil || !strings.Contains(rerr.Error(), "vethnet") {
		t.Fatalf("restore without the plugin: RestoreError %v, want one naming the plugin", rerr)
	}
	n2, ep, idle2, rsb := restored(c)
	if err := idle2.Delete(false); !types.IsNoService(err) {
		t.Fatalf("endpoint delete with the plugin away: want NoService, got %v", err)
	}
	if _, err := n2.CreateEndpoint("new"); !types.IsNoService(err) {
		t.Fatalf("CreateEndpoint with the plugin away: want NoService, got %v", err)
	}
	if err := n2.Delete(); err == nil {
		t.Fatal("network with endpoints deleted")
	}
	if _, err := n2.EndpointByName("idle"); err != nil {
		t.Fatalf("the refused delete dropped the endpoint: %v", err)
	}

	// Back again: the same controller's calls reach it.
	testrig.Publish(t, dir, "vethnet", testrig.ViaSocket, network.NewHandler(p))
	more := testrig.Must[*libnetwork.Endpoint](t)(n2.CreateEndpoint("more"))
	if p.Endpoint(more.ID()) == nil {
		t.Fatalf("CreateEndpoint did not reach the plugin: %v", p.CallList())
	}
	sb2 := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c2"))
	if err := more.Join(sb2); err != nil {
		t.Fatalf("Join with the plugin back: %v", err)
	}
	if _, nl := testrig.SandboxNS(t, sb2); !slices.Contains(testrig.LinkNames(t, nl), "eth0") {
		t.Fatalf("joined sandbox has no eth0: %v", testrig.LinkNames(t, nl))
	}
	if err := sb2.Delete(); err != nil {
		t.Fatal(err)
	}
	if err := ep.Leave(rsb); err != nil || p.Count("Leave "+ep.ID()) != 1 {
		t.Fatalf("Leave: %v, plugin calls %v", err, p.CallList())
	}
	for _, e := range []*libnetwork.Endpoint{ep, idle2, more} {
		if err := e.Delete(false); err != nil || p.Endpoint(e.ID()) != nil {
			t.Fatalf("Delete of %s: %v; plugin still has it: %v", e.Name(), err, p.Endpoint(e.ID()) != nil)
		}
	}
	if err := n2.Delete(); err != nil || p.Count("DeleteNetwork "+n.ID()) != 1 {
		t.Fatalf("network Delete: %v, plugin calls %v", err, p.CallList())
	}
	if err := rsb.Delete(); err != nil {
		t.Fatal(err)
	}
}

// An in-process driver is registered only after New, so its networks come
// back without a driver: they are kept, reported, and given to the driver
// (network and endpoints, which it does not keep itself) when it is there.
func TestRestartKeepsNetworkOfLateDriver(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	c := r.Start()
	testrig.WithFake(t, c)
	n := testrig.FakeNet(t, c, "late", testrig.IPAMOpt("10.96.0.0/24", ""))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("ep"))

	c = r.Start()
	if err := c.RestoreError(); !types.IsNoService(err) || !strings.Contains(err.Error(), "fake") {
		t.Fatalf("RestoreError %v, want NoService naming the driver", err)
	}
	n2 := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("late"))
	ep2 := testrig.Must[*libnetwork.Endpoint](t)(n2.EndpointByName("ep"))
	if ep2.Info().Iface().Address().String() != ep.Info().Iface().Address().String() {
		t.Fatalf("address changed: %s", ep2.Info().Iface().Address())
	}
	f := testrig.WithFake(t, c)
	other := testrig.Must[*libnetwork.Endpoint](t)(n2.CreateEndpoint("other"))
	if nets, eps, _, _ := f.Counts(); nets != 1 || eps != 2 {
		t.Fatalf("driver has %d networks, %d endpoints; want the restored network with both endpoints", nets, eps)
	}
	if other.Info().Iface().Address().String() == ep.Info().Iface().Address().String() {
		t.Fatal("restored address handed out again")
	}
}
