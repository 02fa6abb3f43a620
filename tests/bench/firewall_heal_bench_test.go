package bench

import (
	"log/slog"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// BenchmarkFirewallHeal measures how long the host firewall stays broken
// after `nft flush ruleset`: from starting the command to the event-driven
// repair's log record (so it includes the command's own few ms), median
// and worst of 20 rounds, with a network and a published port in place.
// It also reports the process's CPU time per second of idling with the
// controller up (the periodic checks are then its only work). Run:
// go test -run '^$' -bench FirewallHeal -benchtime 1x .
func BenchmarkFirewallHeal(b *testing.B) {
	benchHeal(b, []string{"nft", "flush", "ruleset"}, "event")
}

// BenchmarkFirewallHealLegacy is BenchmarkFirewallHeal with the
// iptables-legacy binaries, flushed with `iptables-legacy -F`, which no
// event reports: the repair is the fallback check's, and the idle CPU is
// that of the fallback's frequent checks.
func BenchmarkFirewallHealLegacy(b *testing.B) {
	benchHeal(b, []string{"sh", "-c", "iptables-legacy -F && iptables-legacy -t nat -F"}, "fallback",
		config.OptionDriverConfig("bridge", map[string]any{knobs.BridgeIPTablesLegacy: true}))
}

// benchHeal breaks the firewall with flush and times the repair logged
// with trigger.
func benchHeal(b *testing.B, flush []string, trigger string, opts ...config.Option) {
	testutil.RequireRoot(b)
	rec := testrig.NewRecorder()
	dir := b.TempDir()
	host := testutil.NewHostNS(b)
	c, err := libnetwork.New(benchOptions(host, dir, append([]config.Option{config.OptionLogger(slog.New(rec))}, opts...)...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Stop()
	nw, err := c.NewNetwork("bridge", "heal", "", libnetwork.NetworkOptionIpam("default", "",
		[]*libnetwork.IpamConf{{PreferredPool: "10.201.0.0/24"}}, nil, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer nw.Delete()
	ep, err := nw.CreateEndpoint("c", libnetwork.CreateOptionPortMapping([]types.PortBinding{{Proto: types.TCP, Port: 80, HostPort: 8080}}))
	if err != nil {
		b.Fatal(err)
	}
	defer ep.Delete(true)
	sb, err := c.NewSandbox("c")
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Delete()
	if err := ep.Join(sb); err != nil {
		b.Fatal(err)
	}

	const rounds = 20
	var heal []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < rounds; j++ {
			rec.Drain()
			t0 := time.Now()
			if err := host.Do(exec.Command(flush[0], flush[1:]...).Run); err != nil {
				b.Fatal(err)
			}
			deadline := time.After(5 * time.Second)
		wait:
			for {
				select {
				case r := <-rec.Notify:
					if r.Msg == "firewall repaired" && r.Attrs["trigger"] == trigger {
						heal = append(heal, time.Since(t0))
						break wait
					}
				case <-deadline:
					b.Fatalf("round %d: no %s repair within 5 s", j, trigger)
				}
			}
			if rep, err := c.RepairFirewall(); err != nil || !rep.Empty() {
				b.Fatalf("round %d: firewall not whole after the repair: %+v, %v", j, rep, err)
			}
		}
	}
	b.StopTimer()
	slices.Sort(heal)
	b.ReportMetric(float64(heal[len(heal)/2].Microseconds())/1000, "heal-median-ms")
	b.ReportMetric(float64(heal[len(heal)-1].Microseconds())/1000, "heal-max-ms")

	// Idle: the process's CPU over a window spanning two periodic checks.
	const idle = 10 * time.Second
	u0 := cpuTime(b)
	time.Sleep(idle)
	b.ReportMetric(float64((cpuTime(b)-u0).Microseconds())/1000/idle.Seconds(), "idle-cpu-ms/s")
}

// cpuTime is this process's user+system CPU time, children included
// (the periodic checks exec iptables).
func cpuTime(b *testing.B) time.Duration {
	var self, kids syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids); err != nil {
		b.Fatal(err)
	}
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}
