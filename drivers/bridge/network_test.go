package bridge

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

func readSysctl(t testing.TB, d *Driver, path string) string {
	t.Helper()
	var v string
	err := d.host.Do(func() error {
		b, err := os.ReadFile(filepath.Join("/proc/sys", path))
		v = strings.TrimSpace(string(b))
		return err
	})
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return v
}

func TestNewEnablesForwarding(t *testing.T) {
	d, _ := newTestDriver(t, nil)
	if v := readSysctl(t, d, "net/ipv4/ip_forward"); v != "1" {
		t.Fatalf("ip_forward = %s, want 1", v)
	}
	if d.Type() != "bridge" || Capability().DataScope != driverapi.LocalScope || Capability().ConnectivityScope != driverapi.LocalScope {
		t.Fatal("type or capability wrong")
	}
	if _, err := New(nil, nil); !types.IsBadRequest(err) {
		t.Fatalf("New(nil): want BadRequest, got %v", err)
	}
}

func TestCreateDeleteNetwork(t *testing.T) {
	d, host := newTestDriver(t, nil)
	req := netReq(t, "net1aaaaaaaaaaaaaaaa", "10.1.0.1/24", map[string]string{netlabel.DriverMTU: "1400"})
	req.Options[netlabel.EnableIPv6] = true
	req.IPv6Data = []driverapi.IPAMData{{Pool: mustCIDR(t, "fd00:1::/64"), Gateway: mustCIDR(t, "fd00:1::1/64")}}
	if err := d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	br, err := host.Netlink.LinkByName("br-net1aaaaaaaa")
	if err != nil {
		t.Fatalf("bridge missing: %v", err)
	}
	if _, ok := br.(*netlink.Bridge); !ok {
		t.Fatalf("link is a %s", br.Type())
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		t.Fatal("bridge is down")
	}
	if br.Attrs().MTU != 1400 {
		t.Fatalf("mtu %d", br.Attrs().MTU)
	}
	if br.Attrs().HardwareAddr.String() != "02:42:0a:01:00:01" {
		t.Fatalf("bridge mac %s", br.Attrs().HardwareAddr)
	}
	state := hostState(t, host.Netlink)
	for _, want := range []string{"10.1.0.1/24", "fe80::1/64", "fd00:1::1/64"} {
		if !strings.Contains(state, want) {
			t.Fatalf("bridge lacks %s:\n%s", want, state)
		}
	}
	if v := readSysctl(t, d, "net/ipv6/conf/br-net1aaaaaaaa/accept_ra"); v != "0" {
		t.Fatalf("accept_ra %s", v)
	}
	if v := readSysctl(t, d, "net/ipv4/conf/br-net1aaaaaaaa/route_localnet"); v != "1" {
		t.Fatalf("route_localnet %s", v)
	}
	if v := readSysctl(t, d, "net/ipv6/conf/all/forwarding"); v != "1" {
		t.Fatalf("ipv6 forwarding %s", v)
	}

	if err := d.CreateNetwork(req); !types.IsForbidden(err) {
		t.Fatalf("duplicate id: want Forbidden, got %v", err)
	}
	if err := d.DeleteNetwork(req.NetworkID); err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, host.Netlink); len(names) != 1 || names[0] != "lo" {
		t.Fatalf("links left: %v", names)
	}
	// Already gone is success.
	if err := d.DeleteNetwork(req.NetworkID); err != nil {
		t.Fatalf("second delete: %v", err)
	}
}

func TestPreexistingBridgeSurvives(t *testing.T) {
	d, host := newTestDriver(t, nil)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "mybr0"
	mine := &netlink.Bridge{LinkAttrs: attrs}
	if err := host.Netlink.LinkAdd(mine); err != nil {
		t.Fatal(err)
	}
	if err := host.Netlink.AddrAdd(mine, &netlink.Addr{IPNet: mustCIDR(t, "192.168.50.1/24")}); err != nil {
		t.Fatal(err)
	}
	before := hostState(t, host.Netlink)

	req := netReq(t, "net2", "10.2.0.1/24", map[string]string{BridgeName: "mybr0"})
	if err := d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	if s := hostState(t, host.Netlink); !strings.Contains(s, "mybr0 up=true master=0 192.168.50.1/24 10.2.0.1/24") {
		t.Fatalf("adopted bridge not configured:\n%s", s)
	}
	if err := d.DeleteNetwork("net2"); err != nil {
		t.Fatal(err)
	}
	if after := hostState(t, host.Netlink); after != before {
		t.Fatalf("pre-existing bridge not restored:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if v := readSysctl(t, d, "net/ipv4/conf/mybr0/route_localnet"); v != "0" {
		t.Fatalf("route_localnet not restored: %s", v)
	}

	// A non-bridge link of the configured name is refused.
	va := netlink.NewLinkAttrs()
	va.Name = "notabr"
	if err := host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: va, PeerName: "notabr-p"}); err != nil {
		t.Fatal(err)
	}
	err := d.CreateNetwork(netReq(t, "net3", "10.3.0.1/24", map[string]string{BridgeName: "notabr"}))
	if !types.IsForbidden(err) {
		t.Fatalf("non-bridge link: want Forbidden, got %v", err)
	}
}

func TestNetworkConflicts(t *testing.T) {
	d, host := newTestDriver(t, nil)
	base := netReq(t, "neta", "10.10.0.1/16", map[string]string{BridgeName: "cnm-a"})
	base.Options[netlabel.EnableIPv6] = true
	base.IPv6Data = []driverapi.IPAMData{{Pool: mustCIDR(t, "fd00:a::/64"), Gateway: mustCIDR(t, "fd00:a::1/64")}}
	if err := d.CreateNetwork(base); err != nil {
		t.Fatal(err)
	}
	v6 := func(r driverapi.CreateNetworkRequest, pool string) driverapi.CreateNetworkRequest {
		r.IPv6Data = []driverapi.IPAMData{{Pool: mustCIDR(t, pool)}}
		return r
	}
	tests := []struct {
		name string
		req  driverapi.CreateNetworkRequest
		want func(error) bool
	}{
		{"same bridge name", netReq(t, "netb", "10.20.0.1/24", map[string]string{BridgeName: "cnm-a"}), types.IsForbidden},
		{"subnet inside", netReq(t, "netb", "10.10.5.1/24", nil), types.IsForbidden},
		{"subnet around", netReq(t, "netb", "10.0.0.1/8", nil), types.IsForbidden},
		{"v6 overlap", v6(netReq(t, "netb", "10.30.0.1/24", nil), "fd00:a::/48"), types.IsForbidden},
		{"null ipam", driverapi.CreateNetworkRequest{NetworkID: "netb", IPv4Data: []driverapi.IPAMData{{Pool: mustCIDR(t, "0.0.0.0/0")}}}, types.IsBadRequest},
		{"no ipam", driverapi.CreateNetworkRequest{NetworkID: "netb"}, types.IsBadRequest},
		{"default bridge must exist", netReq(t, "netb", "10.40.0.1/24", map[string]string{DefaultBridge: "true", BridgeName: "mydef0"}), types.IsForbidden},
	}
	for _, tt := range tests {
		err := d.CreateNetwork(tt.req)
		if !tt.want(err) {
			t.Errorf("%s: wrong error class: %v", tt.name, err)
		}
		if err != nil && strings.Contains(tt.name, "overlap") && !strings.Contains(err.Error(), "neta") {
			t.Errorf("%s: error does not name the other network: %v", tt.name, err)
		}
	}
	if names := linkNames(t, host.Netlink); strings.Join(names, ",") != "cnm-a,lo" {
		t.Fatalf("failed creates left links: %v", names)
	}
	// After delete the subnet and name are free again.
	if err := d.DeleteNetwork("neta"); err != nil {
		t.Fatal(err)
	}
	if err := d.CreateNetwork(netReq(t, "netb", "10.10.5.1/24", map[string]string{BridgeName: "cnm-a"})); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteNetwork("netb"); err != nil {
		t.Fatal(err)
	}
}

func TestCreateParallelSameSubnet(t *testing.T) {
	d, host := newTestDriver(t, nil)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.CreateNetwork(netReq(t, fmt.Sprintf("par%02d", i), "10.99.0.1/24", nil))
		}()
	}
	wg.Wait()
	ok := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if ok >= 0 {
				t.Fatalf("both par%02d and par%02d succeeded", ok, i)
			}
			ok = i
		case !types.IsForbidden(err):
			t.Errorf("par%02d: want Forbidden, got %v", i, err)
		}
	}
	if ok < 0 {
		t.Fatal("no create succeeded")
	}
	if names := linkNames(t, host.Netlink); len(names) != 2 {
		t.Fatalf("want lo and one bridge, got %v", names)
	}
	if err := d.DeleteNetwork(fmt.Sprintf("par%02d", ok)); err != nil {
		t.Fatal(err)
	}
}

// An adopted bridge keeps its MAC as ports with lower MACs join: the
// gateway's MAC must not change under the containers' neighbour caches.
func TestAdoptedBridgeMACIsPinned(t *testing.T) {
	d, host := newTestDriver(t, nil)
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "pinbr0"
	if err := host.Netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
		t.Fatal(err)
	}
	br, err := host.Netlink.LinkByName("pinbr0")
	if err != nil {
		t.Fatal(err)
	}
	mac := br.Attrs().HardwareAddr.String()
	if err := d.CreateNetwork(netReq(t, joinNID, "10.17.0.1/24", map[string]string{BridgeName: "pinbr0"})); err != nil {
		t.Fatal(err)
	}
	// A port whose MAC is lower than any random one the bridge can have.
	va := netlink.NewLinkAttrs()
	va.Name = "lowmac"
	va.HardwareAddr = net.HardwareAddr{0, 0, 0, 0, 0, 1}
	va.MasterIndex = br.Attrs().Index
	if err := host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: va, PeerName: "lowmac-p"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = host.Netlink.LinkDel(&netlink.Veth{LinkAttrs: va}) })
	if err := host.Netlink.LinkSetUp(&netlink.Veth{LinkAttrs: va}); err != nil {
		t.Fatal(err)
	}
	br, err = host.Netlink.LinkByName("pinbr0")
	if err != nil {
		t.Fatal(err)
	}
	if got := br.Attrs().HardwareAddr.String(); got != mac {
		t.Fatalf("adopted bridge MAC changed from %s to %s when a port joined", mac, got)
	}
	if err := d.DeleteNetwork(joinNID); err != nil {
		t.Fatal(err)
	}
}
