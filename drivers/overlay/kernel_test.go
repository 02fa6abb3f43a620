package overlay

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/drivers/drivertest"
	"github.com/opencnm/libnetwork/drivers/overlay/dataplane"
	"github.com/opencnm/libnetwork/drivers/overlay/internal/ovlab"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

func TestConformance(t *testing.T) {
	drivertest.Run(t, drivertest.Suite{
		New: func(t *testing.T) driverapi.Driver {
			_, hs := ovlab.Underlay(t, 1, 1500, false)
			return newHostDriver(t, hs[0], nil)
		},
		Network: func(nid string) driverapi.CreateNetworkRequest { return netRequest(nid, 4097) },
		Join: func(t *testing.T, nid, eid string) driverapi.JoinRequest {
			return driverapi.JoinRequest{NetworkID: nid, EndpointID: eid,
				SandboxKey: testutil.NewNamedNS(t, "sb-"+eid).Path(), IfaceName: func(p string) string { return p + "0" }}
		},
		Interface: conformanceInterface,
		Objects: func(t *testing.T, d driverapi.Driver, nid, eid string) []string {
			if exists(nsFile(d.(*Driver), nid)) {
				return []string{"netns " + nid}
			}
			return nil
		},
		Nodes: func(t *testing.T, d driverapi.Driver) []string {
			if v := d.(*Driver).localVTEP(); v.IsValid() {
				return []string{v.String()}
			}
			return nil
		},
	})
}

// Three hosts, two endpoints on the first: every pair talks TCP and UDP
// over both families. The peers are reported before any endpoint joins,
// so the data planes the joins build program what the driver kept.
func TestTrafficAcrossHosts(t *testing.T) {
	r := newRig(t, 3, 1500, nil, nil)
	cs := []*ctr{r.endpoint(1, 1), r.endpoint(1, 11), r.endpoint(2, 2), r.endpoint(3, 3)}
	r.announce(cs...)
	for _, c := range cs {
		r.join(c)
	}
	for _, a := range cs {
		for _, b := range cs {
			if a == b {
				continue
			}
			for _, f := range families {
				if err := tcp(a, b, f.v6); err != nil {
					t.Fatalf("%s TCP %s → %s: %v", f.name, a.name, b.name, err)
				}
				if err := udp(a, b, f.v6); err != nil {
					t.Fatalf("%s UDP %s → %s: %v", f.name, a.name, b.name, err)
				}
			}
		}
	}
}

// The overlay's MTU is the underlay's minus the VXLAN overhead, inside
// the container, and a datagram filling it crosses hosts unfragmented.
func TestMTU(t *testing.T) {
	for _, under := range []int{1500, 1400} {
		r := newRig(t, 2, under, nil, nil)
		a, b := r.endpoint(1, 1), r.endpoint(2, 2)
		r.announce(a, b)
		r.join(a)
		r.join(b)
		want := under - dataplane.OverheadIPv4
		for _, c := range []*ctr{a, b} {
			l, err := c.sb.Netlink().LinkByName(c.ifc)
			ovlab.Must(t, err)
			if got := l.Attrs().MTU; got != want {
				t.Errorf("underlay %d: %s's %s has MTU %d, want %d", under, c.name, c.ifc, got, want)
			}
		}
		// IPv4 header 20 + UDP 8: the largest payload that fits, with DF.
		if err := ovlab.UDP(a.sb, b.sb, b.peer.IPv4, a.name, want-28, 10*time.Second, true); err != nil {
			t.Errorf("underlay %d: a full-MTU datagram with DF: %v", under, err)
		}
	}
}

// The MTU option, below what the underlay carries, is what the
// container gets.
func TestMTUOption(t *testing.T) {
	r := newRig(t, 2, 1500, generic("com.docker.network.driver.mtu", "1300"), nil)
	a, b := r.endpoint(1, 1), r.endpoint(2, 2)
	r.announce(a, b)
	r.join(a)
	r.join(b)
	l, err := a.sb.Netlink().LinkByName(a.ifc)
	ovlab.Must(t, err)
	if l.Attrs().MTU != 1300 {
		t.Fatalf("MTU %d, want the option's 1300", l.Attrs().MTU)
	}
	ovlab.Must(t, tcp(a, b, false))
}

// PeerDelete stops traffic to that peer and only to it.
func TestPeerDeleteStopsTraffic(t *testing.T) {
	r := newRig(t, 3, 1500, nil, nil)
	c1, c2, c3 := r.endpoint(1, 1), r.endpoint(2, 2), r.endpoint(3, 3)
	r.announce(c1, c2, c3)
	for _, c := range []*ctr{c1, c2, c3} {
		r.join(c)
	}
	ovlab.Must(t, tcp(c1, c2, false)) // c1 now has c2's MAC in its neighbour cache
	h1 := r.hosts[0].d
	ovlab.Must(t, h1.PeerDelete(testNet, c2.peer.EndpointID))
	for _, f := range families {
		if !blocked(c1, c2, f.v6) {
			t.Errorf("%s: c1 still reaches c2 after PeerDelete", f.name)
		}
		if err := tcp(c1, c3, f.v6); err != nil {
			t.Errorf("%s: c1 → c3 after deleting c2: %v", f.name, err)
		}
	}
}

// PeerSync(nil) fences the host: cross-host traffic stops, same-host
// traffic goes on; PeerSync of the full set heals it.
func TestPeerSyncFencesAndHeals(t *testing.T) {
	r := newRig(t, 2, 1500, nil, nil)
	c1, c1b, c2 := r.endpoint(1, 1), r.endpoint(1, 11), r.endpoint(2, 2)
	r.announce(c1, c1b, c2)
	for _, c := range []*ctr{c1, c1b, c2} {
		r.join(c)
	}
	ovlab.Must(t, tcp(c1, c2, false))
	h1 := r.hosts[0].d
	ovlab.Must(t, h1.PeerSync(testNet, nil))
	for _, f := range families {
		if !blocked(c1, c2, f.v6) {
			t.Errorf("%s: fenced c1 still reaches c2", f.name)
		}
		if err := tcp(c1, c1b, f.v6); err != nil {
			t.Errorf("%s: fenced host's own endpoints: %v", f.name, err)
		}
	}
	ovlab.Must(t, h1.PeerSync(testNet, []driverapi.Peer{c2.peer}))
	for _, f := range families {
		if err := tcp(c1, c2, f.v6); err != nil {
			t.Errorf("%s: c1 → c2 after healing: %v", f.name, err)
		}
	}
}

// The data plane lives from the first local Join to the last Leave; a
// new Join builds it again, with the peers kept meanwhile.
func TestLastLeaveRemovesDataPlane(t *testing.T) {
	r := newRig(t, 2, 1500, nil, nil)
	a, a2, b := r.endpoint(1, 1), r.endpoint(1, 11), r.endpoint(2, 2)
	r.announce(a, a2, b)
	d := r.hosts[0].d
	path := nsFile(d, testNet)
	if exists(path) {
		t.Fatal("a data plane before any Join")
	}
	r.join(a)
	r.join(a2)
	r.join(b)
	ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
	if !exists(path) {
		t.Fatal("the data plane went with an endpoint that was not the last")
	}
	ovlab.Must(t, tcp(a2, b, false))
	ovlab.Must(t, d.Leave(testNet, a2.peer.EndpointID))
	ovlab.Must(t, d.Leave(testNet, a2.peer.EndpointID)) // again: already gone
	awaitRetired(t, d, testNet)
	if exists(path) {
		t.Fatal("the data plane outlived the last local endpoint")
	}
	if l, err := a2.sb.Netlink().LinkByName(a2.ifc); err == nil {
		t.Fatalf("%s is still in the left sandbox: %v", a2.ifc, l.Attrs().Name)
	}
	// The sandbox still records the interface; a fresh one for the rejoin.
	r.join(a2)
	if err := tcp(a2, b, false); err != nil {
		t.Fatalf("after rejoining (peers kept without a data plane): %v", err)
	}
	ovlab.Must(t, d.DeleteNetwork(testNet))
	if exists(path) {
		t.Fatal("DeleteNetwork left the data plane")
	}
}

// A data plane a crash left for a network that is no longer live is
// removed (and its VNI freed); the live network's is kept.
func TestGarbageCollection(t *testing.T) {
	r := newRig(t, 1, 1500, nil, nil)
	h := r.hosts[0]
	a := r.endpoint(1, 1)
	r.join(a)
	const dead = "deadnet"
	left, err := dataplane.Create(dataplane.Config{VNI: 5000, HostNS: h.NS.NS, LocalVTEP: h.VTEP, NSPath: nsFile(h.d, dead)})
	ovlab.Must(t, err)
	_ = left // a crashed run's: never deleted through it
	// Unmounted even when collecting fails, or the test's TempDir stays.
	t.Cleanup(func() { _ = dataplane.RemoveLeftover(nsFile(h.d, dead)) })
	ovlab.Must(t, h.d.CollectGarbage(map[string]bool{testNet: true}, map[string]bool{a.peer.EndpointID: true}))
	if exists(nsFile(h.d, dead)) {
		t.Fatal("the leftover data plane is still mounted")
	}
	if !exists(nsFile(h.d, testNet)) {
		t.Fatal("garbage collection removed the live network's data plane")
	}
	// The leftover's VXLAN device is gone, so its VNI can be used again.
	again, err := dataplane.Create(dataplane.Config{VNI: 5000, HostNS: h.NS.NS, LocalVTEP: h.VTEP, NSPath: nsFile(h.d, "other")})
	ovlab.Must(t, err)
	ovlab.Must(t, again.Delete())
}

// The periodic repair puts back an FDB entry deleted by hand.
func TestDriftRepair(t *testing.T) {
	r := newRig(t, 2, 1500, nil, withRepairEvery(50*time.Millisecond))
	a, b := r.endpoint(1, 1), r.endpoint(2, 2)
	r.announce(a, b)
	r.join(a)
	r.join(b)
	ns, err := netnsutil.Open(nsFile(r.hosts[0].d, testNet))
	ovlab.Must(t, err)
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns.Handle())
	ovlab.Must(t, err)
	defer h.Close()
	vx, err := h.LinkByName("vxlan0")
	ovlab.Must(t, err)
	fdb := func() []string {
		list, err := h.NeighList(vx.Attrs().Index, unix.AF_BRIDGE)
		ovlab.Must(t, err)
		var out []string
		for _, e := range list {
			if e.Flags&netlink.NTF_SELF != 0 && e.State&netlink.NUD_PERMANENT != 0 {
				out = append(out, e.HardwareAddr.String()+" "+e.IP.String())
			}
		}
		return out
	}
	want := b.peer.MAC.String() + " " + b.peer.VTEP.String()
	if !slices.Contains(fdb(), want) {
		t.Fatalf("fdb %v lacks %s", fdb(), want)
	}
	ovlab.Must(t, h.NeighDel(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF,
		HardwareAddr: b.peer.MAC, IP: b.peer.VTEP.AsSlice()}))
	deadline := time.Now().Add(30 * time.Second) // generous: the period is 50 ms
	for !slices.Contains(fdb(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the deleted entry %s was not repaired; fdb %v", want, fdb())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ovlab.Must(t, tcp(a, b, false))
}

// A restarted driver takes the live join back (RestoreJoin) without a
// gap: traffic flows before any peer is reported again, the periodic
// repair leaves the adopted entries alone until the first PeerSync, and
// the data plane is then managed as if the new driver had built it.
func TestRestartKeepsTraffic(t *testing.T) {
	r := newRig(t, 2, 1500, nil, withRepairEvery(20*time.Millisecond))
	a, b := r.endpoint(1, 1), r.endpoint(2, 2)
	r.announce(a, b)
	r.join(a)
	r.join(b)
	ovlab.Must(t, tcp(a, b, false))

	h1 := r.hosts[0]
	old := h1.d
	ovlab.Must(t, old.Close()) // the process stops; the kernel keeps the data plane
	old.mu.Lock()
	old.networks = map[string]*network{}
	old.mu.Unlock()

	d := newHostDriverIn(t, h1.Host, old.dir, withRepairEvery(20*time.Millisecond))
	ovlab.Must(t, d.CreateNetwork(netRequest(testNet, 4097)))
	_, err := d.CreateEndpoint(driverapi.CreateEndpointRequest{NetworkID: testNet, EndpointID: a.peer.EndpointID,
		Interface: driverapi.Interface{MacAddress: a.peer.MAC, Address: ovlab.IPNet(netip.PrefixFrom(a.peer.IPv4, 24)),
			AddressIPv6: ovlab.IPNet(netip.PrefixFrom(a.peer.IPv6, 64))}})
	ovlab.Must(t, err)
	req := driverapi.JoinRequest{NetworkID: testNet, EndpointID: a.peer.EndpointID, SandboxKey: a.sb.Key()}
	ovlab.Must(t, d.RestoreJoin(req, driverapi.JoinResult{DstName: a.ifc}))
	time.Sleep(100 * time.Millisecond) // several repair periods: none may run before the sync
	for _, f := range families {
		if err := tcp(a, b, f.v6); err != nil {
			t.Fatalf("%s: after the restart, before any peer was reported: %v", f.name, err)
		}
	}
	ovlab.Must(t, d.PeerSync(testNet, []driverapi.Peer{b.peer}))
	ovlab.Must(t, tcp(a, b, false))
	unknown := req
	unknown.EndpointID = "never"
	if err := d.RestoreJoin(unknown, driverapi.JoinResult{DstName: "eth9"}); !types.IsNotFound(err) {
		t.Fatalf("RestoreJoin of an unknown endpoint: want NotFound, got %v", err)
	}
	ovlab.Must(t, d.Leave(testNet, a.peer.EndpointID))
	awaitRetired(t, d, testNet)
	if exists(nsFile(d, testNet)) {
		t.Fatal("the adopted data plane outlived its last local endpoint")
	}
}

// Without a sandbox key (a sandbox whose namespace comes later) the
// interface is born in the host namespace for the sandbox to move in;
// Leave removes it.
func TestJoinWithoutSandboxKey(t *testing.T) {
	r := newRig(t, 1, 1500, nil, nil)
	h := r.hosts[0]
	a := r.endpoint(1, 1)
	res, err := h.d.Join(driverapi.JoinRequest{NetworkID: testNet, EndpointID: a.peer.EndpointID})
	ovlab.Must(t, err)
	if res.SrcName == "" || res.DstPrefix != "eth" || res.DstName != "" {
		t.Fatalf("Join = %+v: want a host link to move in with prefix eth", res)
	}
	l, err := h.NS.Netlink.LinkByName(res.SrcName)
	ovlab.Must(t, err)
	if l.Attrs().HardwareAddr.String() != a.peer.MAC.String() {
		t.Fatalf("%s has MAC %s, want %s", res.SrcName, l.Attrs().HardwareAddr, a.peer.MAC)
	}
	ovlab.Must(t, h.d.Leave(testNet, a.peer.EndpointID))
	awaitRetired(t, h.d, testNet)
	if _, err := h.NS.Netlink.LinkByName(res.SrcName); err == nil {
		t.Fatalf("Leave left %s in the host namespace", res.SrcName)
	}
}

// Over an IPv6 underlay both families cross hosts, and the MTU leaves
// room for the larger outer header.
func TestIPv6Underlay(t *testing.T) {
	r := newRigOn(t, 2, 1500, true, nil, nil)
	a, b := r.endpoint(1, 1), r.endpoint(2, 2)
	r.announce(a, b)
	r.join(a)
	r.join(b)
	l, err := a.sb.Netlink().LinkByName(a.ifc)
	ovlab.Must(t, err)
	if want := 1500 - dataplane.OverheadIPv6; l.Attrs().MTU != want {
		t.Fatalf("MTU %d over an IPv6 underlay, want %d", l.Attrs().MTU, want)
	}
	for _, f := range families {
		if err := tcp(a, b, f.v6); err != nil {
			t.Fatalf("%s TCP over an IPv6 underlay: %v", f.name, err)
		}
		if err := udp(b, a, f.v6); err != nil {
			t.Fatalf("%s UDP over an IPv6 underlay: %v", f.name, err)
		}
	}
}
