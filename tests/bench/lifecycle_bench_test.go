package bench

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// lifecycleN is how many containers the lifecycle benchmark runs
// (LIFECYCLE_N overrides the 200).
func lifecycleN() int {
	if n, err := strconv.Atoi(os.Getenv("LIFECYCLE_N")); err == nil && n > 0 {
		return n
	}
	return 200
}

type samples map[string][]time.Duration

func (s samples) add(op string, d time.Duration) { s[op] = append(s[op], d) }

// BenchmarkContainerLifecycle measures containers on one bridge network
// of a controller beside the bare kernel floor (floorRig: namespace, veth
// with its peer created inside as eth0 on an up bridge, address, route;
// teardown by taking eth0 down and deleting the namespace), in two modes:
//
//   - serial: N containers are created and joined one after the other,
//     then left and deleted (create endpoint, new sandbox, join; leave,
//     delete sandbox, delete endpoint); it prints per-operation medians
//     and p95s;
//   - parallel=W: W workers share the controller and the network, each
//     taking containers one at a time through their whole life, until N
//     have run (benchParallelLifecycle); it reports containers/s and the
//     fraction of the floor's containers/s with W workers.
//
// Run: make bench, or go test -run '^$' -bench ContainerLifecycle -benchtime 1x ./tests/bench.
func BenchmarkContainerLifecycle(b *testing.B) {
	testutil.RequireRoot(b)
	n := lifecycleN()
	b.Run("serial", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			ctl := lifecycleController(b, n, nil)
			floor := lifecycleFloor(b, n)
			report(b, n, ctl, floor)
		}
	})
	for _, w := range lifecycleWorkers {
		b.Run(fmt.Sprintf("parallel=%d", w), func(b *testing.B) { benchParallelLifecycle(b, w) })
	}
}

// benchBridge makes a controller in a throwaway host namespace with its
// paths on a tmpfs, and one bridge network on pool; done deletes the
// network and stops the controller (the namespace and tmpfs go when b ends).
func benchBridge(b *testing.B, pool string) (c *libnetwork.Controller, nw *libnetwork.Network, done func()) {
	b.Helper()
	dir := testrig.TmpfsDir(b)
	host := testutil.NewHostNS(b)
	c, err := libnetwork.New(benchOptions(host, dir)...)
	if err != nil {
		b.Fatal(err)
	}
	nw, err = c.NewNetwork("bridge", "bench", "", libnetwork.NetworkOptionIpam("default", "",
		[]*libnetwork.IpamConf{{PreferredPool: pool}}, nil, nil))
	if err != nil {
		c.Stop()
		b.Fatal(err)
	}
	return c, nw, func() { _ = nw.Delete(); c.Stop() }
}

// lifecycleController measures the controller's lifecycle; sbOpts, if
// given, returns extra sandbox options for container i.
func lifecycleController(b *testing.B, n int, sbOpts func(i int) []libnetwork.SandboxOption) samples {
	c, nw, done := benchBridge(b, "10.200.0.0/16")
	defer done()
	s := samples{}
	eps := make([]*libnetwork.Endpoint, n)
	sbs := make([]*libnetwork.Sandbox, n)
	b.ResetTimer()
	for i := 0; i < n; i++ {
		t0 := time.Now()
		ep, err := nw.CreateEndpoint(fmt.Sprintf("c%d", i))
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		var opts []libnetwork.SandboxOption
		if sbOpts != nil {
			opts = sbOpts(i)
		}
		sb, err := c.NewSandbox(fmt.Sprintf("c%d", i), opts...)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := ep.Join(sb); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		s.add("CreateEndpoint", t1.Sub(t0))
		s.add("NewSandbox", t2.Sub(t1))
		s.add("Join", t3.Sub(t2))
		s.add("create+join", t3.Sub(t0))
		eps[i], sbs[i] = ep, sb
	}
	for i := 0; i < n; i++ {
		d := testrig.TimedTeardown(b, eps[i], sbs[i])
		s.add("Leave", d.Leave)
		s.add("Sandbox.Delete", d.SandboxDelete)
		s.add("Endpoint.Delete", d.EndpointDelete)
		s.add("teardown", d.Total())
	}
	b.StopTimer()
	return s
}

// lifecycleFloor does the kernel work any runtime must do for the same
// result as lifecycleController (floorRig), with bare netlink calls: N
// containers made one after the other, then torn down.
func lifecycleFloor(b *testing.B, n int) samples {
	r := newFloorRig(b)
	s := samples{}
	ctrs := make([]floorCtr, n)
	for i := range ctrs {
		t0 := time.Now()
		fc, err := r.up(r.host.Netlink, i)
		if err != nil {
			b.Fatal(err)
		}
		s.add("create+join", time.Since(t0))
		ctrs[i] = fc
	}
	for _, fc := range ctrs {
		t0 := time.Now()
		if err := r.down(fc); err != nil {
			b.Fatal(err)
		}
		s.add("teardown", time.Since(t0))
	}
	return s
}

// floorRig is the kernel work a runtime must do for a container on a
// bridge, on a bridge that is up as the library's is (a port added to a
// down bridge skips its forwarding state). Per container: a namespace;
// one request making the veth with its peer inside as eth0 and the host
// end a port; IPv6 off on the host end, as the library must turn it off
// without a host-wide default (otherwise every port adds routes to the
// host's IPv6 table, which the kernel walks on link changes), through an
// open conf directory as the library does; proxy ARP on the port, which
// the library sets too and which keeps the bridge from flooding the port:
// the floor's namespaces keep IPv6 on (the library turns it off in its
// sandboxes, ahead of the call, in its pool), and without it their DAD
// and router solicitations would be flooded to every port, O(N) per
// container; then the address, eth0 up, the port up, the default route.
//
// Its teardown takes eth0 down before deleting the namespace, as any
// runtime must to cut the container off at once: that is a call under the
// rtnl lock, so the floor waits, as the controller's Leave does, while the
// kernel holds it to destroy earlier namespaces and their bridge ports
// (which costs more the fuller the bridge). Deleting the namespace alone
// takes no lock on the caller's path and would hide exactly that growth.
type floorRig struct {
	host *testutil.HostNS
	br   *netlink.Bridge
	conf *netnsutil.SysctlDir // nil without IPv6
	dir  string               // a tmpfs holding the namespace files
	gw   net.IP
}

// floorCtr is one container of the floor.
type floorCtr struct {
	path string
	h    *netlink.Handle // in the container's namespace
	eth0 netlink.Link
}

// newFloorRig makes the floor's host namespace with its up bridge; both go
// when b ends.
func newFloorRig(b *testing.B) *floorRig {
	r := &floorRig{dir: testrig.TmpfsDir(b), host: testutil.NewHostNS(b), gw: net.IPv4(10, 201, 0, 1)}
	r.br = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "floorbr"}}
	if err := r.host.Netlink.LinkAdd(r.br); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = r.host.Netlink.LinkDel(r.br) })
	if err := r.host.Netlink.LinkSetUp(r.br); err != nil {
		b.Fatal(err)
	}
	conf, err := r.host.OpenSysctlDir("net/ipv6/conf")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		b.Fatal(err)
	}
	if conf != nil {
		r.conf = conf
		b.Cleanup(func() { conf.Close() })
	}
	return r
}

// up makes container i (i < 65,000: its address is 10.201.0.0/16 + i + 2),
// sending the host namespace's requests on hostNL.
func (r *floorRig) up(hostNL *netlink.Handle, i int) (floorCtr, error) {
	fc := floorCtr{path: filepath.Join(r.dir, fmt.Sprint(i))}
	ns, err := netnsutil.New(fc.path)
	if err != nil {
		return fc, err
	}
	defer ns.Close()
	if fc.h, err = netlink.NewHandleAt(ns.Handle()); err != nil {
		return fc, err
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: fmt.Sprintf("fv%d", i), MasterIndex: r.br.Attrs().Index},
		PeerName: "eth0", PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := hostNL.LinkAdd(veth); err != nil {
		return fc, err
	}
	if r.conf != nil {
		if err := r.conf.Write(veth.Name+"/disable_ipv6", "1"); err != nil {
			return fc, err
		}
	}
	if fc.eth0, err = fc.h.LinkByName("eth0"); err != nil {
		return fc, err
	}
	ip := net.IPv4(10, 201, byte((i+2)>>8), byte(i+2))
	if err := fc.h.AddrAdd(fc.eth0, &netlink.Addr{IPNet: &net.IPNet{IP: ip, Mask: net.CIDRMask(16, 32)}}); err != nil {
		return fc, err
	}
	if err := fc.h.LinkSetUp(fc.eth0); err != nil {
		return fc, err
	}
	if err := hostNL.LinkSetUp(veth); err != nil {
		return fc, err
	}
	if err := hostNL.LinkSetBrProxyArp(veth, true); err != nil {
		return fc, err
	}
	return fc, fc.h.RouteAdd(&netlink.Route{Gw: r.gw, LinkIndex: fc.eth0.Attrs().Index})
}

// down takes eth0 down and deletes the namespace.
func (r *floorRig) down(fc floorCtr) error {
	defer fc.h.Close()
	if err := fc.h.LinkSetDown(fc.eth0); err != nil {
		return err
	}
	return netnsutil.Remove(fc.path)
}

func report(b *testing.B, n int, ctl, floor samples) {
	fmt.Printf("\ncontainer lifecycle, N=%d on one bridge network (ms)\n", n)
	fmt.Printf("%-16s %8s %8s\n", "operation", "median", "p95")
	for _, op := range []string{"CreateEndpoint", "NewSandbox", "Join", "create+join", "Leave", "Sandbox.Delete", "Endpoint.Delete", "teardown"} {
		fmt.Printf("%-16s %8.3f %8.3f\n", op, testrig.PercentileMs(ctl[op], 0.5), testrig.PercentileMs(ctl[op], 0.95))
	}
	for _, op := range []string{"create+join", "teardown"} {
		fmt.Printf("%-16s %8.3f %8.3f  (floor: bare netlink)\n", "floor "+op, testrig.PercentileMs(floor[op], 0.5), testrig.PercentileMs(floor[op], 0.95))
	}
	var total time.Duration
	for _, d := range append(slices.Clone(ctl["create+join"]), ctl["teardown"]...) {
		total += d
	}
	fmt.Printf("containers/s (full lifecycle): %.0f\n", float64(n)/total.Seconds())
	fmt.Printf("create+join vs floor: %.2fx; teardown vs floor: %.2fx\n",
		testrig.PercentileMs(ctl["create+join"], 0.5)/testrig.PercentileMs(floor["create+join"], 0.5), testrig.PercentileMs(ctl["teardown"], 0.5)/testrig.PercentileMs(floor["teardown"], 0.5))
	b.ReportMetric(testrig.PercentileMs(ctl["create+join"], 0.5), "create+join-ms")
	b.ReportMetric(testrig.PercentileMs(ctl["teardown"], 0.5), "teardown-ms")
	b.ReportMetric(testrig.PercentileMs(floor["create+join"], 0.5), "floor-create-ms")
}
