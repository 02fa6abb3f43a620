package bridgeflow

import (
	"net"
	"slices"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// The bridge options below were only tested as parsed values; these tests
// check what each one does to the kernel.

// uplinkHostB is a second address of the host on the test uplink.
const uplinkHostB = "192.0.2.3"

// host_binding_ipv4: a port published without a host IP answers on that
// address only, not on the host's other addresses (nor its loopback); a
// binding that names its own host IP keeps it.
func TestBridgeDefaultBindingIP(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	up, err := r.Host.Netlink.LinkByName("uplink")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Host.Netlink.AddrAdd(up, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(uplinkHostB), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	n := r.BridgeNet(t, "bindip", "10.61.0.0/24",
		libnetwork.NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.host_binding_ipv4": uplinkHostB}))
	c := r.MustRun(t, n, "c1", nil, libnetwork.OptionPortMapping([]types.PortBinding{
		testrig.TCP(80, 8080),
		{Proto: types.TCP, Port: 80, HostIP: net.ParseIP(testrig.UplinkHost), HostPort: 8081},
	}))
	testrig.Serve(t, c.NS, "tcp", ":80", "c1")

	testrig.MustFetch(t, r.Out.NS, "tcp", testrig.HostPort(uplinkHostB, 8080), "c1")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8080))
	testrig.MustNotFetch(t, r.Host.NS, "tcp", testrig.HostPort("127.0.0.1", 8080))
	// The binding with its own host IP is not moved to the default.
	testrig.MustFetch(t, r.Out.NS, "tcp", testrig.HostPort(testrig.UplinkHost, 8081), "c1")
	testrig.MustNotFetch(t, r.Out.NS, "tcp", testrig.HostPort(uplinkHostB, 8081))

	info, err := c.Endpoint.DriverInfo()
	if err != nil {
		t.Fatal(err)
	}
	pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
	var got []string
	for _, pb := range pbs {
		got = append(got, testrig.HostPort(pb.HostIP.String(), pb.HostPort))
	}
	slices.Sort(got)
	if want := []string{testrig.HostPort(testrig.UplinkHost, 8081), testrig.HostPort(uplinkHostB, 8080)}; !slices.Equal(got, want) {
		t.Fatalf("DriverInfo port map host addresses %v, want %v", got, want)
	}
	c.Stop(t)
}

// inhibit_ipv4: the bridge carries no IPv4 address, while containers get
// theirs and reach each other across it.
func TestBridgeInhibitIPv4(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	n := r.BridgeNet(t, "inhibit", "10.62.0.0/24", libnetwork.NetworkOptionDriverOpts(map[string]string{
		"com.docker.network.bridge.name":         "br-inhibit",
		"com.docker.network.bridge.inhibit_ipv4": "true",
	}))
	if got := testrig.AddrsOf(t, r.Host.Netlink, "br-inhibit"); len(got) != 0 {
		t.Fatalf("bridge with inhibit_ipv4 has IPv4 addresses %v", got)
	}
	c1 := r.MustRun(t, n, "c1", nil)
	c2 := r.MustRun(t, n, "c2", nil)
	for _, c := range []*testrig.Container{c1, c2} {
		_, h := testrig.SandboxNS(t, c.Sandbox)
		want := c.Endpoint.Info().Iface().Address().String()
		if got := testrig.AddrsOf(t, h, "eth0"); !slices.Equal(got, []string{want}) {
			t.Fatalf("%s: eth0 addresses %v, want %s", c.Endpoint.Name(), got, want)
		}
	}
	testrig.Serve(t, c2.NS, "tcp", ":80", "c2")
	if peer := testrig.MustFetch(t, c1.NS, "tcp", testrig.HostPort(c2.IP, 80), "c2"); peer != c1.IP {
		t.Fatalf("c2 saw c1 as %s, want %s", peer, c1.IP)
	}
	if got := testrig.AddrsOf(t, r.Host.Netlink, "br-inhibit"); len(got) != 0 {
		t.Fatalf("bridge with inhibit_ipv4 got IPv4 addresses %v once containers joined", got)
	}
	c1.Stop(t)
	c2.Stop(t)
}

// container_iface_prefix: a container's interface in that network is
// <prefix>0 inside its namespace, carrying the endpoint's address and MAC;
// its interface in a network without the option is still eth0.
func TestBridgeContainerIfacePrefix(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	lan := r.BridgeNet(t, "lan", "10.63.0.0/24",
		libnetwork.NetworkOptionDriverOpts(map[string]string{"com.docker.network.container_iface_prefix": "lan"}))
	other := r.BridgeNet(t, "other", "10.64.0.0/24")
	c := r.MustRun(t, lan, "c1", nil)
	ep2, err := other.CreateEndpoint("c1-other")
	if err != nil {
		t.Fatal(err)
	}
	if err := ep2.Join(c.Sandbox); err != nil {
		t.Fatal(err)
	}

	_, h := testrig.SandboxNS(t, c.Sandbox)
	if got := testrig.LinkNames(t, h); !slices.Equal(got, []string{"eth0", "lan0", "lo"}) {
		t.Fatalf("sandbox links %v, want eth0, lan0, lo", got)
	}
	l, err := h.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.Attrs().HardwareAddr.String(), c.Endpoint.Info().Iface().MacAddress().String(); got != want {
		t.Fatalf("lan0 MAC %s, want the endpoint's %s", got, want)
	}
	if got, want := testrig.AddrsOf(t, h, "lan0"), c.Endpoint.Info().Iface().Address().String(); !slices.Equal(got, []string{want}) {
		t.Fatalf("lan0 addresses %v, want %s", got, want)
	}
	if got, want := testrig.AddrsOf(t, h, "eth0"), ep2.Info().Iface().Address().String(); !slices.Equal(got, []string{want}) {
		t.Fatalf("eth0 addresses %v, want %s", got, want)
	}
	// Traffic leaves through lan0: the host reaches the container there.
	testrig.Serve(t, c.NS, "tcp", ":80", "c1")
	testrig.MustFetch(t, r.Host.NS, "tcp", testrig.HostPort(c.IP, 80), "c1")

	if err := ep2.Leave(c.Sandbox); err != nil {
		t.Fatal(err)
	}
	if err := ep2.Delete(false); err != nil {
		t.Fatal(err)
	}
	c.Stop(t)
}
