package bench

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// BenchmarkPortsLifecycle measures a container's network lifecycle through
// the controller, in a throwaway host namespace with real iptables:
// create endpoint + new sandbox (with OptionPortMapping) + join ("up"),
// then leave + delete sandbox + delete endpoint ("down"). It reports the
// median and p95 of each, in ms, for:
//
//	none      no published port (the baseline)
//	auto      one TCP port, host port chosen from ip_local_port_range
//	fixed     one TCP port, the same fixed host port every time (so each
//	          up may wait for the previous down's background release)
//	udp       one UDP port, chosen (its release flushes conntrack)
//	200       200 TCP ports on one container
//	among2000 one chosen TCP port while 2,000 are published by 100 others
//	among-paired       among0 and among2000 on two controllers at once,
//	                   iterations interleaved (see benchAmongPaired)
//	among-paired-idle  the same, the among0 side running the same 100
//	                   containers without ports
//
// Run: go test -run '^$' -bench PortsLifecycle -benchtime 40x .
func BenchmarkPortsLifecycle(b *testing.B) {
	one := func(proto types.Protocol, hostPort uint16) func(int) []types.PortBinding {
		return func(int) []types.PortBinding {
			return []types.PortBinding{{Proto: proto, Port: 80, HostPort: hostPort}}
		}
	}
	many := func(int) []types.PortBinding {
		var bs []types.PortBinding
		for p := 0; p < 200; p++ {
			bs = append(bs, types.PortBinding{Proto: types.TCP, Port: uint16(1000 + p), HostPort: uint16(30000 + p)})
		}
		return bs
	}
	cases := []struct {
		name     string
		already  int
		bindings func(int) []types.PortBinding
	}{
		{"none", 0, func(int) []types.PortBinding { return nil }},
		{"auto", 0, one(types.TCP, 0)},
		{"fixed", 0, one(types.TCP, 8080)},
		{"udp", 0, one(types.UDP, 0)},
		{"200", 0, many},
		{"among0", 0, one(types.TCP, 0)},
		{"among2000", 2000, one(types.TCP, 0)},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) { benchPorts(b, tc.already, tc.bindings) })
	}
	// paired: iterations alternate between no port and one chosen TCP
	// port on one controller, so both see the same machine load; it
	// reports each one's medians and what the port adds.
	b.Run("paired", func(b *testing.B) { benchPaired(b) })
	b.Run("among-paired", func(b *testing.B) { benchAmongPaired(b, false) })
	b.Run("among-paired-idle", func(b *testing.B) { benchAmongPaired(b, true) })
}

// benchAmongPaired runs two controllers side by side, each in its own host
// namespace: one with 2,000 ports published by 100 containers, one with
// none. Every iteration publishes one chosen TCP port on each (their order
// alternating), so both see the same machine load at the same moments. It
// reports each side's up and down medians and how much slower the side
// with 2,000 ports is. With idle, the side without ports runs the same 100
// containers, publishing nothing, so only the published ports differ.
func benchAmongPaired(b *testing.B, idle bool) {
	c0, n0 := benchController(b)
	c2k, n2k := benchController(b)
	background := publishBackground(b, c2k, n2k, 2000, 20)
	if idle {
		background = append(background, publishBackground(b, c0, n0, 2000, 0)...)
	}
	var up, down [2][]time.Duration // 0: among none, 1: among 2,000
	bs := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 2; j++ {
			k := (i + j) % 2
			c, n := c0, n0
			if k == 1 {
				c, n = c2k, n2k
			}
			t0 := time.Now()
			ct := benchUp(b, c, n, fmt.Sprintf("c%d", i), bs)
			t1 := time.Now()
			ct.Stop(b)
			down[k] = append(down[k], time.Since(t1))
			up[k] = append(up[k], t1.Sub(t0))
		}
	}
	b.StopTimer()
	for _, ct := range background {
		ct.Stop(b)
	}
	for k, name := range []string{"among0", "among2000"} {
		b.ReportMetric(ms(durPct(up[k], 50)), name+"-up-p50-ms")
		b.ReportMetric(ms(durPct(down[k], 50)), name+"-down-p50-ms")
	}
	b.ReportMetric(ms(durPct(up[1], 50)-durPct(up[0], 50)), "2000-adds-up-ms")
	b.ReportMetric(ms(durPct(down[1], 50)-durPct(down[0], 50)), "2000-adds-down-ms")
}

// publishBackground starts already/20 containers publishing perContainer
// (20 or 0) fixed TCP ports each (host ports from 20000).
func publishBackground(b *testing.B, c *libnetwork.Controller, n *libnetwork.Network, already, perContainer int) []*testrig.Container {
	var background []*testrig.Container
	for e := 0; e < already/20; e++ {
		var bs []types.PortBinding
		for p := 0; p < perContainer; p++ {
			bs = append(bs, types.PortBinding{Proto: types.TCP, Port: 80, HostPort: uint16(20000 + e*20 + p)})
		}
		background = append(background, benchUp(b, c, n, fmt.Sprintf("bg%d", e), bs))
	}
	return background
}

func benchPaired(b *testing.B) {
	c, n := benchController(b)
	var up, down [2][]time.Duration
	bs := []types.PortBinding{{Proto: types.TCP, Port: 80}}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % 2
		t0 := time.Now()
		ct := benchUp(b, c, n, fmt.Sprintf("c%d", i), bs[:k])
		t1 := time.Now()
		ct.Stop(b)
		down[k] = append(down[k], time.Since(t1))
		up[k] = append(up[k], t1.Sub(t0))
	}
	b.StopTimer()
	for k, name := range []string{"noport", "port"} {
		b.ReportMetric(ms(durPct(up[k], 50)), name+"-up-p50-ms")
		b.ReportMetric(ms(durPct(up[k], 95)), name+"-up-p95-ms")
		b.ReportMetric(ms(durPct(down[k], 50)), name+"-down-p50-ms")
		b.ReportMetric(ms(durPct(down[k], 95)), name+"-down-p95-ms")
	}
	b.ReportMetric(ms(durPct(up[1], 50)-durPct(up[0], 50)), "port-adds-up-ms")
	b.ReportMetric(ms(durPct(down[1], 50)-durPct(down[0], 50)), "port-adds-down-ms")
}

// benchController is a controller in a throwaway host namespace with one
// bridge network; both go when the benchmark ends.
func benchController(b *testing.B) (*libnetwork.Controller, *libnetwork.Network) {
	testutil.RequireRoot(b)
	dir := testrig.TmpfsDir(b)
	host := testutil.NewHostNS(b)
	c, err := libnetwork.New(benchOptions(host, dir)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Stop)
	n, err := c.NewNetwork("bridge", "bench", "",
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.60.0.0/16"}}, nil, nil))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = n.Delete() })
	return c, n
}

func benchPorts(b *testing.B, already int, bindings func(int) []types.PortBinding) {
	c, n := benchController(b)
	background := publishBackground(b, c, n, already, 20)

	up := make([]time.Duration, 0, b.N)
	down := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		ct := benchUp(b, c, n, fmt.Sprintf("c%d", i), bindings(i))
		t1 := time.Now()
		ct.Stop(b)
		down = append(down, time.Since(t1))
		up = append(up, t1.Sub(t0))
	}
	b.StopTimer()
	for _, ct := range background {
		ct.Stop(b)
	}
	b.ReportMetric(ms(durPct(up, 50)), "up-p50-ms")
	b.ReportMetric(ms(durPct(up, 95)), "up-p95-ms")
	b.ReportMetric(ms(durPct(down, 50)), "down-p50-ms")
	b.ReportMetric(ms(durPct(down, 95)), "down-p95-ms")
}

func benchUp(b *testing.B, c *libnetwork.Controller, n *libnetwork.Network, name string, bs []types.PortBinding) *testrig.Container {
	ep, err := n.CreateEndpoint(name)
	if err != nil {
		b.Fatal(err)
	}
	var opts []libnetwork.SandboxOption
	if len(bs) > 0 {
		opts = append(opts, libnetwork.OptionPortMapping(bs))
	}
	sb, err := c.NewSandbox("ctr-"+name, opts...)
	if err != nil {
		b.Fatal(err)
	}
	if err := ep.Join(sb); err != nil {
		b.Fatal(err)
	}
	return &testrig.Container{Endpoint: ep, Sandbox: sb}
}

func durPct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
