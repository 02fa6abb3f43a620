package libnetwork_test

import (
	"fmt"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
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
		ct.stop(b)
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
	dir := tmpfsDir(b)
	host := testutil.NewHostNS(b)
	c, err := libnetwork.New(
		config.OptionExecRoot(filepath.Join(dir, "run")),
		config.OptionDataDir(filepath.Join(dir, "lib")),
		config.OptionPluginDirs(filepath.Join(dir, "plugins")),
		config.OptionHostNetNS(host.Path()))
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
	var background []*container
	for e := 0; e < already/20; e++ {
		var bs []types.PortBinding
		for p := 0; p < 20; p++ {
			bs = append(bs, types.PortBinding{Proto: types.TCP, Port: 80, HostPort: uint16(20000 + e*20 + p)})
		}
		background = append(background, benchUp(b, c, n, fmt.Sprintf("bg%d", e), bs))
	}

	up := make([]time.Duration, 0, b.N)
	down := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		ct := benchUp(b, c, n, fmt.Sprintf("c%d", i), bindings(i))
		t1 := time.Now()
		ct.stop(b)
		down = append(down, time.Since(t1))
		up = append(up, t1.Sub(t0))
	}
	b.StopTimer()
	for _, ct := range background {
		ct.stop(b)
	}
	b.ReportMetric(ms(durPct(up, 50)), "up-p50-ms")
	b.ReportMetric(ms(durPct(up, 95)), "up-p95-ms")
	b.ReportMetric(ms(durPct(down, 50)), "down-p50-ms")
	b.ReportMetric(ms(durPct(down, 95)), "down-p95-ms")
}

func benchUp(b *testing.B, c *libnetwork.Controller, n *libnetwork.Network, name string, bs []types.PortBinding) *container {
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
	return &container{ep: ep, sb: sb}
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
