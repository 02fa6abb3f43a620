package restart

import (
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// Published ports across restarts, including states a crash leaves that
// TestCrashRecovery reaches only by chance.

// An endpoint publishing a port of its own on a chosen host port
// (CreateOptionPortMapping) comes back from a restart publishing it once,
// on the same host port (the recorded ports replace the endpoint's
// request, they are not merged with it), and comes back as well with a
// fixed port of the sandbox besides.
func TestRestartKeepsEndpointOwnPort(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmown0", "10.97.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e", libnetwork.CreateOptionPortMapping(
		[]types.PortBinding{{Proto: types.TCP, Port: 8080}})))
	sbPorts := []types.PortBinding{{Proto: types.TCP, Port: 80}, {Proto: types.UDP, Port: 53, HostPort: 30053}}
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c", libnetwork.OptionPortMapping(sbPorts)))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	want := testrig.PortsOf(t, ep)
	if len(want) != 3 {
		t.Fatalf("published %v, want 3 ports", want)
	}
	keep := config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{libnetwork.OptionPortMapping(sbPorts)}})
	for i := 0; i < 2; i++ {
		c = r.Start(keep)
		if err := c.RestoreError(); err != nil {
			t.Fatalf("restore %d: %v", i+1, err)
		}
		rep := testrig.Must[*libnetwork.Endpoint](t)(testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net")).EndpointByName("e"))
		if got := testrig.PortsOf(t, rep); !slices.Equal(got, want) {
			t.Fatalf("after restart %d the endpoint publishes %v, want %v", i+1, got, want)
		}
	}
}

// On a network with IPv6 a port is published in both families on one
// host port; both bindings come back as they were, the same port in each.
func TestRestartKeepsDualStackPort(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.DualStackNet(t, c, "net6", "", "10.98.0.0/24", "fd98::/64")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sbPorts := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c", libnetwork.OptionPortMapping(sbPorts)))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	want := testrig.PortsOf(t, ep)
	if len(want) != 2 {
		t.Fatalf("published %v, want one port in each family", want)
	}
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{libnetwork.OptionPortMapping(sbPorts)}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rsb, err := c.SandboxByID(sb.ID())
	if err != nil {
		t.Fatalf("live sandbox not restored: %v", err)
	}
	if got := testrig.PortsOf(t, rsb.Endpoints()[0]); !slices.Equal(got, want) {
		t.Fatalf("after restart the endpoint publishes %v, want %v", got, want)
	}
}

// storedOperPorts reads the published ports each endpoint record claims
// (the controller is stopped).
func storedOperPorts(t *testing.T, r *testrig.Restartable) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, rec := range testrig.StoredEndpoints(t, r.Last.Config().DataDir) {
		out[rec.Name] = testrig.PortNames(rec.OperPorts)
	}
	return out
}

// When a join moves the gateway (and the published ports) to the new
// endpoint, the old gateway's record stops claiming the ports: a restart
// that finishes a later leave of the new gateway must not publish them
// from a stale record, since a chosen port may be another container's by
// then.
func TestGatewayMoveForgetsOldPorts(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	na := testrig.BridgeNet(t, c, "a", "cnmgma0", "10.99.1.0/24")
	nb := testrig.BridgeNet(t, c, "b", "cnmgmb0", "10.99.2.0/24")
	ea := testrig.Must[*libnetwork.Endpoint](t)(na.CreateEndpoint("ea"))
	eb := testrig.Must[*libnetwork.Endpoint](t)(nb.CreateEndpoint("eb"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c", libnetwork.OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}})))
	if err := ea.Join(sb); err != nil {
		t.Fatal(err)
	}
	first := testrig.PortsOf(t, ea)
	if err := eb.Join(sb, libnetwork.JoinOptionPriority(10)); err != nil {
		t.Fatal(err)
	}
	moved := testrig.PortsOf(t, eb)
	if got := testrig.PortsOf(t, ea); len(got) != 0 || len(first) != 1 || len(moved) != 1 {
		t.Fatalf("ports before/after the move: ea %v -> %v, eb %v", first, got, moved)
	}
	r.Last.Stop()
	stored := storedOperPorts(t, r)
	r.Last = nil
	r.Start() // the sandbox is not kept: everything goes
	if len(stored["ea"]) != 0 || !slices.Equal(stored["eb"], moved) {
		t.Fatalf("records claim ea %v, eb %v; want ea none, eb %v", stored["ea"], stored["eb"], moved)
	}
}

// A Join killed after it moved the default route to the new endpoint's
// gateway: the restart rolls the join back, and the default route, which
// went with the interface, is put back via the remaining gateway, so the
// live container keeps a way out.
func TestCrashDuringJoinRestoresDefaultRoute(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	na := testrig.BridgeNet(t, c, "a", "cnmjra0", "10.99.3.0/24")
	nb := testrig.BridgeNet(t, c, "b", "cnmjrb0", "10.99.4.0/24")
	ea := testrig.Must[*libnetwork.Endpoint](t)(na.CreateEndpoint("ea"))
	eb := testrig.Must[*libnetwork.Endpoint](t)(nb.CreateEndpoint("eb"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := ea.Join(sb); err != nil {
		t.Fatal(err)
	}
	if err := eb.Join(sb, libnetwork.JoinOptionPriority(10)); err != nil {
		t.Fatal(err)
	}
	_, h := testrig.SandboxNS(t, sb)
	if gw := testrig.DefaultGateway(t, h); gw != "10.99.4.1" {
		t.Fatalf("default gateway %s, want b's", gw)
	}
	r.Last.Stop()
	// What the cut-short join left: eb recorded as joining, its interface
	// in the sandbox, the default route through it.
	testrig.EditRecord(t, r, records.KindEndpoint, eb.ID(), func(e *records.Endpoint) {
		e.State, e.Join = records.Joining, nil
	})
	r.Last = nil
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := testrig.LinkNames(t, h); strings.Join(got, ",") != "eth0,lo" {
		t.Fatalf("sandbox links after restart: %v, want eth0 and lo", got)
	}
	if gw := testrig.DefaultGateway(t, h); gw != "10.99.3.1" {
		t.Fatalf("default gateway after restart %q, want a's 10.99.3.1", gw)
	}
}

// A Leave killed after it moved the gateway, the default route and the
// published ports to the sandbox's other endpoint, but before it took the
// interface down: its intent record makes the restart finish it, so the
// container ends up as the Leave meant, not half-way.
func TestCrashDuringGatewayLeaveRollsForward(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	na := testrig.BridgeNet(t, c, "a", "cnmlfa0", "10.99.5.0/24")
	nb := testrig.BridgeNet(t, c, "b", "cnmlfb0", "10.99.6.0/24")
	ea := testrig.Must[*libnetwork.Endpoint](t)(na.CreateEndpoint("ea"))
	eb := testrig.Must[*libnetwork.Endpoint](t)(nb.CreateEndpoint("eb"))
	ports := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 30080}}
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c", libnetwork.OptionPortMapping(ports)))
	if err := ea.Join(sb, libnetwork.JoinOptionPriority(10)); err != nil {
		t.Fatal(err)
	}
	if err := eb.Join(sb); err != nil {
		t.Fatal(err)
	}
	if got := testrig.PortsOf(t, ea); len(got) != 1 {
		t.Fatalf("gateway ea publishes %v", got)
	}
	ns, h := testrig.SandboxNS(t, sb)
	r.Last.Stop()
	// What the leave of ea had done: intent recorded, default route via b.
	testrig.EditRecord(t, r, records.KindEndpoint, ea.ID(), func(e *records.Endpoint) { e.State = records.Leaving })
	if err := ns.Do(func() error {
		return exec.Command("ip", "route", "replace", "default", "via", "10.99.6.1").Run()
	}); err != nil {
		t.Fatal(err)
	}
	r.Last = nil
	keep := config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{libnetwork.OptionPortMapping(ports)}})
	c = r.Start(keep)
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rsb := testrig.Must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID()))
	if eps := rsb.Endpoints(); len(eps) != 1 || eps[0].Name() != "eb" {
		t.Fatalf("sandbox endpoints after restart: %v, want eb only", eps)
	}
	if got := testrig.AddrsOf(t, h, "eth1"); len(got) != 1 || got[0] != eb.Info().Iface().Address().String() {
		t.Fatalf("eth1 addresses %v", got)
	}
	if got := testrig.LinkNames(t, h); strings.Join(got, ",") != "eth1,lo" {
		t.Fatalf("sandbox links after restart: %v, want eth1 and lo", got)
	}
	if gw := testrig.DefaultGateway(t, h); gw != "10.99.6.1" {
		t.Fatalf("default gateway %q, want b's 10.99.6.1", gw)
	}
	reb := rsb.Endpoints()[0]
	if got := testrig.PortsOf(t, reb); len(got) != 1 || !strings.HasSuffix(got[0], ":30080") {
		t.Fatalf("eb publishes %v, want the sandbox's 30080", got)
	}
	testrig.HostLinksSettle(t, r.Host, "lo", "cnmlfa0", "cnmlfb0", vethOf(t, r, reb))
	// The records follow: ea left, eb holds the port; another restart
	// changes nothing.
	r.Last.Stop()
	stored := storedOperPorts(t, r)
	r.Last = nil
	c = r.Start(keep)
	if len(stored["ea"]) != 0 || len(stored["eb"]) != 1 {
		t.Fatalf("records claim ea %v, eb %v", stored["ea"], stored["eb"])
	}
	if err := c.RestoreError(); err != nil {
		t.Fatalf("second restore: %v", err)
	}
	reb = testrig.Must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID())).Endpoints()[0]
	if again := testrig.PortsOf(t, reb); !slices.Equal(again, stored["eb"]) {
		t.Fatalf("after a second restart eb publishes %v, want %v", again, stored["eb"])
	}
}

// vethOf is the name of the host veth of a joined endpoint.
func vethOf(t *testing.T, r *testrig.Restartable, ep *libnetwork.Endpoint) string {
	t.Helper()
	l := testrig.HostLinkByAlias(t, r.Host.Netlink, "opencnm:ep:"+ep.ID())
	if len(l) != 1 {
		t.Fatalf("endpoint %s has %d tagged veths", ep.Name(), len(l))
	}
	return l[0].Attrs().Name
}

// A restored gateway with no recorded ports (it took over from an
// endpoint whose leave the restart finished) publishes only after every
// sandbox is back: a port chosen for it at once could be one a sandbox
// restored after it still holds by record, which would then fail to come
// back ("port is already allocated"). Sandboxes are restored in no fixed
// order, so three of them take over to make a wrong order near-certain.
func TestRestartPublishesTakenOverPortsLast(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	na := testrig.BridgeNet(t, c, "a", "cnmpla0", "10.99.7.0/24")
	nb := testrig.BridgeNet(t, c, "b", "cnmplb0", "10.99.8.0/24")
	auto := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	keep := map[string]any{}
	// The first port chosen in a fresh namespace is the range's first:
	// "holder" keeps it by record across the restart.
	he := testrig.Must[*libnetwork.Endpoint](t)(na.CreateEndpoint("holder"))
	hsb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("holder", libnetwork.OptionPortMapping(auto)))
	if err := he.Join(hsb); err != nil {
		t.Fatal(err)
	}
	held := testrig.PortsOf(t, he)
	keep[hsb.ID()] = []libnetwork.SandboxOption{libnetwork.OptionPortMapping(auto)}
	// Three containers whose gateway's leave was cut short.
	var leavers []*libnetwork.Endpoint
	for i := 0; i < 3; i++ {
		ea := testrig.Must[*libnetwork.Endpoint](t)(na.CreateEndpoint(fmt.Sprintf("ea%d", i)))
		eb := testrig.Must[*libnetwork.Endpoint](t)(nb.CreateEndpoint(fmt.Sprintf("eb%d", i)))
		sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox(fmt.Sprintf("c%d", i), libnetwork.OptionPortMapping(auto)))
		if err := ea.Join(sb, libnetwork.JoinOptionPriority(10)); err != nil {
			t.Fatal(err)
		}
		if err := eb.Join(sb); err != nil {
			t.Fatal(err)
		}
		leavers = append(leavers, ea)
		keep[sb.ID()] = []libnetwork.SandboxOption{libnetwork.OptionPortMapping(auto)}
	}
	r.Last.Stop()
	for _, ea := range leavers {
		testrig.EditRecord(t, r, records.KindEndpoint, ea.ID(), func(e *records.Endpoint) { e.State = records.Leaving })
	}
	r.Last = nil
	c = r.Start(config.OptionActiveSandboxes(keep))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if len(c.Sandboxes()) != 4 {
		t.Fatalf("%d sandboxes restored, want 4", len(c.Sandboxes()))
	}
	rhe := testrig.Must[*libnetwork.Endpoint](t)(testrig.Must[*libnetwork.Network](t)(c.NetworkByName("a")).EndpointByName("holder"))
	if got := testrig.PortsOf(t, rhe); !slices.Equal(got, held) {
		t.Fatalf("holder publishes %v after restart, want %v", got, held)
	}
	seen := map[string]bool{held[0]: true}
	for i := 0; i < 3; i++ {
		eb := testrig.Must[*libnetwork.Endpoint](t)(testrig.Must[*libnetwork.Network](t)(c.NetworkByName("b")).EndpointByName(fmt.Sprintf("eb%d", i)))
		got := testrig.PortsOf(t, eb)
		if len(got) != 1 || seen[got[0]] {
			t.Fatalf("eb%d publishes %v (already published: %v)", i, got, seen)
		}
		seen[got[0]] = true
	}
}

// A join that moved the gateway and then failed (here the new gateway's
// own port is taken) moves it back, and the old gateway publishes its
// chosen port anew, on another host port; its record must name the new
// host port, or a restart would publish one the container does not have.
func TestFailedJoinRecordsRestoredGateway(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	na := testrig.BridgeNet(t, c, "a", "cnmfja0", "10.99.9.0/24")
	nb := testrig.BridgeNet(t, c, "b", "cnmfjb0", "10.99.10.0/24")
	fixed := []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 30090}}
	he := testrig.Must[*libnetwork.Endpoint](t)(nb.CreateEndpoint("holder"))
	hsb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("holder", libnetwork.OptionPortMapping(fixed)))
	if err := he.Join(hsb); err != nil {
		t.Fatal(err)
	}
	auto := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	ea := testrig.Must[*libnetwork.Endpoint](t)(na.CreateEndpoint("ea"))
	eb := testrig.Must[*libnetwork.Endpoint](t)(nb.CreateEndpoint("eb", libnetwork.CreateOptionPortMapping(fixed)))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c", libnetwork.OptionPortMapping(auto)))
	if err := ea.Join(sb); err != nil {
		t.Fatal(err)
	}
	if err := eb.Join(sb, libnetwork.JoinOptionPriority(10)); !types.IsForbidden(err) {
		t.Fatalf("join taking a held port: want Forbidden, got %v", err)
	}
	now := testrig.PortsOf(t, ea)
	if len(now) != 1 {
		t.Fatalf("ea publishes %v after the failed join", now)
	}
	r.Last.Stop()
	stored := storedOperPorts(t, r)
	r.Last = nil
	c = r.Start(config.OptionActiveSandboxes(map[string]any{
		sb.ID():  []libnetwork.SandboxOption{libnetwork.OptionPortMapping(auto)},
		hsb.ID(): []libnetwork.SandboxOption{libnetwork.OptionPortMapping(fixed)},
	}))
	if !slices.Equal(stored["ea"], now) || len(stored["eb"]) != 0 {
		t.Fatalf("records claim ea %v, eb %v; ea publishes %v", stored["ea"], stored["eb"], now)
	}
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rea := testrig.Must[*libnetwork.Endpoint](t)(testrig.Must[*libnetwork.Network](t)(c.NetworkByName("a")).EndpointByName("ea"))
	if got := testrig.PortsOf(t, rea); !slices.Equal(got, now) {
		t.Fatalf("after restart ea publishes %v, want %v", got, now)
	}
}

// A host process took a live container's recorded host port while the
// controller was down: the restart keeps the container (its interface and
// namespace untouched), publishes the port anew on another host port, and
// says what happened in RestoreError instead of tearing the container's
// network down.
func TestRestartKeepsSandboxWhosePortWasTaken(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmtaken0", "10.94.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("web"))
	ports := []types.PortBinding{{Proto: types.TCP, Port: 80}} // host port chosen
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("web", libnetwork.OptionPortMapping(ports)))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	hostPort := testrig.PublishedPort(t, ep)
	ns, h := testrig.SandboxNS(t, sb)
	eth0 := testrig.Must[netlink.Link](t)(h.LinkByName("eth0"))
	testrig.Serve(t, ns, "tcp", testrig.HostIP(ep.Info().Iface().Address())+":80", "web")

	r.Last.Stop()
	r.Last = nil
	var squatter net.Listener
	if err := r.Host.Do(func() (err error) {
		squatter, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", hostPort))
		return err
	}); err != nil {
		t.Fatalf("taking port %d while the controller is down: %v", hostPort, err)
	}
	defer squatter.Close()

	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{libnetwork.OptionPortMapping(ports)}}))
	if err := c.RestoreError(); err == nil || !strings.Contains(err.Error(), strconv.Itoa(int(hostPort))) {
		t.Fatalf("RestoreError = %v, want one naming port %d", err, hostPort)
	}
	if _, err := c.SandboxByID(sb.ID()); err != nil {
		t.Fatalf("the container's sandbox was dropped: %v", err)
	}
	if got := testrig.Must[netlink.Link](t)(h.LinkByName("eth0")); got.Attrs().Index != eth0.Attrs().Index {
		t.Fatalf("eth0 changed across the restart: ifindex %d -> %d", eth0.Attrs().Index, got.Attrs().Index)
	}
	rep := testrig.Must[*libnetwork.Endpoint](t)(testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net")).EndpointByName("web"))
	newPort := testrig.PublishedPort(t, rep)
	if newPort == hostPort {
		t.Fatalf("still reports the taken port %d", hostPort)
	}
	testrig.MustFetch(t, r.Host.NS, "tcp", fmt.Sprintf("127.0.0.1:%d", newPort), "web")
}
