package libnetwork_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// restartable gives controllers that share one host namespace, ExecRoot
// and DataDir, as one process would across restarts.
type restartable struct {
	t    *testing.T
	host *testutil.HostNS
	base []config.Option
	last *libnetwork.Controller
}

func newRestartable(t *testing.T) *restartable {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	r := &restartable{t: t, host: testutil.NewHostNS(t)}
	r.base = []config.Option{
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
		config.OptionHostNetNS(r.host.Path()),
	}
	// Whatever the test ends with is torn down, so no mount outlives it.
	t.Cleanup(func() {
		if r.last != nil {
			teardown(t, r.last)
			r.last.Stop()
		}
	})
	return r
}

// start stops the previous controller (without tearing anything down, as a
// process exit would) and starts a new one.
func (r *restartable) start(opts ...config.Option) *libnetwork.Controller {
	r.t.Helper()
	if r.last != nil {
		r.last.Stop()
	}
	c, err := libnetwork.New(append(slices.Clone(r.base), opts...)...)
	if err != nil {
		r.t.Fatalf("New: %v", err)
	}
	r.last = c
	return c
}

func TestRestartRestoresState(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	n := bridgeNet(t, c, "net", "cnmrst0", "10.90.0.0/24")
	mem := must[*libnetwork.Network](t)(c.NewNetwork("null", "mem", "", libnetwork.NetworkOptionPersist(false)))
	_ = mem
	ep1 := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e1"))
	ep2 := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e2"))
	idle := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("idle"))
	sb1 := must[*libnetwork.Sandbox](t)(c.NewSandbox("c1"))
	sb2 := must[*libnetwork.Sandbox](t)(c.NewSandbox("c2"))
	if err := ep1.Join(sb1); err != nil {
		t.Fatal(err)
	}
	if err := ep2.Join(sb2); err != nil {
		t.Fatal(err)
	}
	_, h1 := sandboxNS(t, sb1)
	eth0, err := h1.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addr1, addrIdle := ep1.Info().Iface().Address().String(), idle.Info().Iface().Address().String()
	sb1Key, sb2Key := sb1.Key(), sb2.Key()

	// Restart with c1 kept alive (live restore); c2's container is gone.
	c = r.start(config.OptionActiveSandboxes(map[string]any{sb1.ID(): []libnetwork.SandboxOption{}}))
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
	ep3 := must[*libnetwork.Endpoint](t)(n2.CreateEndpoint("e3"))
	if a := ep3.Info().Iface().Address().String(); a == addr1 || a == addrIdle {
		t.Fatalf("address %s handed out twice", a)
	}
	// The restored join works like any other: leave, delete, and the bridge
	// (recognised as ours by its tag) goes with the network.
	if err := rep1.Leave(rsb); err != nil {
		t.Fatal(err)
	}
	teardown(t, c)
	hostLinksSettle(t, r.host, "lo")
}

func TestRestartCollectsLeftovers(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	n := bridgeNet(t, c, "net", "cnmgc0", "10.91.0.0/24")
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	// What a crash mid-operation leaves: a tagged bridge whose network has
	// no record, a namespace file with no sandbox, a files directory.
	orphan := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "cnmorphan"}}
	if err := r.host.Netlink.LinkAdd(orphan); err != nil {
		t.Fatal(err)
	}
	if err := r.host.Netlink.LinkSetAlias(orphan, "opencnm:net:deadbeef"); err != nil {
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

	c = r.start() // c's sandbox is not kept: it and its endpoint go too
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for _, p := range []string{strayKey, strayFiles, sb.Key()} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left after restart: %v", p, err)
		}
	}
	hostLinksSettle(t, r.host, "lo", "cnmgc0")
	if err := c.CollectGarbage(); err != nil {
		t.Fatalf("CollectGarbage on a clean controller: %v", err)
	}
}

func TestStoreHeldOrCorrupt(t *testing.T) {
	r := newRestartable(t)
	r.start()
	start := time.Now()
	_, err := libnetwork.New(append(slices.Clone(r.base), config.OptionStoreTimeout(200*time.Millisecond))...)
	if !types.IsTimeout(err) {
		t.Fatalf("second controller on a held store: want Timeout, got %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("held store took %v to fail", d)
	}
	r.last.Stop()
	r.last = nil

	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, libnetwork.StoreFile), []byte("garbage, not a store, long enough to be read as a page..."), 0o600); err != nil {
		t.Fatal(err)
	}
	exec := filepath.Join(dir, "run")
	_, err = libnetwork.New(config.OptionDataDir(dir), config.OptionExecRoot(exec), config.OptionHostNetNS(r.host.Path()))
	if err == nil || !types.IsInternal(err) {
		t.Fatalf("corrupt store: want an Internal error, got %v", err)
	}
	// Nothing half-started.
	if _, err := os.Stat(exec); !os.IsNotExist(err) {
		t.Fatalf("a failed New created %s", exec)
	}
	hostLinksSettle(t, r.host, "lo")
}

// A live-restored container keeps its published port: same host port, still
// answering from the host's loopback, and not handed to anyone else.
func TestRestartKeepsPublishedPort(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	n := bridgeNet(t, c, "net", "cnmport0", "10.93.0.0/24")
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web"))
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("web", libnetwork.OptionPortMapping(
		[]types.PortBinding{{Proto: types.TCP, Port: 80}}))) // host port chosen by the library
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	hostPort := publishedPort(t, ep)
	ns, _ := sandboxNS(t, sb)
	serve(t, ns, "tcp", hostIP(ep.Info().Iface().Address())+":80", "web")
	addr := fmt.Sprintf("127.0.0.1:%d", hostPort)
	mustFetch(t, r.host.NS, "tcp", addr, "web")
	rulesBefore := len(rulesNaming(t, r.host.NS, "cnm-"))
	if rulesBefore == 0 {
		t.Fatal("no rule carries a cnm- comment: the rule count below would prove nothing")
	}

	c = r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{
		libnetwork.OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}})}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rn := must[*libnetwork.Network](t)(c.NetworkByName("net"))
	rep := must[*libnetwork.Endpoint](t)(rn.EndpointByName("web"))
	if got := publishedPort(t, rep); got != hostPort {
		t.Fatalf("host port changed across restart: %d -> %d", hostPort, got)
	}
	mustFetch(t, r.host.NS, "tcp", addr, "web")
	if after := len(rulesNaming(t, r.host.NS, "cnm-")); after != rulesBefore {
		t.Fatalf("restart changed the rule count %d -> %d (rules re-rendered or duplicated)", rulesBefore, after)
	}
	// The port is still reserved: another container cannot take it.
	other := must[*libnetwork.Endpoint](t)(rn.CreateEndpoint("other"))
	osb := must[*libnetwork.Sandbox](t)(c.NewSandbox("other", libnetwork.OptionPortMapping(
		[]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: hostPort}})))
	if err := other.Join(osb); !types.IsForbidden(err) {
		t.Fatalf("taking a restored container's host port: want Forbidden, got %v", err)
	}
}

func publishedPort(t *testing.T, ep *libnetwork.Endpoint) uint16 {
	t.Helper()
	info := must[map[string]any](t)(ep.DriverInfo())
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	for _, pb := range pbs {
		if pb.Proto == types.TCP && pb.Port == 80 && pb.HostIP.To4() != nil {
			return pb.HostPort
		}
	}
	t.Fatalf("no IPv4 tcp/80 binding in %v", pbs)
	return 0
}

// Records stored by versions that wrote ready as "" still come back as
// ready: the network, its joined endpoint in the kept sandbox (its
// interface untouched) and its idle endpoint.
func TestRestartRestoresRecordsOfOldForm(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	n := bridgeNet(t, c, "net", "cnmold1", "10.90.1.0/24")
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	idle := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("idle"))
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	_, h := sandboxNS(t, sb)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	r.last.Stop()
	oldForm := func(m map[string]any) {
		if m["State"] != "ready" {
			t.Fatalf("record stored with state %v, want ready", m["State"])
		}
		m["State"] = ""
	}
	editRawRecord(t, r, records.KindNetwork, n.ID(), oldForm)
	editRawRecord(t, r, records.KindEndpoint, ep.ID(), oldForm)
	editRawRecord(t, r, records.KindEndpoint, idle.ID(), oldForm)
	r.last = nil

	c = r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rn := must[*libnetwork.Network](t)(c.NetworkByName("net"))
	rsb := must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID()))
	if rep := must[*libnetwork.Endpoint](t)(rn.EndpointByName("e")); rep.Info().Sandbox() != rsb {
		t.Fatal("the joined endpoint came back not joined")
	}
	if ri := must[*libnetwork.Endpoint](t)(rn.EndpointByName("idle")); ri.Info().Sandbox() != nil {
		t.Fatal("the idle endpoint came back joined")
	}
	if l, err := h.LinkByName("eth0"); err != nil || l.Attrs().Index != eth0.Attrs().Index {
		t.Fatalf("eth0 changed across restart: %v", err)
	}
}

// editRawRecord rewrites one stored record as JSON fields, to give it a
// form package records does not write (the controller is stopped).
func editRawRecord(t *testing.T, r *restartable, kind, id string, edit func(m map[string]any)) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(r.last.Config().DataDir, libnetwork.StoreFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	raw, err := st.Get(kind, id)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(store.Op{Kind: kind, ID: id, Value: b}); err != nil {
		t.Fatal(err)
	}
}
