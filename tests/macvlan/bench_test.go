package macvlan_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/macvlan"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/options"
)

// BenchmarkMacvlanLifecycle runs N containers (LIFECYCLE_N, default 200)
// through a macvlan network and, in the same run, through a bridge
// network, as BenchmarkContainerLifecycle does (create endpoint, new
// sandbox, join; then leave, delete sandbox, delete endpoint), each on its
// own controller in its own host namespace with its state on a tmpfs. The
// two alternate which goes first from one iteration to the next. It
// reports the medians of create+join and of teardown per driver and the
// macvlan/bridge ratios. Run:
//
//	go test -run '^$' -bench MacvlanLifecycle -benchtime 3x ./tests/macvlan/
func BenchmarkMacvlanLifecycle(b *testing.B) {
	testutil.RequireRoot(b)
	n := 200
	if v, err := strconv.Atoi(os.Getenv("LIFECYCLE_N")); err == nil && v > 0 {
		n = v
	}
	all := map[string]map[string][]time.Duration{"bridge": {}, "macvlan": {}}
	for i := 0; i < b.N; i++ {
		order := []string{"bridge", "macvlan"}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, driver := range order {
			for op, ds := range lifecycle(b, driver, n) {
				all[driver][op] = append(all[driver][op], ds...)
			}
		}
	}
	for _, op := range []string{"Leave", "Sandbox.Delete", "Endpoint.Delete"} {
		b.Logf("%s medians: bridge %.3f ms, macvlan %.3f ms", op, testrig.MedianMs(all["bridge"][op]), testrig.MedianMs(all["macvlan"][op]))
	}
	for _, op := range []string{"create+join", "teardown", "teardown-by-sandbox-delete"} {
		br, mv := testrig.MedianMs(all["bridge"][op]), testrig.MedianMs(all["macvlan"][op])
		b.ReportMetric(br, "bridge-"+op+"-ms")
		b.ReportMetric(mv, "macvlan-"+op+"-ms")
		b.ReportMetric(mv/br, "macvlan/bridge-"+op)
	}
}

// lifecycle times n containers on one network of driver.
func lifecycle(b *testing.B, driver string, n int) map[string][]time.Duration {
	b.Helper()
	host := testutil.NewHostNS(b)
	dir := testrig.TmpfsDir(b)
	c, err := libnetwork.New(config.OptionHostNetNS(host.Path()),
		config.OptionExecRoot(filepath.Join(dir, "run")), config.OptionDataDir(filepath.Join(dir, "lib")))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	opts := []libnetwork.NetworkOption{libnetwork.NetworkOptionIpam("default", "",
		[]*libnetwork.IpamConf{{PreferredPool: "10.201.0.0/16"}}, nil, nil)}
	if driver == "macvlan" {
		attrs := netlink.NewLinkAttrs()
		attrs.Name = "lan0"
		if err := host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: attrs, PeerName: "wire"}); err != nil {
			b.Fatal(err)
		}
		for _, name := range []string{"lan0", "wire"} {
			l, err := host.Netlink.LinkByName(name)
			if err == nil {
				err = host.Netlink.LinkSetUp(l)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		opts = append(opts, libnetwork.NetworkOptionGeneric(options.Generic{netlabel.GenericData: map[string]string{macvlan.ParentOpt: "lan0"}}))
	}
	nw, err := c.NewNetwork(driver, "bench", "", opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = nw.Delete() }()
	s := map[string][]time.Duration{}
	eps := make([]*libnetwork.Endpoint, n)
	sbs := make([]*libnetwork.Sandbox, n)
	for i := 0; i < n; i++ {
		t0 := time.Now()
		eps[i], sbs[i] = testrig.JoinNew(b, c, nw, fmt.Sprintf("c%d", i))
		s["create+join"] = append(s["create+join"], time.Since(t0))
	}
	// Half the containers go as Docker stops a container: Sandbox.Delete
	// leaves every endpoint as the namespace goes (the interface is only
	// cut off, never set down); the other half as the lifecycle benchmark
	// does, Leave first (the sandbox sets the interface down and renames
	// it, to free its name at once).
	for i := n; i < 2*n; i++ {
		ep, sb := testrig.JoinNew(b, c, nw, fmt.Sprintf("c%d", i))
		eps, sbs = append(eps, ep), append(sbs, sb)
	}
	for i := n; i < 2*n; i++ {
		t0 := time.Now()
		if err := sbs[i].Delete(); err != nil {
			b.Fatal(err)
		}
		if err := eps[i].Delete(false); err != nil {
			b.Fatal(err)
		}
		s["teardown-by-sandbox-delete"] = append(s["teardown-by-sandbox-delete"], time.Since(t0))
	}
	for i := 0; i < n; i++ {
		d := testrig.TimedTeardown(b, eps[i], sbs[i])
		s["Leave"] = append(s["Leave"], d.Leave)
		s["Sandbox.Delete"] = append(s["Sandbox.Delete"], d.SandboxDelete)
		s["Endpoint.Delete"] = append(s["Endpoint.Delete"], d.EndpointDelete)
		s["teardown"] = append(s["teardown"], d.Total())
	}
	return s
}
