package macvlan

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// kernelRig is a throwaway host namespace whose "physical" interface lan0
// is a veth to a LAN namespace, and a macvlan driver on that host.
type kernelRig struct {
	host, lan *testutil.HostNS
	d         *Driver
}

func newKernelRig(t *testing.T, mtu int) *kernelRig {
	t.Helper()
	r := &kernelRig{host: testutil.NewHostNS(t), lan: testutil.NewNamedNS(t, "lan")}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.MTU = "lan0", mtu
	v := &netlink.Veth{LinkAttrs: attrs, PeerName: "wire", PeerNamespace: netlink.NsFd(r.lan.Fd()), PeerMTU: uint32(mtu)}
	if err := r.host.Netlink.LinkAdd(v); err != nil {
		t.Fatalf("making lan0: %v", err)
	}
	for _, h := range []struct {
		nl   *netlink.Handle
		name string
	}{{r.host.Netlink, "lan0"}, {r.lan.Netlink, "wire"}} {
		l, err := h.nl.LinkByName(h.name)
		if err == nil {
			err = h.nl.LinkSetUp(l)
		}
		if err != nil {
			t.Fatalf("bringing %s up: %v", h.name, err)
		}
	}
	d, err := New(r.host.NS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	r.d = d
	return r
}

func (r *kernelRig) network(t *testing.T, nid string, opts map[string]string) {
	t.Helper()
	if err := r.d.CreateNetwork(netReq(nid, opts)); err != nil {
		t.Fatalf("CreateNetwork %s: %v", nid, err)
	}
}

func (r *kernelRig) endpoint(t *testing.T, nid, eid, addr string) {
	t.Helper()
	if _, err := r.d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: nid, EndpointID: eid,
		Interface: driverapi.Interface{Address: mustNet(addr)}}); err != nil {
		t.Fatalf("CreateEndpoint %s: %v", eid, err)
	}
}

func joinReq(nid, eid, key string) driverapi.JoinRequest {
	return driverapi.JoinRequest{NetworkID: nid, EndpointID: eid, SandboxKey: key,
		IfaceName: func(p string) string { return p + "0" }}
}

// hostMacvlans lists the macvlan links of a namespace.
func macvlans(t *testing.T, h *netlink.Handle) []*netlink.Macvlan {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []*netlink.Macvlan
	for _, l := range links {
		if m, ok := l.(*netlink.Macvlan); ok {
			out = append(out, m)
		}
	}
	return out
}

// The container's link is born in the sandbox: the host namespace sees no
// macvlan appear at all during the join, not even briefly.
func TestJoinCreatesInsideSandbox(t *testing.T) {
	r := newKernelRig(t, 1500)
	sb := testutil.NewNamedNS(t, "sb")
	r.network(t, "n1", map[string]string{ParentOpt: "lan0", ModeOpt: "private"})
	r.endpoint(t, "n1", "e1", "192.0.2.10/24")

	events := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	h := r.host.Handle()
	if err := netlink.LinkSubscribeWithOptions(events, done, netlink.LinkSubscribeOptions{Namespace: &h}); err != nil {
		t.Fatal(err)
	}
	res, err := r.d.Join(joinReq("n1", "e1", sb.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if res.DstName != "eth0" || res.SrcName != "" || !res.Gateway.Equal(net.ParseIP("192.0.2.1")) {
		t.Fatalf("join result %+v", res)
	}
	l, err := sb.Netlink.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := r.d.EndpointOperInfo("n1", "e1")
	m, ok := l.(*netlink.Macvlan)
	if !ok || m.Mode != netlink.MACVLAN_MODE_PRIVATE || m.HardwareAddr.String() != info[netlabel.MacAddress].(net.HardwareAddr).String() ||
		m.Alias != endpointTag("e1") || m.MTU != 1500 {
		t.Fatalf("sandbox link %T %+v", l, l.Attrs())
	}
	// A marker change after the join: once its event arrives, every event
	// of the join has been read.
	lan0, _ := r.host.Netlink.LinkByName("lan0")
	if err := r.host.Netlink.LinkSetAlias(lan0, "marker"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.After(10 * time.Second); ; {
		select {
		case u := <-events:
			if u.Attrs().Alias == "marker" {
				goto drained
			}
			if u.Link.Type() == "macvlan" {
				t.Fatalf("a macvlan appeared in the host namespace during the join: %+v", u.Attrs())
			}
		case <-deadline:
			t.Fatal("no event for the marker")
		}
	}
drained:
	if got := macvlans(t, r.host.Netlink); len(got) != 0 {
		t.Fatalf("host has macvlans: %v", got)
	}
	for i := 0; i < 2; i++ {
		if err := r.d.Leave("n1", "e1"); err != nil {
			t.Fatalf("Leave #%d: %v", i+1, err)
		}
	}
	if err := r.d.reap.flush(); err != nil {
		t.Fatal(err)
	}
	if got := macvlans(t, sb.Netlink); len(got) != 0 {
		t.Fatalf("Leave left the sandbox's macvlan: %v", got)
	}
}

func TestMTU(t *testing.T) {
	r := newKernelRig(t, 1400)
	sb := testutil.NewNamedNS(t, "sb")
	r.network(t, "n1", map[string]string{ParentOpt: "lan0"})
	r.endpoint(t, "n1", "e1", "192.0.2.10/24")
	if _, err := r.d.Join(joinReq("n1", "e1", sb.Path())); err != nil {
		t.Fatal(err)
	}
	if l, _ := sb.Netlink.LinkByName("eth0"); l == nil || l.Attrs().MTU != 1400 {
		t.Fatalf("mtu not the parent's: %+v", l)
	}
	if err := r.d.DeleteEndpoint("n1", "e1"); err != nil {
		t.Fatal(err)
	}
	if err := r.d.DeleteNetwork("n1"); err != nil {
		t.Fatal(err)
	}
	r.network(t, "n2", map[string]string{ParentOpt: "lan0", "com.docker.network.driver.mtu": "1300"})
	r.endpoint(t, "n2", "e2", "192.0.2.11/24")
	if _, err := r.d.Join(joinReq("n2", "e2", sb.Path())); err != nil {
		t.Fatal(err)
	}
	if l, _ := sb.Netlink.LinkByName("eth0"); l == nil || l.Attrs().MTU != 1300 {
		t.Fatalf("mtu not the option's: %+v", l)
	}
}

// The probe agrees with what the kernel does when asked for a real vlan
// link on a real parent (in the test's namespace).
func TestProbeVLANMatchesKernel(t *testing.T) {
	r := newKernelRig(t, 1500)
	lan0, err := r.host.Netlink.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex = "lan0.10", lan0.Attrs().Index
	addErr := r.host.Netlink.LinkAdd(&netlink.Vlan{LinkAttrs: attrs, VlanId: 10})
	probeErr := probeVLAN(r.host.Netlink)
	switch {
	case addErr == nil:
		if probeErr != nil {
			t.Fatalf("the kernel made a vlan link but the probe says %v", probeErr)
		}
	case errors.Is(addErr, unix.EOPNOTSUPP):
		if !errors.Is(probeErr, errNo8021q) {
			t.Fatalf("the kernel refused a vlan link (%v) but the probe says %v", addErr, probeErr)
		}
	default:
		t.Fatalf("making a vlan link: %v", addErr)
	}
	if _, err := r.host.Netlink.LinkByName("cnmvlanprobe"); !isLinkNotFound(err) {
		t.Fatalf("the probe left a link: %v", err)
	}
}

func TestInternalNetworkKernel(t *testing.T) {
	r := newKernelRig(t, 1500)
	sb := testutil.NewNamedNS(t, "sb")
	r.network(t, "n1", nil)
	r.endpoint(t, "n1", "e1", "192.0.2.10/24")
	res, err := r.d.Join(joinReq("n1", "e1", sb.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if res.Gateway != nil || res.GatewayIPv6 != nil {
		t.Fatalf("internal network gave a gateway: %+v", res)
	}
	parent, peer := standInNames("n1")
	pl, err := r.host.Netlink.LinkByName(parent)
	if err != nil || pl.Attrs().Alias != networkTag("n1") {
		t.Fatalf("stand-in parent: %v, %v", pl, err)
	}
	l, _ := sb.Netlink.LinkByName("eth0")
	if l == nil || l.Attrs().ParentIndex != pl.Attrs().Index {
		t.Fatalf("sandbox link not on the stand-in: %+v", l)
	}
	if err := r.d.DeleteNetwork("n1"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{parent, peer} {
		if _, err := r.host.Netlink.LinkByName(n); !isLinkNotFound(err) {
			t.Fatalf("%s left after the network: %v", n, err)
		}
	}
	if got := macvlans(t, sb.Netlink); len(got) != 0 {
		t.Fatalf("macvlan left in the sandbox after its parent went: %v", got)
	}
}

// GC inside a sandbox removes the tagged macvlans of endpoints that are
// not joined and nothing else; in the host, stand-ins of gone networks.
func TestCollectGarbageKernel(t *testing.T) {
	r := newKernelRig(t, 1500)
	sb := testutil.NewNamedNS(t, "sb")
	r.network(t, "n1", map[string]string{ParentOpt: "lan0"})
	r.endpoint(t, "n1", "live", "192.0.2.10/24")
	r.endpoint(t, "n1", "dead", "192.0.2.11/24")
	if _, err := r.d.Join(joinReq("n1", "live", sb.Path())); err != nil {
		t.Fatal(err)
	}
	req := joinReq("n1", "dead", sb.Path())
	req.IfaceName = func(p string) string { return p + "1" }
	if _, err := r.d.Join(req); err != nil {
		t.Fatal(err)
	}
	// Someone else's macvlan in the sandbox, untagged.
	lan0, _ := r.host.Netlink.LinkByName("lan0")
	attrs := netlink.NewLinkAttrs()
	attrs.Name, attrs.ParentIndex, attrs.Namespace = "theirs", lan0.Attrs().Index, netlink.NsFd(sb.Fd())
	if err := r.host.Netlink.LinkAdd(&netlink.Macvlan{LinkAttrs: attrs, Mode: netlink.MACVLAN_MODE_BRIDGE}); err != nil {
		t.Fatal(err)
	}
	r.network(t, "gone", nil) // its stand-in outlives it below
	if err := r.d.CollectSandboxGarbage([]string{sb.Path()}, map[string]bool{"live": true}); err != nil {
		t.Fatal(err)
	}
	if err := r.d.CollectGarbage(map[string]bool{"n1": true}, map[string]bool{"live": true}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"eth0": true, "eth1": false, "theirs": true} {
		_, err := sb.Netlink.LinkByName(name)
		if got := err == nil; got != want {
			t.Errorf("sandbox link %s present %v, want %v (%v)", name, got, want, err)
		}
	}
	if parent, _ := standInNames("gone"); true {
		if _, err := r.host.Netlink.LinkByName(parent); !isLinkNotFound(err) {
			t.Errorf("stand-in of a gone network survived GC: %v", err)
		}
	}
}

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Suite{
		New: func(t *testing.T) driverapi.Driver { return newKernelRig(t, 1500).d },
		Network: func(nid string) driverapi.CreateNetworkRequest {
			return netReq(nid, map[string]string{ParentOpt: "lan0"})
		},
		Join: func(t *testing.T, nid, eid string) driverapi.JoinRequest {
			return joinReq(nid, eid, testutil.NewNamedNS(t, "sb-"+eid).Path())
		},
		OwnNetwork: func(nid string) driverapi.CreateNetworkRequest { return netReq(nid, map[string]string{}) },
		Objects: func(t *testing.T, d driverapi.Driver, nid, eid string) []string {
			return drivertest.LinkNames(t, d.(*Driver).nl.LinkList, func(alias string) bool {
				return alias == networkTag(nid) || (eid != "" && alias == endpointTag(eid))
			})
		},
	})
}

// Each mode reaches the kernel as given.
func TestModesKernel(t *testing.T) {
	r := newKernelRig(t, 1500)
	sb := testutil.NewNamedNS(t, "sb")
	for i, mode := range []string{ModeBridge, ModePrivate, ModeVEPA} {
		nid, eid := "n"+mode, "e"+mode
		r.network(t, nid, map[string]string{ParentOpt: "lan0", ModeOpt: mode})
		r.endpoint(t, nid, eid, "192.0.2.10/24")
		req := joinReq(nid, eid, sb.Path())
		req.IfaceName = func(p string) string { return p + string(rune('0'+i)) }
		res, err := r.d.Join(req)
		if err != nil {
			t.Fatal(err)
		}
		l, err := sb.Netlink.LinkByName(res.DstName)
		if m, ok := l.(*netlink.Macvlan); err != nil || !ok || m.Mode != modes[mode] {
			t.Fatalf("mode %s: link %+v, %v", mode, l, err)
		}
		if err := r.d.DeleteEndpoint(nid, eid); err != nil {
			t.Fatal(err)
		}
		if err := r.d.DeleteNetwork(nid); err != nil {
			t.Fatal(err)
		}
	}
}

// passthru gives the parent to one container, with the parent's MAC; a
// second join waits for the first to leave.
func TestPassthru(t *testing.T) {
	r := newKernelRig(t, 1500)
	sb1, sb2 := testutil.NewNamedNS(t, "sb1"), testutil.NewNamedNS(t, "sb2")
	r.network(t, "n1", map[string]string{ParentOpt: "lan0", ModeOpt: ModePassthru})
	r.endpoint(t, "n1", "e1", "192.0.2.10/24")
	r.endpoint(t, "n1", "e2", "192.0.2.11/24")
	lan0, _ := r.host.Netlink.LinkByName("lan0")
	if _, err := r.d.Join(joinReq("n1", "e1", sb1.Path())); err != nil {
		t.Fatal(err)
	}
	l, err := sb1.Netlink.LinkByName("eth0")
	if err != nil || l.Attrs().HardwareAddr.String() != lan0.Attrs().HardwareAddr.String() {
		t.Fatalf("passthru link %+v, %v: want the parent's MAC %s", l, err, lan0.Attrs().HardwareAddr)
	}
	if m, ok := l.(*netlink.Macvlan); !ok || m.Mode != netlink.MACVLAN_MODE_PASSTHRU {
		t.Fatalf("passthru link %T %+v: want mode passthru", l, l)
	}
	if _, err := r.d.Join(joinReq("n1", "e2", sb2.Path())); !types.IsForbidden(err) {
		t.Fatalf("second passthru join: got %v, want Forbidden", err)
	}
	if err := r.d.Leave("n1", "e1"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.d.Join(joinReq("n1", "e2", sb2.Path())); err != nil {
		t.Fatalf("passthru join after the first left: %v", err)
	}
}

// A parent deleted and made again under its name after CreateNetwork is
// the network's parent still: Join finds it by name, not by the ifindex
// it had then.
func TestJoinAfterParentRemade(t *testing.T) {
	r := newKernelRig(t, 1500)
	sb := testutil.NewNamedNS(t, "sb")
	r.network(t, "n1", map[string]string{ParentOpt: "lan0", ModeOpt: ModeBridge})
	r.endpoint(t, "n1", "e1", "192.0.2.10/24")
	old, err := r.host.Netlink.LinkByName("lan0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.host.Netlink.LinkDel(old); err != nil {
		t.Fatal(err)
	}
	attrs := netlink.NewLinkAttrs()
	attrs.Name = "lan0"
	if err := r.host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "wire", PeerNamespace: netlink.NsFd(r.lan.Fd())}); err != nil {
		t.Fatalf("making lan0 again: %v", err)
	}
	lan0, err := r.host.Netlink.LinkByName("lan0")
	if err == nil {
		err = r.host.Netlink.LinkSetUp(lan0)
	}
	if err != nil {
		t.Fatal(err)
	}
	if lan0.Attrs().Index == old.Attrs().Index {
		t.Fatalf("lan0 got its old ifindex %d back: the test proves nothing", old.Attrs().Index)
	}
	if _, err := r.d.Join(joinReq("n1", "e1", sb.Path())); err != nil {
		t.Fatalf("Join after the parent was made again: %v", err)
	}
	l, err := sb.Netlink.LinkByName("eth0")
	if err != nil || l.Attrs().ParentIndex != lan0.Attrs().Index {
		t.Fatalf("sandbox link %+v, %v: want parent ifindex %d", l, err, lan0.Attrs().Index)
	}
}

// failReadBack is the host's netlink handle whose lookups by name of the
// driver's host-side links ("mv...") fail.
type failReadBack struct{ *netlink.Handle }

func (f failReadBack) LinkByName(name string) (netlink.Link, error) {
	if strings.HasPrefix(name, "mv") {
		return nil, errors.New("injected lookup failure")
	}
	return f.Handle.LinkByName(name)
}

// A link that cannot be read back after it was made carries no tag yet,
// so nothing would ever find it: Join deletes it by name.
func TestJoinDeletesUnreadableLink(t *testing.T) {
	r := newKernelRig(t, 1500)
	d := newDriver(r.host.NS, failReadBack{r.host.Netlink})
	t.Cleanup(func() { d.Close() })
	if err := d.CreateNetwork(netReq("n1", map[string]string{ParentOpt: "lan0"})); err != nil {
		t.Fatal(err)
	}
	if _, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: "n1", EndpointID: "e1",
		Interface: driverapi.Interface{Address: mustNet("192.0.2.10/24")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Join(driverapi.JoinRequest{NetworkID: "n1", EndpointID: "e1"}); err == nil {
		t.Fatal("Join succeeded with its link unreadable")
	}
	if got := macvlans(t, r.host.Netlink); len(got) != 0 {
		t.Fatalf("the unreadable link was left behind: %v", got[0].Attrs())
	}
}
