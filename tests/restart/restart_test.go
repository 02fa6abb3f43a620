package restart

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

func TestRestartRestoresState(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmrst0", "10.90.0.0/24")
	mem := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("null", "mem", "", libnetwork.NetworkOptionPersist(false)))
	_ = mem
	ep1 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e1"))
	ep2 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e2"))
	idle := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("idle"))
	sb1 := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c1"))
	sb2 := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c2"))
	if err := ep1.Join(sb1); err != nil {
		t.Fatal(err)
	}
	if err := ep2.Join(sb2); err != nil {
		t.Fatal(err)
	}
	_, h1 := testrig.SandboxNS(t, sb1)
	eth0, err := h1.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addr1, addrIdle := ep1.Info().Iface().Address().String(), idle.Info().Iface().Address().String()
	sb1Key, sb2Key := sb1.Key(), sb2.Key()

	// Restart with c1 kept alive (live restore); c2's container is gone.
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb1.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	n2, err := c.NetworkByName("net")
	if err != nil || n2.ID() != n.ID() {
		t.Fatalf("network not restored: %v", err)
	}
	if _, err := c.NetworkByName("mem"); !types.IsNotFound(err) {
		t.Fatalf("a network with persist=false came back: %v", err)
	}
	rsb, err := c.SandboxByID(sb1.ID())
	if err != nil || rsb.Key() != sb1Key {
		t.Fatalf("live sandbox not restored: %v", err)
	}
	rep1, err := n2.EndpointByName("e1")
	if err != nil || rep1.Info().Iface().Address().String() != addr1 || rep1.Info().Sandbox() != rsb {
		t.Fatalf("joined endpoint not restored: %v", err)
	}
	ridle, err := n2.EndpointByName("idle")
	if err != nil || ridle.Info().Iface().Address().String() != addrIdle {
		t.Fatalf("idle endpoint not restored: %v", err)
	}
	// The data plane was not touched: the same interface, still configured.
	if l, err := h1.LinkByName("eth0"); err != nil || l.Attrs().Index != eth0.Attrs().Index {
		t.Fatalf("eth0 changed across restart: %v", err)
	}
	// c2 and its endpoint are gone, namespace included.
	if _, err := c.SandboxByID(sb2.ID()); !types.IsNotFound(err) {
		t.Fatalf("stale sandbox came back: %v", err)
	}
	if _, err := n2.EndpointByName("e2"); !types.IsNotFound(err) {
		t.Fatalf("endpoint of a stale sandbox came back: %v", err)
	}
	if _, err := os.Stat(sb2Key); !os.IsNotExist(err) {
		t.Fatalf("stale sandbox key left: %v", err)
	}
	// No address held before the restart is handed out again.
	ep3 := testrig.Must[*libnetwork.Endpoint](t)(n2.CreateEndpoint("e3"))
	if a := ep3.Info().Iface().Address().String(); a == addr1 || a == addrIdle {
		t.Fatalf("address %s handed out twice", a)
	}
	// The restored join works like any other: leave, delete, and the bridge
	// (recognised as ours by its tag) goes with the network.
	if err := rep1.Leave(rsb); err != nil {
		t.Fatal(err)
	}
	testrig.Teardown(t, c)
	testrig.HostLinksSettle(t, r.Host, "lo")
}

func TestRestartCollectsLeftovers(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmgc0", "10.91.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	// What a crash mid-operation leaves: a tagged bridge whose network has
	// no record, a namespace file with no sandbox, a files directory.
	orphan := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cnmorphan"}}
	if err := r.Host.Netlink.LinkAdd(orphan); err != nil {
		t.Fatal(err)
	}
	if err := r.Host.Netlink.LinkSetAlias(orphan, "opencnm:net:deadbeef"); err != nil {
		t.Fatal(err)
	}
	strayKey := filepath.Join(c.Config().ExecRoot, "netns", "0123456789ab")
	if _, err := netnsutil.New(strayKey); err != nil {
		t.Fatal(err)
	}
	strayFiles := filepath.Join(c.Config().ExecRoot, "files", "deadbeef")
	if err := os.MkdirAll(strayFiles, 0o755); err != nil {
		t.Fatal(err)
	}

	c = r.Start() // c's sandbox is not kept: it and its endpoint go too
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for _, p := range []string{strayKey, strayFiles, sb.Key()} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after restart: %v", p, err)
		}
	}
	testrig.HostLinksSettle(t, r.Host, "lo", "cnmgc0")
	if err := c.CollectGarbage(); err != nil {
		t.Fatalf("CollectGarbage on a clean controller: %v", err)
	}
}

func TestStoreHeldOrCorrupt(t *testing.T) {
	r := testrig.NewRestartable(t)
	r.Start()
	start := time.Now()
	_, err := libnetwork.New(append(slices.Clone(r.Base), config.OptionStoreTimeout(200*time.Millisecond))...)
	if !types.IsTimeout(err) {
		t.Fatalf("second controller on a held store: want Timeout, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("held store took %v to fail", d)
	}
	r.Last.Stop()
	r.Last = nil

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, libnetwork.StoreFile), []byte("garbage, not a store, long enough to be read as a page..."), 0o600); err != nil {
		t.Fatal(err)
	}
	exec := filepath.Join(dir, "run")
	_, err = libnetwork.New(config.OptionDataDir(dir), config.OptionExecRoot(exec), config.OptionHostNetNS(r.Host.Path()))
	if err == nil || !types.IsInternal(err) {
		t.Fatalf("corrupt store: want an Internal error, got %v", err)
	}
	// Nothing half-started.
	if _, err := os.Stat(exec); !os.IsNotExist(err) {
		t.Fatalf("a failed New created %s", exec)
	}
	testrig.HostLinksSettle(t, r.Host, "lo")
}

// A live-restored container keeps its published port: same host port, still
// answering from the host's loopback, and not handed to anyone else.
func TestRestartKeepsPublishedPort(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmport0", "10.93.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("web", libnetwork.OptionPortMapping(
		[]types.PortBinding{{Proto: types.TCP, Port: 80}}))) // host port chosen by the library
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	hostPort := testrig.PublishedPort(t, ep)
	ns, _ := testrig.SandboxNS(t, sb)
	testrig.Serve(t, ns, "tcp", testrig.HostIP(ep.Info().Iface().Address())+":80", "web")
	addr := fmt.Sprintf("127.0.0.1:%d", hostPort)
	testrig.MustFetch(t, r.Host.NS, "tcp", addr, "web")
	rulesBefore := len(testrig.RulesNaming(t, r.Host.NS, "cnm-"))
	if rulesBefore == 0 {
		t.Fatal("no rule carries a cnm- comment: the rule count below would prove nothing")
	}

	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{
		libnetwork.OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}})}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rn := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net"))
	rep := testrig.Must[*libnetwork.Endpoint](t)(rn.EndpointByName("web"))
	if got := testrig.PublishedPort(t, rep); got != hostPort {
		t.Fatalf("host port changed across restart: %d -> %d", hostPort, got)
	}
	testrig.MustFetch(t, r.Host.NS, "tcp", addr, "web")
	if after := len(testrig.RulesNaming(t, r.Host.NS, "cnm-")); after != rulesBefore {
		t.Fatalf("restart changed the rule count %d -> %d (rules re-rendered or duplicated)", rulesBefore, after)
	}
	// The port is still reserved: another container cannot take it.
	other := testrig.Must[*libnetwork.Endpoint](t)(rn.CreateEndpoint("other"))
	osb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("other", libnetwork.OptionPortMapping(
		[]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: hostPort}})))
	if err := other.Join(osb); !types.IsForbidden(err) {
		t.Fatalf("taking a restored container's host port: want Forbidden, got %v", err)
	}
}

// Records stored by versions that wrote ready as "" still come back as
// ready: the network, its joined endpoint in the kept sandbox (its
// interface untouched) and its idle endpoint.
func TestRestartRestoresRecordsOfOldForm(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmold1", "10.90.1.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	idle := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("idle"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, h := testrig.SandboxNS(t, sb)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	r.Last.Stop()
	oldForm := func(m map[string]any) {
		if m["State"] != "ready" {
			t.Fatalf("record stored with state %v, want ready", m["State"])
		}
		m["State"] = ""
	}
	testrig.EditRawRecord(t, r, records.KindNetwork, n.ID(), oldForm)
	testrig.EditRawRecord(t, r, records.KindEndpoint, ep.ID(), oldForm)
	testrig.EditRawRecord(t, r, records.KindEndpoint, idle.ID(), oldForm)
	r.Last = nil

	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rn := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net"))
	rsb := testrig.Must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID()))
	if rep := testrig.Must[*libnetwork.Endpoint](t)(rn.EndpointByName("e")); rep.Info().Sandbox() != rsb {
		t.Fatal("the joined endpoint came back not joined")
	}
	if ri := testrig.Must[*libnetwork.Endpoint](t)(rn.EndpointByName("idle")); ri.Info().Sandbox() != nil {
		t.Fatal("the idle endpoint came back joined")
	}
	if l, err := h.LinkByName("eth0"); err != nil || l.Attrs().Index != eth0.Attrs().Index {
		t.Fatalf("eth0 changed across restart: %v", err)
	}
}
