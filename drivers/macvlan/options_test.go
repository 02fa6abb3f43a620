package macvlan

import (
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
	"github.com/opencnm/libnetwork/types"
)

// fakeDriver is a driver over an in-memory host with eth0 (mtu 1500),
// eth1, and lo; its 8021q probe answers probeErr.
func fakeDriver(t *testing.T, probeErr error) (*Driver, *fakeLinks) {
	t.Helper()
	f := newFakeLinks()
	f.addDevice("lo", 65536, nil, net.FlagLoopback|net.FlagUp)
	f.addDevice("eth0", 1500, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, net.FlagUp)
	f.addDevice("eth1", 9000, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 2}, net.FlagUp)
	f.addDevice("tun0", 1500, nil, net.FlagUp)
	d := newDriver(nil, f)
	d.vlan.probe = func() error { return probeErr }
	return d, f
}

func netReq(nid string, opts map[string]string) driverapi.CreateNetworkRequest {
	return driverapi.CreateNetworkRequest{NetworkID: nid, Options: map[string]any{netlabel.GenericData: opts},
		IPv4Data: []driverapi.IPAMData{{Pool: mustNet("192.0.2.0/24"), Gateway: mustNet("192.0.2.1/24")}}}
}

func mustNet(s string) *net.IPNet {
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	n.IP = ip
	return n
}

func TestCapability(t *testing.T) {
	c := Capability()
	if c.DataScope != driverapi.LocalScope || c.ConnectivityScope != driverapi.GlobalScope {
		t.Fatalf("capability %+v: want local data, global connectivity", c)
	}
}

func TestBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  map[string]string
		class func(error) bool
		msg   string
	}{
		{"unknown mode", map[string]string{ParentOpt: "eth0", ModeOpt: "l2"}, types.IsBadRequest, "unknown mode"},
		{"mode case", map[string]string{ParentOpt: "eth0", ModeOpt: "Bridge"}, types.IsBadRequest, "unknown mode"},
		{"lo", map[string]string{ParentOpt: "lo"}, types.IsBadRequest, "loopback"},
		{"missing parent", map[string]string{ParentOpt: "eth9"}, types.IsBadRequest, "does not exist"},
		{"not ethernet", map[string]string{ParentOpt: "tun0"}, types.IsBadRequest, "not an Ethernet"},
		{"bad name", map[string]string{ParentOpt: "eth+"}, types.IsBadRequest, "parent"},
		{"mtu above parent", map[string]string{ParentOpt: "eth0", netlabel.DriverMTU: "9000"}, types.IsBadRequest, "more than parent"},
		{"mtu not a number", map[string]string{ParentOpt: "eth0", netlabel.DriverMTU: "big"}, types.IsBadRequest, netlabel.DriverMTU},
		{"mtu too small", map[string]string{ParentOpt: "eth0", netlabel.DriverMTU: "20"}, types.IsBadRequest, "outside"},
		{"vlan of missing base", map[string]string{ParentOpt: "eth7.10"}, types.IsBadRequest, "eth7"},
		{"vlan sub-interface", map[string]string{ParentOpt: "eth0.10"}, types.IsNotImplemented, "8021q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, f := fakeDriver(t, errNo8021q)
			before := len(f.names())
			req := netReq("n1", tc.opts)
			for _, err := range []error{d.ValidateNetwork(req.NetworkID, req.Options), d.CreateNetwork(req)} {
				if !tc.class(err) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("got %v, want its class and %q in the message", err, tc.msg)
				}
			}
			if len(d.networks) != 0 || len(f.names()) != before {
				t.Fatalf("a refused create left state: networks %v, links %v", d.networks, f.names())
			}
		})
	}
}

func TestModes(t *testing.T) {
	want := map[string]netlink.MacvlanMode{"": netlink.MACVLAN_MODE_BRIDGE, "bridge": netlink.MACVLAN_MODE_BRIDGE,
		"private": netlink.MACVLAN_MODE_PRIVATE, "vepa": netlink.MACVLAN_MODE_VEPA, "passthru": netlink.MACVLAN_MODE_PASSTHRU}
	for mode, m := range want {
		c, err := parseNetworkOptions("n1", map[string]any{netlabel.GenericData: map[string]string{ParentOpt: "eth0", ModeOpt: mode}})
		if err != nil || c.mode() != m {
			t.Errorf("mode %q: got %v, %v; want %v", mode, c, err, m)
		}
	}
	// The struct form carries the same keys, the mtu as a number.
	c, err := parseNetworkOptions("n1", map[string]any{netlabel.GenericData: options.Generic{ParentOpt: "eth0", ModeOpt: "vepa", netlabel.DriverMTU: 1400}})
	if err != nil || c.Mode != ModeVEPA || c.Mtu != 1400 || c.Parent != "eth0" {
		t.Fatalf("options.Generic: got %+v, %v", c, err)
	}
}

// The sub-interface refusal names what is missing: the kernel feature
// when the probe says so, the driver's creation of it otherwise.
func TestSubInterfaceNotImplemented(t *testing.T) {
	d, _ := fakeDriver(t, nil)
	err := d.CreateNetwork(netReq("n1", map[string]string{ParentOpt: "eth0.10"}))
	if !types.IsNotImplemented(err) || !strings.Contains(err.Error(), "does not create VLAN sub-interfaces") {
		t.Fatalf("kernel with 8021q: got %v", err)
	}
	d, _ = fakeDriver(t, errNo8021q)
	err = d.CreateNetwork(netReq("n1", map[string]string{ParentOpt: "eth0.10"}))
	if !types.IsNotImplemented(err) || !errors.Is(err, errNo8021q) {
		t.Fatalf("kernel without 8021q: got %v", err)
	}
}

// An existing link is the parent as given, whatever its name.
func TestExistingDottedParent(t *testing.T) {
	d, f := fakeDriver(t, errNo8021q)
	f.addDevice("eth0.10", 1500, net.HardwareAddr{0x52, 0x54, 0, 0, 0, 3}, net.FlagUp)
	if err := d.CreateNetwork(netReq("n1", map[string]string{ParentOpt: "eth0.10"})); err != nil {
		t.Fatal(err)
	}
}

func TestParentInUse(t *testing.T) {
	d, _ := fakeDriver(t, nil)
	if err := d.CreateNetwork(netReq("n1", map[string]string{ParentOpt: "eth0"})); err != nil {
		t.Fatal(err)
	}
	err := d.CreateNetwork(netReq("n2", map[string]string{ParentOpt: "eth0", ModeOpt: "private"}))
	if !types.IsForbidden(err) || !strings.Contains(err.Error(), "n1") {
		t.Fatalf("second network on eth0: got %v, want Forbidden naming n1", err)
	}
	if err := d.CreateNetwork(netReq("n3", map[string]string{ParentOpt: "eth1"})); err != nil {
		t.Fatalf("another parent: %v", err)
	}
	if err := d.DeleteNetwork("n1"); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(netReq("n2", map[string]string{ParentOpt: "eth0"})); err != nil {
		t.Fatalf("eth0 after its network went: %v", err)
	}
}

func TestInternalStandIn(t *testing.T) {
	d, f := fakeDriver(t, nil)
	if err := d.CreateNetwork(netReq("n1", nil)); err != nil {
		t.Fatal(err)
	}
	parent, peer := standInNames("n1")
	for _, name := range []string{parent, peer} {
		l, err := f.LinkByName(name)
		if err != nil || l.Attrs().Alias != networkTag("n1") || l.Attrs().Flags&net.FlagUp == 0 {
			t.Fatalf("stand-in %s: %v, %v", name, l, err)
		}
	}
	if !d.networks["n1"].cfg.Internal {
		t.Fatal("a network without parent is not internal")
	}
	// A restore creates it again: the tagged pair is taken back.
	d2 := newDriver(nil, f)
	if err := d2.CreateNetwork(netReq("n1", nil)); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if err := d2.DeleteNetwork("n1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.LinkByName(parent); !isLinkNotFound(err) {
		t.Fatalf("stand-in left after delete: %v", err)
	}
}

func TestPublishedPortsRefused(t *testing.T) {
	d, _ := fakeDriver(t, nil)
	if err := d.CreateNetwork(netReq("n1", map[string]string{ParentOpt: "eth0"})); err != nil {
		t.Fatal(err)
	}
	ports := map[string]any{netlabel.PortMap: []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}}
	_, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1", Options: ports})
	if !types.IsBadRequest(err) {
		t.Fatalf("endpoint publishing ports: got %v, want BadRequest", err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Join(driverapi.JoinRequest{NetworkID: "n1", EndpointID: "e1", Options: ports}); !types.IsBadRequest(err) {
		t.Fatalf("sandbox publishing ports: got %v, want BadRequest", err)
	}
}

func TestChosenMAC(t *testing.T) {
	d, _ := fakeDriver(t, nil)
	if err := d.CreateNetwork(netReq("n1", map[string]string{ParentOpt: "eth0"})); err != nil {
		t.Fatal(err)
	}
	got, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1",
		Interface: driverapi.Interface{Address: mustNet("192.0.2.7/24")}})
	if err != nil || got == nil || len(got.MacAddress) != 6 || got.MacAddress[0]&3 != 2 {
		t.Fatalf("chosen MAC: %v, %v; want a unicast locally administered one", got, err)
	}
	info, err := d.EndpointOperInfo("n1", "e1")
	if err != nil || info[netlabel.MacAddress].(net.HardwareAddr).String() != got.MacAddress.String() {
		t.Fatalf("oper info %v, %v: not the chosen MAC %s", info, err, got.MacAddress)
	}
	if err := d.CreateNetwork(netReq("n2", map[string]string{ParentOpt: "eth1", ModeOpt: "passthru"})); err != nil {
		t.Fatal(err)
	}
	got, err = d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n2", EndpointID: "e2"})
	if err != nil || got.MacAddress.String() != "52:54:00:00:00:02" {
		t.Fatalf("passthru MAC: %v, %v; want the parent's", got, err)
	}
	_, err = d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n2", EndpointID: "e3",
		Interface: driverapi.Interface{MacAddress: net.HardwareAddr{2, 0, 0, 0, 0, 9}}})
	if !types.IsBadRequest(err) {
		t.Fatalf("passthru with another MAC: got %v, want BadRequest", err)
	}
}

// A stand-in that cannot be tagged is not kept: the create fails and
// leaves no link and no network.
func TestStandInUndo(t *testing.T) {
	d, f := fakeDriver(t, nil)
	before := len(f.names())
	f.failAlias = errors.New("injected")
	if err := d.CreateNetwork(netReq("n1", nil)); !types.IsInternal(err) || !strings.Contains(err.Error(), "injected") {
		t.Fatalf("got %v, want the injected failure", err)
	}
	if len(f.names()) != before || len(d.networks) != 0 {
		t.Fatalf("failed create left links %v, networks %v", f.names(), d.networks)
	}
}

// Each address must be of its own family.
func TestAddressFamilies(t *testing.T) {
	d, _ := fakeDriver(t, nil)
	if err := d.CreateNetwork(netReq("n1", map[string]string{ParentOpt: "eth0"})); err != nil {
		t.Fatal(err)
	}
	for _, in := range []driverapi.Interface{{Address: mustNet("2001:db8::7/64")}, {AddressIPv6: mustNet("192.0.2.7/24")}} {
		if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1", Interface: in}); !types.IsBadRequest(err) {
			t.Fatalf("endpoint with %+v: got %v, want BadRequest", in, err)
		}
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1",
		Interface: driverapi.Interface{Address: mustNet("192.0.2.7/24"), AddressIPv6: mustNet("2001:db8::7/64")}}); err != nil {
		t.Fatal(err)
	}
}
