package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
)

// restartN is how many endpoints BenchmarkRestart restores, all joined to
// live sandboxes (RESTART_N overrides the 1,000; at least 5, since
// the checks below use the first five sandboxes).
func restartN() int {
	if n, err := strconv.Atoi(os.Getenv("RESTART_N")); err == nil && n >= 5 {
		return n
	}
	return 1000
}

const restartPerNet = 100 // endpoints per bridge network

// BenchmarkRestart builds N containers (N/100 bridge networks of up to 100
// endpoints, each endpoint joined to its own sandbox), each publishing
// one TCP host port (even ones a fixed port of 20000+i, odd ones a port
// the library chooses), stops the controller and times New with every
// sandbox named in OptionActiveSandboxes, the budget being 2 s.
// Throughout the restart two TCP conversations run, which must never
// stall or break: one between two containers, one from the host's
// loopback through a published port. Afterwards every interface (in the
// sandboxes and on the host) must have the same ifindex, every container
// the same host port, still held (a bind on it fails), the rule count must
// be unchanged, and a new connection through a published port works.
func BenchmarkRestart(b *testing.B) {
	testutil.RequireRoot(b)
	n := restartN()
	for i := 0; i < b.N; i++ {
		benchRestart(b, n)
	}
}

// restartPorts is what container i publishes.
func restartPorts(i int) []types.PortBinding {
	pb := types.PortBinding{Proto: types.TCP, Port: 80}
	if i%2 == 0 {
		pb.HostPort = uint16(20000 + i)
	}
	return []types.PortBinding{pb}
}

func benchRestart(b *testing.B, n int) {
	dir := testrig.TmpfsDir(b)
	host := testutil.NewHostNS(b)
	base := benchOptions(host, dir)
	c, err := libnetwork.New(base...)
	if err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stopLast := func() { once.Do(c.Stop) }
	defer func() { stopLast() }()

	setup := time.Now()
	sbs := make([]*libnetwork.Sandbox, 0, n)
	active := map[string]any{}
	for i := 0; i < n; i++ {
		if i%restartPerNet == 0 {
			k := i / restartPerNet
			if _, err := c.NewNetwork("bridge", fmt.Sprintf("rn%d", k), "", libnetwork.NetworkOptionIpam("default", "",
				[]*libnetwork.IpamConf{{PreferredPool: fmt.Sprintf("10.%d.%d.0/24", 100+k/200, k%200)}}, nil, nil)); err != nil {
				b.Fatal(err)
			}
		}
		nw, err := c.NetworkByName(fmt.Sprintf("rn%d", i/restartPerNet))
		if err != nil {
			b.Fatal(err)
		}
		ep, err := nw.CreateEndpoint(fmt.Sprintf("e%d", i))
		if err != nil {
			b.Fatal(err)
		}
		sb, err := c.NewSandbox(fmt.Sprintf("c%d", i), libnetwork.OptionPortMapping(restartPorts(i)))
		if err != nil {
			b.Fatal(err)
		}
		if err := ep.Join(sb); err != nil {
			b.Fatal(err)
		}
		sbs = append(sbs, sb)
		// As a runtime does on a live restore: the same options again.
		active[sb.ID()] = []libnetwork.SandboxOption{libnetwork.OptionPortMapping(restartPorts(i))}
	}
	portsBefore := publishedPorts(b, sbs)
	fmt.Printf("\nrestart benchmark: %d endpoints on %d networks, all joined to live sandboxes, %d host ports published (setup %v)\n",
		n, (n+restartPerNet-1)/restartPerNet, len(portsBefore), time.Since(setup).Round(time.Millisecond))
	if len(portsBefore) != n {
		b.Fatalf("%d host ports published for %d containers", len(portsBefore), n)
	}

	before := snapshotIfindexes(b, host, sbs)
	rulesBefore := ruleCount(b, host)

	// Two TCP conversations run through the whole restart: container 0
	// with container 1 (same network), and the host's loopback with
	// container 2 through its published port.
	ns := func(sb *libnetwork.Sandbox) *netnsutil.NS {
		h, err := netnsutil.Open(sb.Key())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { h.Close() })
		return h
	}
	ip := func(sb *libnetwork.Sandbox) string { return sb.Endpoints()[0].Info().Iface().Address().IP.String() }
	direct := testrig.StartTalk(b, "between two live containers", ns(sbs[0]), ip(sbs[0])+":7777", ns(sbs[1]), ip(sbs[0])+":7777")
	pubAddr := fmt.Sprintf("127.0.0.1:%d", portsBefore[sbs[2].ID()])
	published := testrig.StartTalk(b, "host to a published port", ns(sbs[2]), ip(sbs[2])+":80", host.NS, pubAddr)

	time.Sleep(50 * time.Millisecond)
	stopLast()
	// Stop closed the reservation sockets (the rules stay): the check
	// below that New holds the ports again is not vacuous.
	heldWhileDown := portHeld(b, host, portsBefore[sbs[4].ID()])
	t0 := time.Now()
	c2, err := libnetwork.New(append(base, config.OptionActiveSandboxes(active))...)
	ready := time.Since(t0)
	if err != nil {
		b.Fatal(err)
	}
	defer c2.Stop()
	time.Sleep(50 * time.Millisecond)
	stats := []testrig.TalkStats{direct.Stop(), published.Stop()}

	if err := c2.RestoreError(); err != nil {
		b.Fatalf("restore: %v", err)
	}
	if got := len(c2.Sandboxes()); got != n {
		b.Fatalf("%d sandboxes restored, want %d", got, n)
	}
	after := snapshotIfindexes(b, host, sbs)
	changed := 0
	for k, v := range before {
		if after[k] != v {
			changed++
		}
	}
	rulesAfter := ruleCount(b, host)
	var restored []*libnetwork.Sandbox
	for _, sb := range sbs {
		rsb, err := c2.SandboxByID(sb.ID())
		if err != nil {
			b.Fatal(err)
		}
		restored = append(restored, rsb)
	}
	portsAfter := publishedPorts(b, restored)
	moved, free := 0, 0
	for id, p := range portsBefore {
		if portsAfter[id] != p {
			moved++
		}
		if !portHeld(b, host, p) {
			free++
		}
	}
	// A new connection through a published port (the rules work, not only
	// the conntrack entry of the old one).
	fresh := freshPublished(b, ns(sbs[3]), ip(sbs[3]), host, portsAfter[sbs[3].ID()])

	fmt.Printf("controller ready in %v (budget 2s)\n", ready.Round(time.Millisecond))
	for _, s := range stats {
		fmt.Printf("  %s\n", s)
	}
	fmt.Printf("interfaces checked: %d, ifindex changed: %d; rules before/after: %d/%d\n", len(before), changed, rulesBefore, rulesAfter)
	fmt.Printf("host ports checked: %d, changed: %d, not held after restart: %d; new connection through a published port: %v\n",
		len(portsBefore), moved, free, fresh)
	if changed > 0 || len(after) != len(before) {
		b.Errorf("%d interfaces changed ifindex or vanished across the restart", changed+len(before)-len(after))
	}
	if rulesAfter != rulesBefore {
		b.Errorf("rule count changed across the restart: %d -> %d", rulesBefore, rulesAfter)
	}
	if heldWhileDown {
		b.Errorf("host port %d still held while no controller ran: the held check proves nothing", portsBefore[sbs[4].ID()])
	}
	if moved > 0 || free > 0 || len(portsAfter) != len(portsBefore) {
		b.Errorf("published ports: %d changed, %d no longer held, %d of %d still published", moved, free, len(portsAfter), len(portsBefore))
	}
	if fresh != nil {
		b.Errorf("new connection through a published port after the restart: %v", fresh)
	}
	// A failed probe is a broken data plane; the longest gap between probes
	// is reported (about 20-30 ms when idle), and fails above 400 ms: a
	// flow whose packets are dropped stalls for retransmission timeouts of
	// 200 ms, then 400 ms more (a bridge's neighbour flush cost the host's
	// flow 110-835 ms), while a loaded machine delays the probing
	// goroutine by less. TestRestartKeepsHostNeighbourOfKeptSandbox
	// (tests/restart) checks the kernel state behind it, without timing.
	var maxGap time.Duration
	for _, s := range stats {
		maxGap = max(maxGap, s.MaxGap)
		if s.Errs > 0 || s.MaxGap > 400*time.Millisecond {
			b.Errorf("data plane interrupted: %s", s)
		}
	}
	if ready > 10*time.Second {
		b.Errorf("restart took %v, bound 10 s", ready)
	}
	b.ReportMetric(float64(ready.Microseconds())/1000, "restart-ms")
	b.ReportMetric(float64(maxGap.Microseconds())/1000, "max-gap-ms")

	// Tear down (not timed).
	for _, sb := range c2.Sandboxes() {
		if err := sb.Delete(); err != nil {
			b.Errorf("deleting sandbox: %v", err)
		}
	}
	for _, nw := range c2.Networks() {
		if err := nw.Delete(); err != nil && !types.IsForbidden(err) {
			b.Errorf("deleting network %s: %v", nw.Name(), err)
		}
	}
}

// publishedPorts maps each sandbox to the IPv4 host port its endpoint
// publishes tcp/80 on (as the driver reports it).
func publishedPorts(b *testing.B, sbs []*libnetwork.Sandbox) map[string]uint16 {
	out := map[string]uint16{}
	for _, sb := range sbs {
		for _, ep := range sb.Endpoints() {
			info, err := ep.DriverInfo()
			if err != nil {
				b.Fatal(err)
			}
			pbs, _ := info[netlabel.PortMap].([]types.PortBinding)
			for _, pb := range pbs {
				if pb.Proto == types.TCP && pb.Port == 80 && pb.HostIP.To4() != nil {
					out[sb.ID()] = pb.HostPort
				}
			}
		}
	}
	return out
}

// portHeld reports whether tcp port is taken on every IPv4 address of the
// host namespace: a listener there must fail with EADDRINUSE.
func portHeld(b *testing.B, host *testutil.HostNS, port uint16) bool {
	var err error
	if herr := host.Do(func() error {
		var l net.Listener
		if l, err = net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port)); err == nil {
			l.Close()
		}
		return nil
	}); herr != nil {
		b.Fatal(herr)
	}
	return errors.Is(err, unix.EADDRINUSE)
}

// freshPublished serves one answer on ip:80 inside ns and fetches it from
// the host's loopback through hostPort.
func freshPublished(b *testing.B, ns *netnsutil.NS, ip string, host *testutil.HostNS, hostPort uint16) error {
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", ip+":80"); return err }); err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_, _ = io.WriteString(c, "hello\n")
			c.Close()
		}
	}()
	got, err := testrig.FetchWithin(host.NS, "tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), 3*time.Second)
	if err == nil && got != "hello" {
		err = fmt.Errorf("got %q", got)
	}
	return err
}

// snapshotIfindexes maps every sandbox interface and tagged host link to
// its ifindex.
func snapshotIfindexes(b *testing.B, host *testutil.HostNS, sbs []*libnetwork.Sandbox) map[string]int {
	out := map[string]int{}
	links, err := host.Netlink.LinkList()
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range links {
		if a := l.Attrs(); a.Alias != "" {
			out["host "+a.Alias] = a.Index
		}
	}
	for _, sb := range sbs {
		ns, err := netnsutil.Open(sb.Key())
		if err != nil {
			continue // missing: counted as vanished
		}
		h, err := netlink.NewHandleAt(ns.Handle())
		if err != nil {
			ns.Close()
			b.Fatal(err)
		}
		if l, err := h.LinkByName("eth0"); err == nil {
			out[sb.ID()+" eth0"] = l.Attrs().Index
		}
		h.Close()
		ns.Close()
	}
	return out
}

// ruleCount is the number of iptables rules (filter and nat) and port map
// elements in host.
func ruleCount(b *testing.B, host *testutil.HostNS) int {
	total := len(testrig.PortMapElems(b, host.NS))
	for _, table := range []string{"filter", "nat"} {
		var out []byte
		err := host.Do(func() (err error) {
			out, err = exec.Command("iptables", "-w", "-t", table, "-S").Output()
			return err
		})
		if err != nil {
			b.Fatalf("iptables -t %s -S: %v", table, err)
		}
		total += strings.Count(string(out), "\n")
	}
	return total
}
