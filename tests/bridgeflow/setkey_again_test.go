package bridgeflow

import (
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// runtimeNS is a namespace a runtime made for one container start, held
// by a mount the test removes when the "container" ends.
type runtimeNS struct {
	path string
	ns   *netnsutil.NS
	nl   *netlink.Handle
}

func newRuntimeNS(t *testing.T, name string) *runtimeNS {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	ns, err := netnsutil.New(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	r := &runtimeNS{path: path, ns: ns, nl: h}
	t.Cleanup(r.end)
	return r
}

// end is the container exiting: its namespace is no longer held by it.
func (r *runtimeNS) end() {
	if r.nl != nil {
		r.nl.Close()
		r.ns.Close()
		_ = netnsutil.Remove(r.path)
		r.nl = nil
	}
}

// A runtime that makes a fresh namespace at every container start calls
// SetKey again on restart: the sandbox moves there with its endpoint
// re-plumbed (same MAC and address, default route, published host port,
// resolver at 127.0.0.11), the old namespace keeps no working interface,
// and a controller restart after that restores the sandbox in the new one.
// Once with the old namespace gone (the container exited), once with it
// still held.
func TestSetKeyAgain(t *testing.T) {
	t.Parallel()
	for _, oldKept := range []bool{false, true} {
		t.Run(fmt.Sprintf("oldKept=%v", oldKept), func(t *testing.T) { testSetKeyAgain(t, oldKept) })
	}
}

func testSetKeyAgain(t *testing.T, oldKept bool) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "rekey", "cnmrekey0", "10.79.3.0/24")
	srvSb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("srv"))
	srv := testrig.Joined(t, n, srvSb, "srv")
	srvNS, _ := testrig.SandboxNS(t, srvSb)
	testrig.Serve(t, srvNS, "tcp", ":7000", "srv")

	ports := libnetwork.OptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80}})
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("rt", libnetwork.OptionUseExternalKey(), ports))
	ep := testrig.Joined(t, n, sb, "web")
	ns1 := newRuntimeNS(t, "start1")
	if err := sb.SetKey(ns1.path); err != nil {
		t.Fatal(err)
	}
	mac := ep.Info().Iface().MacAddress().String()
	addr := ep.Info().Iface().Address().String()
	gw := ep.Info().Gateway().String()
	hostPort := testrig.PublishedPort(t, ep)
	testrig.MustFetch(t, ns1.ns, "tcp", net.JoinHostPort(testrig.EpIP(srv), "7000"), "srv")
	testrig.Expect(t, ns1.ns, "udp", "srv", dns.TypeA, testrig.EpIP(srv))

	ns2 := newRuntimeNS(t, "start2")
	if !oldKept {
		ns1.end()
	}
	if err := sb.SetKey(ns2.path); err != nil {
		t.Fatalf("second SetKey: %v", err)
	}
	check := func(step string, ep *libnetwork.Endpoint) {
		t.Helper()
		l, err := ns2.nl.LinkByName("eth0")
		if err != nil {
			t.Fatalf("%s: no eth0 in the new namespace: %v", step, err)
		}
		if got := l.Attrs().HardwareAddr.String(); got != mac {
			t.Fatalf("%s: MAC %s, want %s", step, got, mac)
		}
		if got := testrig.AddrsOf(t, ns2.nl, "eth0"); len(got) != 1 || got[0] != addr {
			t.Fatalf("%s: eth0 addresses %v, want %s", step, got, addr)
		}
		if got := testrig.DefaultGateway(t, ns2.nl); got != gw {
			t.Fatalf("%s: default gateway %q, want %s", step, got, gw)
		}
		if got := testrig.PublishedPort(t, ep); got != hostPort {
			t.Fatalf("%s: host port %d, want %d", step, got, hostPort)
		}
		testrig.MustFetch(t, ns2.ns, "tcp", net.JoinHostPort(testrig.EpIP(srv), "7000"), "srv")
		testrig.Expect(t, ns2.ns, "udp", "srv", dns.TypeA, testrig.EpIP(srv))
		testrig.MustFetch(t, r.Host.NS, "tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), "rt")
	}
	testrig.Serve(t, ns2.ns, "tcp", ":80", "rt")
	check("rekeyed", ep)
	if oldKept {
		if up := upWithAddress(t, ns1.nl); len(up) != 0 {
			t.Fatalf("the old namespace still has working interfaces: %v", up)
		}
	}

	// The controller restarts with the sandbox live: it is restored in
	// the namespace of the second SetKey.
	c = r.Start(config.OptionActiveSandboxes(map[string]any{
		sb.ID(): []libnetwork.SandboxOption{ports}, srvSb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rn := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("rekey"))
	check("restored", testrig.Must[*libnetwork.Endpoint](t)(rn.EndpointByName("web")))

	// A sandbox with a namespace of its own is not re-keyed.
	own := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("own"))
	if err := own.SetKey(ns2.path); !types.IsForbidden(err) {
		t.Fatalf("SetKey on a sandbox with its own namespace: want Forbidden, got %v", err)
	}
}

// flakyJoin is a fake driver whose next Join fails once when armed.
type flakyJoin struct {
	*drivertest.Fake
	armed atomic.Bool
}

func (f *flakyJoin) Join(req driverapi.JoinRequest) (*driverapi.JoinResult, error) {
	if f.armed.CompareAndSwap(true, false) {
		return nil, types.InternalErrorf("injected join failure")
	}
	return f.Fake.Join(req)
}

// A second SetKey that fails half-way (the second endpoint's driver
// refuses to join again) leaves the sandbox in its old namespace as it
// was: key, interface with its address and MAC, default route, resolver,
// both drivers joined; the new namespace keeps nothing working.
func TestSetKeyAgainUndo(t *testing.T) {
	t.Parallel()
	c, host := testrig.NewPrivController(t)
	flaky := &flakyJoin{Fake: drivertest.NewFake("flaky")}
	if err := c.RegisterDriver("flaky", flaky, driverapi.Capability{DataScope: "local", ConnectivityScope: "local"}); err != nil {
		t.Fatal(err)
	}
	n := testrig.BridgeNet(t, c, "undo", "cnmundo0", "10.79.4.0/24")
	fn := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("flaky", "flakynet", "",
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.79.5.0/24"}}, nil, nil)))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("rt", libnetwork.OptionUseExternalKey()))
	ep := testrig.Joined(t, n, sb, "web")
	testrig.Joined(t, fn, sb, "side")
	ns1 := newRuntimeNS(t, "start1")
	if err := sb.SetKey(ns1.path); err != nil {
		t.Fatal(err)
	}
	gw := ep.Info().Gateway().String()
	testrig.Serve(t, host.NS, "tcp", net.JoinHostPort(gw, "7001"), "gw")
	mac := ep.Info().Iface().MacAddress().String()
	before := inode(t, sb.Key())

	ns2 := newRuntimeNS(t, "start2")
	flaky.armed.Store(true)
	if err := sb.SetKey(ns2.path); err == nil {
		t.Fatal("second SetKey with a failing driver join succeeded")
	}
	if got := inode(t, sb.Key()); got != before {
		t.Fatalf("the key names namespace %d after the failed SetKey, want the old %d", got, before)
	}
	l, err := ns1.nl.LinkByName("eth0")
	if err != nil || l.Attrs().HardwareAddr.String() != mac {
		t.Fatalf("eth0 in the old namespace: %v, %v (want MAC %s)", l, err, mac)
	}
	if got := testrig.AddrsOf(t, ns1.nl, "eth0"); len(got) != 1 || got[0] != ep.Info().Iface().Address().String() {
		t.Fatalf("eth0 addresses in the old namespace: %v", got)
	}
	if got := testrig.DefaultGateway(t, ns1.nl); got != gw {
		t.Fatalf("default gateway in the old namespace: %q, want %s", got, gw)
	}
	if _, err := testrig.FetchWithin(ns1.ns, "tcp", net.JoinHostPort(gw, "7001"), 3*time.Second); err != nil {
		t.Fatalf("the old namespace no longer reaches its gateway: %v", err)
	}
	testrig.Expect(t, ns1.ns, "udp", "web", dns.TypeA, testrig.EpIP(ep))
	if up := upWithAddress(t, ns2.nl); len(up) != 0 {
		t.Fatalf("the new namespace kept working interfaces: %v", up)
	}
	if _, _, joins, _ := flaky.Counts(); joins != 1 {
		t.Fatalf("flaky driver holds %d joins, want 1", joins)
	}
	// And the next attempt works.
	if err := sb.SetKey(ns2.path); err != nil {
		t.Fatal(err)
	}
	if _, err := testrig.FetchWithin(ns2.ns, "tcp", net.JoinHostPort(gw, "7001"), 3*time.Second); err != nil {
		t.Fatalf("after a retried SetKey the new namespace does not reach the gateway: %v", err)
	}
}
