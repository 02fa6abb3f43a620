package overlay

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// unitDriver is a driver for tests that do no kernel work: its host
// namespace is never used, so it needs no root.
func unitDriver(t *testing.T) *Driver {
	t.Helper()
	d, err := New(&netnsutil.NS{}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.DiscoverNew(driverapi.NodeDiscovery, driverapi.NodeDiscoveryData{Address: "192.168.100.1", Self: true}); err != nil {
		t.Fatal(err)
	}
	return d
}

func generic(kv ...string) map[string]any {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return map[string]any{netlabel.GenericData: m}
}

func TestOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts map[string]any
		want driverapi.ClusterIDRequest
		bad  func(error) bool
	}{
		{"none", nil, driverapi.ClusterIDRequest{Count: 1, Min: 4096, Max: 1<<24 - 1}, nil},
		{"vni", generic(VXLANIDListOpt, "4242"), driverapi.ClusterIDRequest{Fixed: []uint32{4242}}, nil},
		{"vni spaced", generic(VXLANIDListOpt, " 7 "), driverapi.ClusterIDRequest{Fixed: []uint32{7}}, nil},
		{"mtu", generic(netlabel.DriverMTU, "1400"), driverapi.ClusterIDRequest{Count: 1, Min: 4096, Max: 1<<24 - 1}, nil},
		{"two vnis", generic(VXLANIDListOpt, "4242,4243"), driverapi.ClusterIDRequest{}, types.IsNotImplemented},
		{"vni zero", generic(VXLANIDListOpt, "0"), driverapi.ClusterIDRequest{}, types.IsBadRequest},
		{"vni too big", generic(VXLANIDListOpt, "16777216"), driverapi.ClusterIDRequest{}, types.IsBadRequest},
		{"vni not a number", generic(VXLANIDListOpt, "x"), driverapi.ClusterIDRequest{}, types.IsBadRequest},
		{"vni empty item", generic(VXLANIDListOpt, "5,"), driverapi.ClusterIDRequest{}, types.IsBadRequest},
		{"mtu small", generic(netlabel.DriverMTU, "67"), driverapi.ClusterIDRequest{}, types.IsBadRequest},
		{"mtu junk", generic(netlabel.DriverMTU, "big"), driverapi.ClusterIDRequest{}, types.IsBadRequest},
		{"unknown key", generic("com.docker.network.bridge.name", "x"), driverapi.ClusterIDRequest{}, types.IsBadRequest},
		{"encrypted", generic(EncryptedOpt, ""), driverapi.ClusterIDRequest{}, types.IsNotImplemented},
		{"bad generic type", map[string]any{netlabel.GenericData: 3}, driverapi.ClusterIDRequest{}, types.IsBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := unitDriver(t)
			got, err := d.ClusterIDs("n", tc.opts)
			verr := d.ValidateNetwork("n", tc.opts)
			if tc.bad != nil {
				if !tc.bad(err) || !tc.bad(verr) {
					t.Fatalf("ClusterIDs: %v; ValidateNetwork: %v; want both of the class", err, verr)
				}
				return
			}
			if err != nil || verr != nil {
				t.Fatalf("ClusterIDs: %v; ValidateNetwork: %v", err, verr)
			}
			if !slices.Equal(got.Fixed, tc.want.Fixed) || got.Count != tc.want.Count || got.Min != tc.want.Min || got.Max != tc.want.Max {
				t.Fatalf("ClusterIDs = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func netRequest(nid string, vnis ...uint32) driverapi.CreateNetworkRequest {
	_, pool, _ := net.ParseCIDR("10.0.0.0/24")
	_, pool6, _ := net.ParseCIDR("fd00:db8::/64")
	return driverapi.CreateNetworkRequest{NetworkID: nid, ClusterIDs: vnis,
		IPv4Data: []driverapi.IPAMData{{Pool: pool}}, IPv6Data: []driverapi.IPAMData{{Pool: pool6}}}
}

func TestCreateNetworkRefusals(t *testing.T) {
	d := unitDriver(t)
	_, pool2, _ := net.ParseCIDR("10.0.1.0/24")
	twoPools := netRequest("n4", 4100)
	twoPools.IPv4Data = append(twoPools.IPv4Data, driverapi.IPAMData{Pool: pool2})
	mismatch := netRequest("n5", 4100)
	mismatch.Options = generic(VXLANIDListOpt, "4101")
	for _, tc := range []struct {
		name string
		req  driverapi.CreateNetworkRequest
		is   func(error) bool
	}{
		{"no cluster IDs", netRequest("n1"), types.IsForbidden},
		{"two cluster IDs", netRequest("n2", 4100, 4101), types.IsNotImplemented},
		{"VNI out of range", netRequest("n3", 1<<24), types.IsBadRequest},
		{"two IPv4 pools", twoPools, types.IsNotImplemented},
		{"VNI not the option's", mismatch, types.IsBadRequest},
		{"bad option", func() driverapi.CreateNetworkRequest {
			r := netRequest("n6", 4100)
			r.Options = generic("foo", "bar")
			return r
		}(), types.IsBadRequest},
	} {
		if err := d.CreateNetwork(tc.req); !tc.is(err) {
			t.Errorf("%s: got %v", tc.name, err)
		}
	}
	if err := d.CreateNetwork(netRequest("ok", 4100)); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(netRequest("ok", 4100)); !types.IsForbidden(err) {
		t.Errorf("duplicate network: want Forbidden, got %v", err)
	}

	// Without a VTEP (no Self node, or it was withdrawn) nothing is created.
	self := driverapi.NodeDiscoveryData{Address: "192.168.100.1", Self: true}
	if err := d.DiscoverDelete(driverapi.NodeDiscovery, self); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(netRequest("novtep", 4102)); !types.IsForbidden(err) {
		t.Errorf("no VTEP: want Forbidden, got %v", err)
	}
}

func TestDiscovery(t *testing.T) {
	d := unitDriver(t)
	other := driverapi.NodeDiscoveryData{Address: "192.168.100.9"}
	if err := d.DiscoverNew(driverapi.NodeDiscovery, other); err != nil {
		t.Fatal(err)
	}
	if err := d.DiscoverNew(driverapi.NodeDiscovery, &driverapi.NodeDiscoveryData{Address: "192.168.100.2", Self: true}); err != nil {
		t.Fatal(err)
	}
	if got := d.localVTEP(); got != netip.MustParseAddr("192.168.100.2") {
		t.Fatalf("VTEP = %v after the Self announcement; other hosts' must not count", got)
	}
	if err := d.DiscoverDelete(driverapi.NodeDiscovery, driverapi.NodeDiscoveryData{Address: "192.168.100.2"}); err != nil {
		t.Fatal(err)
	}
	if !d.localVTEP().IsValid() {
		t.Fatal("withdrawing another host's node cleared this host's VTEP")
	}
	for _, bad := range []any{driverapi.NodeDiscoveryData{Address: "nope", Self: true}, driverapi.NodeDiscoveryData{Address: "0.0.0.0", Self: true}, 42} {
		if err := d.DiscoverNew(driverapi.NodeDiscovery, bad); !types.IsBadRequest(err) {
			t.Errorf("DiscoverNew(%v): want BadRequest, got %v", bad, err)
		}
	}
}

func TestEndpointMAC(t *testing.T) {
	d := unitDriver(t)
	if err := d.CreateNetwork(netRequest("n", 4100)); err != nil {
		t.Fatal(err)
	}
	addr := &net.IPNet{IP: net.ParseIP("10.0.0.2").To4(), Mask: net.CIDRMask(24, 32)}
	macs := map[string]bool{}
	for _, eid := range []string{"e1", "e2"} {
		got, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n", EndpointID: eid,
			Interface: driverapi.Interface{Address: addr}})
		if err != nil {
			t.Fatal(err)
		}
		mac := got.MacAddress
		if len(mac) != 6 || mac[0]&1 != 0 || mac[0]&2 == 0 {
			t.Fatalf("chosen MAC %s is not unicast and locally administered", mac)
		}
		macs[mac.String()] = true
		info, err := d.EndpointOperInfo("n", eid)
		if err != nil || info[netlabel.MacAddress].(net.HardwareAddr).String() != mac.String() {
			t.Fatalf("EndpointOperInfo = %v, %v; want MAC %s", info, err, mac)
		}
	}
	if len(macs) != 2 {
		t.Fatalf("two endpoints with the same address got the same MAC %v: it must not derive from the address", macs)
	}
	given := net.HardwareAddr{0x02, 0, 0, 0, 0, 7}
	got, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n", EndpointID: "e3",
		Interface: driverapi.Interface{Address: addr, MacAddress: given}})
	if err != nil || got != nil {
		t.Fatalf("CreateEndpoint with a MAC = %v, %v; want nothing chosen", got, err)
	}
	for name, in := range map[string]driverapi.Interface{
		"no address":    {},
		"multicast MAC": {Address: addr, MacAddress: net.HardwareAddr{1, 0, 0, 0, 0, 1}},
		"IPv4 as IPv6":  {AddressIPv6: addr},
		"IPv6 as IPv4":  {Address: &net.IPNet{IP: net.ParseIP("fd00::2"), Mask: net.CIDRMask(64, 128)}},
	} {
		if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n", EndpointID: "bad", Interface: in}); !types.IsBadRequest(err) {
			t.Errorf("%s: want BadRequest, got %v", name, err)
		}
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "gone", EndpointID: "x", Interface: driverapi.Interface{Address: addr}}); !types.IsNotFound(err) {
		t.Errorf("endpoint of an unknown network: want NotFound, got %v", err)
	}
}

func TestPublishedPortsRefused(t *testing.T) {
	d := unitDriver(t)
	if err := d.CreateNetwork(netRequest("n", 4100)); err != nil {
		t.Fatal(err)
	}
	addr := &net.IPNet{IP: net.ParseIP("10.0.0.2").To4(), Mask: net.CIDRMask(24, 32)}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n", EndpointID: "e", Interface: driverapi.Interface{Address: addr}}); err != nil {
		t.Fatal(err)
	}
	ports := map[string]any{netlabel.PortMap: []types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}}
	if _, err := d.Join(driverapi.JoinRequest{NetworkID: "n", EndpointID: "e", SandboxKey: "/nonexistent", Options: ports}); !types.IsBadRequest(err) {
		t.Fatalf("Join publishing a port: want BadRequest, got %v", err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n", EndpointID: "e2", Interface: driverapi.Interface{Address: addr}, Options: ports}); !types.IsBadRequest(err) {
		t.Fatalf("CreateEndpoint publishing a port: want BadRequest, got %v", err)
	}
}

func peer(eid, vtep, v4 string, mac byte) driverapi.Peer {
	return driverapi.Peer{EndpointID: eid, VTEP: netip.MustParseAddr(vtep), IPv4: netip.MustParseAddr(v4),
		MAC: net.HardwareAddr{0x02, 0x11, 0, 0, 0, mac}}
}

func peerIDs(d *Driver, nid string) []string {
	n := d.network(nid)
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []string
	for _, p := range n.peerList() {
		ids = append(ids, p.ID)
	}
	return ids
}

// The controller reports peers whether or not this host has endpoints
// on the network: they are kept for the data plane the first Join builds.
func TestPeersKeptWithoutDataPlane(t *testing.T) {
	d := unitDriver(t)
	if err := d.CreateNetwork(netRequest("n", 4100)); err != nil {
		t.Fatal(err)
	}
	if err := d.PeerAdd("n", peer("p1", "192.168.100.2", "10.0.0.2", 1)); err != nil {
		t.Fatal(err)
	}
	if err := d.PeerAdd("n", peer("p2", "192.168.100.3", "10.0.0.3", 2)); err != nil {
		t.Fatal(err)
	}
	if got := peerIDs(d, "n"); !slices.Equal(got, []string{"p1", "p2"}) {
		t.Fatalf("peers = %v", got)
	}
	if d.network("n").dp != nil {
		t.Fatal("a peer built the data plane; only a local Join may")
	}
	if err := d.PeerDelete("n", "p1"); err != nil {
		t.Fatal(err)
	}
	if err := d.PeerDelete("n", "never"); err != nil {
		t.Fatalf("PeerDelete of an unknown peer: %v", err)
	}
	if got := peerIDs(d, "n"); !slices.Equal(got, []string{"p2"}) {
		t.Fatalf("peers after PeerDelete = %v", got)
	}
	if err := d.PeerSync("n", []driverapi.Peer{peer("p3", "192.168.100.4", "10.0.0.4", 3)}); err != nil {
		t.Fatal(err)
	}
	if got := peerIDs(d, "n"); !slices.Equal(got, []string{"p3"}) {
		t.Fatalf("peers after PeerSync = %v", got)
	}
	if err := d.PeerSync("n", nil); err != nil {
		t.Fatal(err)
	}
	if got := peerIDs(d, "n"); len(got) != 0 {
		t.Fatalf("peers after PeerSync(nil) = %v", got)
	}

	bad := map[string]driverapi.Peer{
		"no ID":         peer("", "192.168.100.2", "10.0.0.2", 1),
		"this host":     peer("x", "192.168.100.1", "10.0.0.2", 1),
		"IPv6 VTEP":     peer("x", "fd00::2", "10.0.0.2", 1),
		"no address":    {EndpointID: "x", VTEP: netip.MustParseAddr("192.168.100.2"), MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}},
		"multicast MAC": {EndpointID: "x", VTEP: netip.MustParseAddr("192.168.100.2"), IPv4: netip.MustParseAddr("10.0.0.2"), MAC: net.HardwareAddr{1, 0, 0, 0, 0, 1}},
	}
	for name, p := range bad {
		if err := d.PeerAdd("n", p); !types.IsBadRequest(err) {
			t.Errorf("PeerAdd %s: want BadRequest, got %v", name, err)
		}
	}
	dup := peer("d", "192.168.100.2", "10.0.0.2", 1)
	if err := d.PeerSync("n", []driverapi.Peer{dup, dup}); !types.IsBadRequest(err) {
		t.Errorf("PeerSync with a peer twice: want BadRequest, got %v", err)
	}
	if err := d.PeerAdd("gone", peer("p", "192.168.100.2", "10.0.0.2", 1)); !types.IsNotFound(err) {
		t.Errorf("PeerAdd to an unknown network: want NotFound, got %v", err)
	}
	if err := d.DeleteNetwork("n"); err != nil {
		t.Fatal(err)
	}
	if err := d.PeerAdd("n", peer("p1", "192.168.100.2", "10.0.0.2", 1)); !types.IsNotFound(err) {
		t.Errorf("PeerAdd after DeleteNetwork: want NotFound, got %v", err)
	}
}

// New takes the logger and the repair period; any other key, as a
// daemon label com.docker.network.driver.overlay.* is one, is BadRequest,
// as is a repair period that is not a positive duration.
func TestNewRefusesUnknownConfig(t *testing.T) {
	for _, cfg := range []map[string]any{
		{netlabel.DriverPrefix + ".overlay.vxlan_port": "4790"},
		{"bogus": true},
		{knobs.OverlayRepairEvery: "1s"},
		{knobs.OverlayRepairEvery: time.Duration(0)},
		{netlabel.Logger: "stderr"},
	} {
		d, err := New(&netnsutil.NS{}, t.TempDir(), cfg)
		if err == nil {
			_ = d.Close()
		}
		if !types.IsBadRequest(err) {
			t.Errorf("New(%v): %v; want BadRequest", cfg, err)
		}
	}
	d, err := New(&netnsutil.NS{}, t.TempDir(), map[string]any{netlabel.Logger: slog.Default(), knobs.OverlayRepairEvery: time.Minute})
	if err != nil {
		t.Fatalf("New with a logger and a repair period: %v", err)
	}
	_ = d.Close()
	if d.every != time.Minute {
		t.Fatalf("repair period %v; want 1m", d.every)
	}
}

// Without a VTEP, ValidateNetwork refuses as CreateNetwork would, so the
// controller claims nothing for the network.
func TestValidateNetworkNeedsVTEP(t *testing.T) {
	d, err := New(&netnsutil.NS{}, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if err := d.ValidateNetwork("n", nil); !types.IsForbidden(err) {
		t.Fatalf("ValidateNetwork without a VTEP: %v; want Forbidden", err)
	}
	if err := d.DiscoverNew(driverapi.NodeDiscovery, driverapi.NodeDiscoveryData{Address: "192.168.100.1", Self: true}); err != nil {
		t.Fatal(err)
	}
	if err := d.ValidateNetwork("n", nil); err != nil {
		t.Fatalf("ValidateNetwork with a VTEP: %v", err)
	}
}
