package bridge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

const joinNID = "joinnet0000000000000"

// joinEP creates endpoint eid with addr and joins it to sb.
func joinEP(t testing.TB, d *Driver, eid, addr string, sb *testutil.HostNS) (*driverapi.Interface, *driverapi.JoinResult) {
	t.Helper()
	chosen, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: eid,
		Interface: driverapi.Interface{Address: mustCIDR(t, addr)}})
	if err != nil {
		t.Fatalf("CreateEndpoint %s: %v", eid, err)
	}
	res, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: eid, SandboxKey: sb.Path(), IfaceName: ifname0})
	if err != nil {
		t.Fatalf("Join %s: %v", eid, err)
	}
	return chosen, res
}

// configure plays the sandbox's part: address on the interface, link up.
func configure(t testing.TB, sb *testutil.HostNS, name, addr string) {
	t.Helper()
	l, err := sb.Netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := sb.Netlink.AddrAdd(l, &netlink.Addr{IPNet: mustCIDR(t, addr)}); err != nil {
		t.Fatal(err)
	}
	if err := sb.Netlink.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

func TestJoinTrafficLeave(t *testing.T) {
	d, host := newTestDriver(t, nil)
	if err := d.CreateNetwork(netReq(t, joinNID, "10.5.0.1/24", map[string]string{netlabel.DriverMTU: "1400"})); err != nil {
		t.Fatal(err)
	}
	sb1, sb2 := testutil.NewNamedNS(t, "sb1"), testutil.NewNamedNS(t, "sb2")

	chosen, res := joinEP(t, d, "ep1", "10.5.0.2/24", sb1)
	if chosen == nil || chosen.MacAddress.String() != "02:42:0a:05:00:02" || chosen.AddressIPv6 != nil {
		t.Fatalf("chosen interface %+v", chosen)
	}
	if res.DstName != "eth0" || res.SrcName != "" || !res.Gateway.Equal(net.ParseIP("10.5.0.1")) || res.GatewayIPv6 != nil {
		t.Fatalf("join result %+v", res)
	}
	eth0, err := sb1.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatalf("eth0 not in sandbox: %v", err)
	}
	if eth0.Attrs().HardwareAddr.String() != "02:42:0a:05:00:02" || eth0.Attrs().MTU != 1400 {
		t.Fatalf("eth0 mac %s mtu %d", eth0.Attrs().HardwareAddr, eth0.Attrs().MTU)
	}
	br, err := host.Netlink.LinkByName("br-joinnet00000")
	if err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	hostName := d.networks[joinNID].endpoints["ep1"].hostIfName
	d.mu.Unlock()
	hostEnd, err := host.Netlink.LinkByName(hostName)
	if err != nil {
		t.Fatalf("host end %s missing: %v", hostName, err)
	}
	if !strings.HasPrefix(hostName, "veth") || len(hostName) != 11 {
		t.Fatalf("host end name %q", hostName)
	}
	if hostEnd.Attrs().MasterIndex != br.Attrs().Index || hostEnd.Attrs().Flags&net.FlagUp == 0 || hostEnd.Attrs().MTU != 1400 {
		t.Fatalf("host end attrs %+v", hostEnd.Attrs())
	}
	if pi, err := host.Netlink.LinkGetProtinfo(hostEnd); err != nil || !pi.Hairpin {
		t.Fatalf("hairpin not on: %+v %v", pi, err)
	}
	// The host end has no IPv6 (portIPv6Off): no address, no routes.
	if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
		var v []byte
		if err := host.Do(func() error {
			var err error
			v, err = os.ReadFile("/proc/sys/net/ipv6/conf/" + hostName + "/disable_ipv6")
			return err
		}); err != nil || strings.TrimSpace(string(v)) != "1" {
			t.Fatalf("host end disable_ipv6 = %q, %v; want 1", v, err)
		}
		if addrs, err := host.Netlink.AddrList(hostEnd, netlink.FAMILY_V6); err != nil || len(addrs) != 0 {
			t.Fatalf("host end IPv6 addresses %v %v", addrs, err)
		}
	}
	info, err := d.EndpointOperInfo(joinNID, "ep1")
	if err != nil || info[netlabel.MacAddress].(net.HardwareAddr).String() != "02:42:0a:05:00:02" {
		t.Fatalf("oper info %v %v", info, err)
	}

	// A second join of a joined endpoint is refused.
	if _, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "ep1", SandboxKey: sb2.Path(), IfaceName: ifname0}); !types.IsForbidden(err) {
		t.Fatalf("second join: want Forbidden, got %v", err)
	}

	// A pinned MAC is used as given and not reported back.
	pinned, _ := net.ParseMAC("02:00:00:00:be:ef")
	chosen, err = d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "ep2",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.5.0.3/24"), MacAddress: pinned}})
	if err != nil || chosen != nil {
		t.Fatalf("pinned mac: %+v %v", chosen, err)
	}
	if _, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "ep2", SandboxKey: sb2.Path(), IfaceName: ifname0}); err != nil {
		t.Fatal(err)
	}
	if l, err := sb2.Netlink.LinkByName("eth0"); err != nil || l.Attrs().HardwareAddr.String() != pinned.String() {
		t.Fatalf("sb2 eth0: %v %v", l, err)
	}

	configure(t, sb1, "eth0", "10.5.0.2/24")
	configure(t, sb2, "eth0", "10.5.0.3/24")
	exchangeTCP(t, sb1, sb2, "10.5.0.2")

	// Leave hands the host end to the reaper (cutting the container off
	// is the controller's detach of the container end); leaving again is
	// a no-op.
	if err := d.Leave(joinNID, "ep1"); err != nil {
		t.Fatal(err)
	}
	if l, err := host.Netlink.LinkByName(hostName); err == nil && l.Attrs().Group != ReapGroup {
		t.Fatalf("host end in group %#x after leave, want the reap group", l.Attrs().Group)
	}
	if err := d.Leave(joinNID, "ep1"); err != nil {
		t.Fatalf("second leave: %v", err)
	}
	// An immediate rejoin into the same sandbox gets eth0 again, even
	// while the old pair may still wait for the reaper.
	if _, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "ep1", SandboxKey: sb1.Path(), IfaceName: ifname0}); err != nil {
		t.Fatalf("rejoin: %v", err)
	}
	// The old pair is gone once the reaper has run.
	if err := d.reaper.flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Netlink.LinkByName(hostName); !isLinkNotFound(err) {
		t.Fatalf("old host end still there: %v", err)
	}
	if names := linkNames(t, sb1.Netlink); strings.Join(names, ",") != "eth0,lo" {
		t.Fatalf("sandbox links after rejoin: %v", names)
	}
	// DeleteEndpoint of a joined endpoint deletes its veth as well.
	for _, eid := range []string{"ep1", "ep2"} {
		if err := d.DeleteEndpoint(joinNID, eid); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.EndpointOperInfo(joinNID, "ep1"); !types.IsNotFound(err) {
		t.Fatalf("deleted endpoint info: want NotFound, got %v", err)
	}
	if err := d.DeleteEndpoint(joinNID, "ep1"); err != nil {
		t.Fatalf("second DeleteEndpoint: %v", err)
	}
	if err := d.DeleteNetwork(joinNID); err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, host.Netlink); strings.Join(names, ",") != "lo" {
		t.Fatalf("host links left: %v", names)
	}
}

// exchangeTCP runs a line echo server in server's namespace at ip and
// talks to it from client's namespace.
func exchangeTCP(t *testing.T, server, client *testutil.HostNS, ip string) {
	t.Helper()
	var ln net.Listener
	if err := server.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", net.JoinHostPort(ip, "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil {
			_, err = io.WriteString(c, "echo "+line)
		}
		done <- err
	}()
	var reply string
	err := client.Do(func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "hello\n"); err != nil {
			return err
		}
		reply, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("server: %v", err)
	}
	if reply != "echo hello\n" {
		t.Fatalf("reply %q", reply)
	}
}

func TestJoinWithoutSandboxKey(t *testing.T) {
	d, host := newTestDriver(t, nil)
	req := netReq(t, joinNID, "10.6.0.1/24", map[string]string{netlabel.ContainerIfacePrefix: "ctr"})
	req.Options[netlabel.EnableIPv6] = true
	req.IPv6Data = []driverapi.IPAMData{{Pool: mustCIDR(t, "fd00:6::/64"), Gateway: mustCIDR(t, "fd00:6::1/64")}}
	req.IPv4Data[0].AuxAddresses = map[string]*net.IPNet{auxDefaultGatewayIPv4: mustCIDR(t, "10.6.0.254/24")}
	if err := d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	chosen, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "ep1",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.6.0.2/24")}})
	if err != nil {
		t.Fatal(err)
	}
	if chosen.AddressIPv6 == nil || chosen.AddressIPv6.String() != "fd00:6::242:a06:2/64" {
		t.Fatalf("derived v6 %v", chosen.AddressIPv6)
	}
	res, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "ep1", IfaceName: ifname0})
	if err != nil {
		t.Fatal(err)
	}
	if res.DstName != "" || res.DstPrefix != "ctr" || !strings.HasPrefix(res.SrcName, "veth") {
		t.Fatalf("join result %+v", res)
	}
	if !res.Gateway.Equal(net.ParseIP("10.6.0.254")) || !res.GatewayIPv6.Equal(net.ParseIP("fd00:6::1")) {
		t.Fatalf("gateways %v %v", res.Gateway, res.GatewayIPv6)
	}
	peer, err := host.Netlink.LinkByName(res.SrcName)
	if err != nil {
		t.Fatalf("peer not in host: %v", err)
	}
	if peer.Attrs().HardwareAddr.String() != "02:42:0a:06:00:02" {
		t.Fatalf("peer mac %s", peer.Attrs().HardwareAddr)
	}
	if err := d.Leave(joinNID, "ep1"); err != nil {
		t.Fatal(err)
	}
	if err := d.reaper.flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := host.Netlink.LinkByName(res.SrcName); !isLinkNotFound(err) {
		t.Fatalf("peer still there after leave: %v", err)
	}
}

func TestEndpointErrors(t *testing.T) {
	d, _ := newTestDriver(t, nil)
	req := netReq(t, joinNID, "10.7.0.1/24", nil)
	req.Options[netlabel.EnableIPv6] = true
	req.IPv6Data = []driverapi.IPAMData{{Pool: mustCIDR(t, "fd00:7::/96"), Gateway: mustCIDR(t, "fd00:7::1/96")}}
	if err := d.CreateNetwork(req); err != nil {
		t.Fatal(err)
	}
	ce := func(nid, eid, addr string) error {
		in := driverapi.Interface{}
		if addr != "" {
			in.Address = mustCIDR(t, addr)
		}
		_, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: nid, EndpointID: eid, Interface: in})
		return err
	}
	for _, tc := range []struct {
		name string
		err  error
		want func(error) bool
	}{
		{"unknown network", ce("nope", "e", "10.7.0.2/24"), types.IsNotFound},
		{"no address", ce(joinNID, "e", ""), types.IsBadRequest},
		{"address outside", ce(joinNID, "e", "10.8.0.2/24"), types.IsBadRequest},
		{"v6 prefix too long to derive", ce(joinNID, "e", "10.7.0.2/24"), types.IsForbidden},
	} {
		if !tc.want(tc.err) {
			t.Errorf("%s: wrong class: %v", tc.name, tc.err)
		}
	}
	// With a v6 address given there is nothing to derive.
	_, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "e1",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.7.0.3/24"), AddressIPv6: mustCIDR(t, "fd00:7::3/96")}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "e1",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.7.0.4/24"), AddressIPv6: mustCIDR(t, "fd00:7::4/96")}}); !types.IsForbidden(err) {
		t.Fatalf("duplicate endpoint: want Forbidden, got %v", err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	if _, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "e1", SandboxKey: missing, IfaceName: ifname0}); !types.IsNotFound(err) {
		t.Fatalf("missing sandbox: want NotFound, got %v", err)
	}
	if _, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "nope"}); !types.IsNotFound(err) {
		t.Fatalf("unknown endpoint: want NotFound, got %v", err)
	}
	// Teardown of unknown things succeeds.
	for _, err := range []error{d.Leave("nope", "e"), d.Leave(joinNID, "nope"), d.DeleteEndpoint("nope", "e"), d.RevokeExternalConnectivity("nope", "e")} {
		if err != nil {
			t.Errorf("teardown of unknown: %v", err)
		}
	}
	if err := d.ProgramExternalConnectivity(joinNID, "nope", nil); !types.IsNotFound(err) {
		t.Fatalf("program unknown endpoint: want NotFound, got %v", err)
	}
	if err := d.ProgramExternalConnectivity(joinNID, "e1", nil); err != nil {
		t.Fatalf("program without firewall: %v", err)
	}
}

func TestInterfaceNameTakenInSandbox(t *testing.T) {
	d, host := newTestDriver(t, nil)
	if err := d.CreateNetwork(netReq(t, joinNID, "10.9.0.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	sb := testutil.NewNamedNS(t, "sb")
	a := netlink.NewLinkAttrs()
	a.Name = "eth0"
	if err := sb.Netlink.LinkAdd(&netlink.Bridge{LinkAttrs: a}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: joinNID, EndpointID: "e",
		Interface: driverapi.Interface{Address: mustCIDR(t, "10.9.0.2/24")}}); err != nil {
		t.Fatal(err)
	}
	_, err := d.Join(driverapi.JoinRequest{NetworkID: joinNID, EndpointID: "e", SandboxKey: sb.Path(), IfaceName: ifname0})
	if !types.IsForbidden(err) {
		t.Fatalf("want Forbidden, got %v", err)
	}
	if names := linkNames(t, host.Netlink); fmt.Sprint(names) != "[br-joinnet00000 lo]" {
		t.Fatalf("host links after failed join: %v", names)
	}
}

func TestCloseDeletesRetiredVeths(t *testing.T) {
	d, host := newTestDriver(t, nil)
	if err := d.CreateNetwork(netReq(t, joinNID, "10.14.0.1/24", nil)); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		sb := testutil.NewNamedNS(t, fmt.Sprintf("sb%d", i))
		joinEP(t, d, fmt.Sprintf("e%d", i), fmt.Sprintf("10.14.0.%d/24", i+2), sb)
	}
	for i := range 5 {
		if err := d.Leave(joinNID, fmt.Sprintf("e%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, host.Netlink); fmt.Sprint(names) != "[br-joinnet00000 lo]" {
		t.Fatalf("links after Close: %v", names)
	}
}
