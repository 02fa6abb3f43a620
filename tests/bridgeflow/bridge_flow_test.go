package bridgeflow

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// The README flow, checked inside the kernel, then torn down to nothing.
func TestReadmeFlowInKernel(t *testing.T) {
	t.Parallel()
	c, host := testrig.NewPrivController(t)
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("bridge", "network1", ""))
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("Endpoint1"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("container1",
		libnetwork.OptionHostname("test"), libnetwork.OptionDomainname("example.com")))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}

	info := testrig.Must[map[string]any](t)(ep.DriverInfo())
	mac, ok := info[netlabel.MacAddress].(net.HardwareAddr)
	if !ok {
		t.Fatalf("DriverInfo has no MAC: %v", info)
	}
	wantKey := filepath.Join(c.Config().ExecRoot, "netns", sb.ID()[:12])
	if sb.Key() != wantKey {
		t.Fatalf("Key() = %s, want %s", sb.Key(), wantKey)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(sb.Key(), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		t.Fatalf("Key() is not a namespace file: %v (fs type %#x)", err, st.Type)
	}

	// What Info() says is what the kernel has.
	_, h := testrig.SandboxNS(t, sb)
	if got := testrig.LinkNames(t, h); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Fatalf("sandbox links = %v", got)
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	epi := ep.Info()
	if eth0.Attrs().HardwareAddr.String() != mac.String() || epi.Iface().MacAddress().String() != mac.String() {
		t.Fatalf("MAC: kernel %s, DriverInfo %s, Info %s", eth0.Attrs().HardwareAddr, mac, epi.Iface().MacAddress())
	}
	if eth0.Attrs().Flags&net.FlagUp == 0 {
		t.Fatal("eth0 is down")
	}
	if got := testrig.AddrsOf(t, h, "eth0"); !slices.Equal(got, []string{epi.Iface().Address().String()}) {
		t.Fatalf("eth0 addresses %v, Info says %s", got, epi.Iface().Address())
	}
	if gw := testrig.DefaultGateway(t, h); gw == "" || gw != epi.Gateway().String() {
		t.Fatalf("default route via %q, Info().Gateway() = %s", gw, epi.Gateway())
	}
	v4, _ := n.Info().IpamInfo()
	if !v4[0].Gateway.IP.Equal(epi.Gateway()) || !v4[0].Pool.Contains(epi.Iface().Address().IP) {
		t.Fatalf("gateway %s / address %s do not match pool %+v", epi.Gateway(), epi.Iface().Address(), v4[0])
	}
	// The bridge carries the gateway address in the host namespace.
	brName := "br-" + n.ID()[:12]
	if got := testrig.AddrsOf(t, host.Netlink, brName); !slices.Equal(got, []string{v4[0].Gateway.String()}) {
		t.Fatalf("bridge %s addresses %v, want %s", brName, got, v4[0].Gateway)
	}
	// The hosts file names the container.
	hosts := testrig.ReadSandboxFile(t, c, sb, "hosts")
	if want := testrig.HostIP(epi.Iface().Address()) + "\ttest.example.com test"; !strings.Contains(hosts, want) {
		t.Fatalf("hosts file lacks %q:\n%s", want, hosts)
	}

	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sb.Key()); !os.IsNotExist(err) {
		t.Fatalf("namespace file still there after Delete: %v", err)
	}
	if _, err := n.EndpointByName("Endpoint1"); !types.IsNotFound(err) {
		t.Fatalf("sandbox Delete did not delete its endpoint: %v", err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	testrig.HostLinksSettle(t, host, "lo")
	if entries, _ := os.ReadDir(filepath.Join(c.Config().ExecRoot, "files")); len(entries) != 0 {
		t.Fatalf("sandbox files left: %v", entries)
	}
}

func TestTwoContainersExchangeTCP(t *testing.T) {
	t.Parallel()
	c, _ := testrig.NewPrivController(t)
	n := testrig.BridgeNet(t, c, "net", "cnmtcp0", "10.77.0.0/24")
	var nss []*netnsutil.NS
	var addrs []string
	var eps []*libnetwork.Endpoint
	var sbs []*libnetwork.Sandbox
	for _, name := range []string{"c1", "c2"} {
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint(name))
		sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox(name))
		if err := ep.Join(sb); err != nil {
			t.Fatal(err)
		}
		eps, sbs = append(eps, ep), append(sbs, sb)
		ns, _ := testrig.SandboxNS(t, sb)
		nss = append(nss, ns)
		addrs = append(addrs, testrig.HostIP(ep.Info().Iface().Address()))
	}
	testrig.Serve(t, nss[0], "tcp", addrs[0]+":7000", "c1")
	reply, err := testrig.FetchWithin(nss[1], "tcp", addrs[0]+":7000", 3*time.Second)
	if err != nil {
		t.Fatalf("c2 -> c1: %v", err)
	}
	if !strings.HasPrefix(reply, "c1 "+addrs[1]+":") {
		t.Fatalf("reply %q: want it from c1 and seen as coming from %s", reply, addrs[1])
	}
	// A leave cuts c1 off at once, long before the reaper deletes its veth
	// (c2 still has c1's MAC cached, so only a dead port stops the SYN).
	if err := eps[0].Leave(sbs[0]); err != nil {
		t.Fatal(err)
	}
	err = nss[1].Do(func() error {
		conn, err := net.DialTimeout("tcp", addrs[0]+":7000", 300*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err
	})
	if err == nil {
		t.Fatal("c2 still reaches c1's address after c1 left")
	}
}

func TestSandboxOnTwoNetworks(t *testing.T) {
	t.Parallel()
	c, host := testrig.NewPrivController(t)
	a := testrig.BridgeNet(t, c, "a", "cnma0", "10.78.1.0/24")
	b := testrig.BridgeNet(t, c, "b", "cnmb0", "10.78.2.0/24")
	epA := testrig.Must[*libnetwork.Endpoint](t)(a.CreateEndpoint("ca"))
	epB := testrig.Must[*libnetwork.Endpoint](t)(b.CreateEndpoint("cb"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := epA.Join(sb); err != nil {
		t.Fatal(err)
	}
	if err := epB.Join(sb, libnetwork.JoinOptionPriority(5)); err != nil {
		t.Fatal(err)
	}
	_, h := testrig.SandboxNS(t, sb)
	if got := testrig.LinkNames(t, h); !slices.Equal(got, []string{"eth0", "eth1", "lo"}) {
		t.Fatalf("links %v", got)
	}
	// The higher-priority endpoint provides the default route.
	if gw := testrig.DefaultGateway(t, h); gw != epB.Info().Gateway().String() {
		t.Fatalf("default gateway %s, want b's %s", gw, epB.Info().Gateway())
	}
	if eps := sb.Endpoints(); len(eps) != 2 || eps[0] != epB {
		t.Fatalf("endpoint order %v", eps)
	}
	// Both endpoints report the same sandbox.
	if epA.Info().Sandbox() != sb || epB.Info().Sandbox() != sb {
		t.Fatal("Info().Sandbox() differs")
	}
	stats := testrig.Must[map[string]*types.InterfaceStatistics](t)(sb.Statistics())
	if _, ok := stats["eth0"]; !ok || len(stats) != 2 {
		t.Fatalf("Statistics() = %v", stats)
	}

	if err := epB.Leave(sb); err != nil {
		t.Fatal(err)
	}
	if got := testrig.LinkNames(t, h); slices.Contains(got, "eth1") || !slices.Contains(got, "eth0") {
		t.Fatalf("after leaving b: links %v", got)
	}
	if gw := testrig.DefaultGateway(t, h); gw != epA.Info().Gateway().String() {
		t.Fatalf("gateway did not move to a: %q", gw)
	}
	// Leaving frees the name: a rejoin gets eth1 again at once.
	if err := epB.Join(sb); err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*libnetwork.Network{a, b} {
		if err := n.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	testrig.HostLinksSettle(t, host, "lo")
}

func TestExternalKeySandbox(t *testing.T) {
	t.Parallel()
	c, host := testrig.NewPrivController(t)
	n := testrig.BridgeNet(t, c, "net", "cnmext0", "10.79.0.0/24")
	n2 := testrig.BridgeNet(t, c, "net2", "cnmext1", "10.79.1.0/24")
	ep1 := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e1"))
	ep2 := testrig.Must[*libnetwork.Endpoint](t)(n2.CreateEndpoint("e2"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c", libnetwork.OptionUseExternalKey()))
	if err := sb.SetKey(""); !types.IsBadRequest(err) {
		t.Fatalf("SetKey(\"\"): want BadRequest, got %v", err)
	}
	// Joined before the runtime has a namespace: the interface waits in the host.
	if err := ep1.Join(sb); err != nil {
		t.Fatal(err)
	}
	runtimeNS := testutil.NewNamedNS(t, "runtime")
	if err := sb.SetKey(runtimeNS.Path()); err != nil {
		t.Fatal(err)
	}
	if err := ep2.Join(sb); err != nil {
		t.Fatal(err)
	}
	// Both interfaces are in the runtime's own namespace (seen through its
	// own handle, not through the key).
	if got := testrig.LinkNames(t, runtimeNS.Netlink); !slices.Equal(got, []string{"eth0", "eth1", "lo"}) {
		t.Fatalf("runtime namespace links %v", got)
	}
	if got := testrig.AddrsOf(t, runtimeNS.Netlink, "eth0"); !slices.Equal(got, []string{ep1.Info().Iface().Address().String()}) {
		t.Fatalf("eth0 addresses %v", got)
	}
	if gw := testrig.DefaultGateway(t, runtimeNS.Netlink); gw != ep1.Info().Gateway().String() {
		t.Fatalf("default gateway %q", gw)
	}
	if err := sb.Delete(); err != nil {
		t.Fatal(err)
	}
	// The runtime's namespace lives on; our key is gone, and so are the
	// interfaces: detached at once, not left up until the reaper runs.
	if _, err := os.Stat(sb.Key()); !os.IsNotExist(err) {
		t.Fatalf("key still there: %v", err)
	}
	if got := testrig.LinkNames(t, runtimeNS.Netlink); !onlyTombstones(got) {
		t.Fatalf("runtime namespace links after Delete: %v", got)
	}
	for _, nw := range []*libnetwork.Network{n, n2} {
		if err := nw.Delete(); err != nil {
			t.Fatal(err)
		}
	}
	testrig.HostLinksSettle(t, host, "lo")
}

func TestHostDriverUsesDefaultSandbox(t *testing.T) {
	t.Parallel()
	c, host := testrig.NewPrivController(t)
	n := testrig.Must[*libnetwork.Network](t)(c.NewNetwork("host", "host", ""))
	var sbs []*libnetwork.Sandbox
	for _, name := range []string{"h1", "h2"} {
		ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint(name))
		sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox(name, libnetwork.OptionUseDefaultSandbox()))
		if err := ep.Join(sb); err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(c.Config().ExecRoot, "netns", "default"); sb.Key() != want {
			t.Fatalf("Key() = %s, want %s", sb.Key(), want)
		}
		sbs = append(sbs, sb)
	}
	// The key is the host namespace itself.
	ns, err := netnsutil.Open(sbs[0].Key())
	if err != nil {
		t.Fatal(err)
	}
	same := ns.Handle().Equal(host.Handle())
	ns.Close()
	if !same {
		t.Fatal("default sandbox key is not the host namespace")
	}
	testrig.HostLinksSettle(t, host, "lo")
	if err := sbs[0].Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sbs[1].Key()); err != nil {
		t.Fatalf("shared key removed while still used: %v", err)
	}
	if err := sbs[1].Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sbs[1].Key()); !os.IsNotExist(err) {
		t.Fatalf("shared key left after the last user: %v", err)
	}
}

// A join that fails after the driver made the veth leaves nothing behind.
func TestJoinFailureLeavesNothing(t *testing.T) {
	t.Parallel()
	c, host := testrig.NewPrivController(t)
	n := testrig.BridgeNet(t, c, "net", "cnmfail0", "10.80.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	_, h := testrig.SandboxNS(t, sb)
	// A route covering the endpoint's subnet makes the address conflict.
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	_, dst, _ := net.ParseCIDR("10.80.0.0/16")
	if err := h.RouteAdd(testrig.LinkRoute(lo.Attrs().Index, dst)); err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); err == nil {
		t.Fatal("join succeeded despite the conflicting route")
	}
	if ep.Info().Sandbox() != nil || len(sb.Endpoints()) != 0 {
		t.Fatal("failed join left the endpoint joined")
	}
	if got := testrig.LinkNames(t, h); !slices.Equal(got, []string{"lo"}) && !onlyTombstones(got) {
		t.Fatalf("failed join left links in the sandbox: %v", got)
	}
	testrig.HostLinksSettle(t, host, "lo", "cnmfail0")
	// And the endpoint can join once the conflict is gone.
	if err := h.RouteDel(testrig.LinkRoute(lo.Attrs().Index, dst)); err != nil {
		t.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		t.Fatalf("join after the conflict was removed: %v", err)
	}
}

func onlyTombstones(names []string) bool {
	for _, n := range names {
		if n != "lo" && !strings.HasPrefix(n, "gone") {
			return false
		}
	}
	return true
}
