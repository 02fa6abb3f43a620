package libnetwork_test

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/netnsutil"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
	"github.com/opencnm/libnetwork/types"
	"github.com/vishvananda/netlink"
)

// restartN is how many endpoints BenchmarkRestart restores, all joined to
// live sandboxes (RESTART_N overrides the 1,000).
func restartN() int {
	if n, err := strconv.Atoi(os.Getenv("RESTART_N")); err == nil && n >= 2 {
		return n
	}
	return 1000
}

const restartPerNet = 100 // endpoints per bridge network

// BenchmarkRestart builds N containers (N/100 bridge networks of up to 100
// endpoints, each endpoint joined to its own sandbox), stops the
// controller and times New with every sandbox named in
// OptionActiveSandboxes, the budget being 2 s. Throughout the
// restart two of the containers exchange data over one TCP connection,
// which must never stall or break; afterwards every interface (in the
// sandboxes and on the host) must have the same ifindex, and the rule
// count must be unchanged.
//
// Published ports: the bridge driver on this snapshot has no firewall
// wired in (DriverInfo carries no netlabel.PortMap), so none are
// published; see restartPortsHook.
func BenchmarkRestart(b *testing.B) {
	testutil.RequireRoot(b)
	n := restartN()
	for i := 0; i < b.N; i++ {
		benchRestart(b, n)
	}
}

func benchRestart(b *testing.B, n int) {
	dir := tmpfsDir(b)
	host := testutil.NewHostNS(b)
	base := []config.Option{config.OptionHostNetNS(host.Path()),
		config.OptionExecRoot(filepath.Join(dir, "run")), config.OptionDataDir(filepath.Join(dir, "lib"))}
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
		sb, err := c.NewSandbox(fmt.Sprintf("c%d", i))
		if err != nil {
			b.Fatal(err)
		}
		if err := ep.Join(sb); err != nil {
			b.Fatal(err)
		}
		sbs = append(sbs, sb)
		active[sb.ID()] = []libnetwork.SandboxOption{}
	}
	restartPortsHook(b, c)
	fmt.Printf("\nrestart benchmark: %d endpoints on %d networks, all joined to live sandboxes (setup %v)\n",
		n, (n+restartPerNet-1)/restartPerNet, time.Since(setup).Round(time.Millisecond))

	before := snapshotIfindexes(b, host, sbs)
	rulesBefore := ruleCount(b, host)

	// A TCP conversation between containers 0 and 1 (same network) runs
	// through the whole restart.
	talk := startTalk(b, sbs[0], sbs[1])

	time.Sleep(50 * time.Millisecond)
	stopLast()
	t0 := time.Now()
	c2, err := libnetwork.New(append(base, config.OptionActiveSandboxes(active))...)
	ready := time.Since(t0)
	if err != nil {
		b.Fatal(err)
	}
	defer c2.Stop()
	time.Sleep(50 * time.Millisecond)
	stats := talk.stop()

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
	fmt.Printf("controller ready in %v (budget 2s); %s\n", ready.Round(time.Millisecond), stats)
	fmt.Printf("interfaces checked: %d, ifindex changed: %d; rules before/after: %d/%d\n", len(before), changed, rulesBefore, rulesAfter)
	if changed > 0 || len(after) != len(before) {
		b.Errorf("%d interfaces changed ifindex or vanished across the restart", changed+len(before)-len(after))
	}
	if rulesAfter != rulesBefore {
		b.Errorf("rule count changed across the restart: %d -> %d", rulesBefore, rulesAfter)
	}
	if stats.errs > 0 || stats.maxGap > 200*time.Millisecond {
		b.Errorf("data plane interrupted: %s", stats)
	}
	if ready > 2*time.Second {
		b.Errorf("restart took %v, budget 2 s", ready)
	}
	b.ReportMetric(float64(ready.Microseconds())/1000, "restart-ms")

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

// restartPortsHook is where the benchmark will publish N host ports (one
// per container, restored through ProgramExternalConnectivity with the
// stored operational bindings) once the bridge driver programs the
// firewall. TODO(ports): publish OptionPortMapping on every sandbox and
// check no host port is held twice after the restart. Until then it only
// records that ports are not wired, so the numbers say what they cover.
func restartPortsHook(b *testing.B, c *libnetwork.Controller) {
	for _, nw := range c.Networks() {
		for _, ep := range nw.Endpoints() {
			info, err := ep.DriverInfo()
			if err == nil && info[netlabel.PortMap] != nil {
				b.Logf("ports are wired on this snapshot: extend restartPortsHook")
			}
			return
		}
	}
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

// ruleCount is the number of iptables rules (filter and nat) in host.
func ruleCount(b *testing.B, host *testutil.HostNS) int {
	total := 0
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

// talk is a TCP conversation: the client sends a counter every
// millisecond and the server echoes it back.
type talk struct {
	conn, srv net.Conn
	ln        net.Listener
	stopc     chan struct{}
	done      chan talkStats
}

type talkStats struct {
	rounds int
	errs   int
	maxGap time.Duration
}

func (s talkStats) String() string {
	return fmt.Sprintf("TCP between two live containers: %d round trips, %d errors, longest gap %v",
		s.rounds, s.errs, s.maxGap.Round(time.Microsecond))
}

func startTalk(b *testing.B, server, client *libnetwork.Sandbox) *talk {
	sns, err := netnsutil.Open(server.Key())
	if err != nil {
		b.Fatal(err)
	}
	defer sns.Close()
	cns, err := netnsutil.Open(client.Key())
	if err != nil {
		b.Fatal(err)
	}
	defer cns.Close()
	addr := server.Endpoints()[0].Info().Iface().Address().IP.String() + ":7777"
	tk := &talk{stopc: make(chan struct{}), done: make(chan talkStats, 1)}
	if err := sns.Do(func() (err error) { tk.ln, err = net.Listen("tcp", addr); return err }); err != nil {
		b.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := tk.ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
		_, _ = io.Copy(c, c) // echo
	}()
	if err := cns.Do(func() (err error) { tk.conn, err = net.DialTimeout("tcp", addr, 2*time.Second); return err }); err != nil {
		b.Fatal(err)
	}
	tk.srv = <-accepted
	if tk.srv == nil {
		b.Fatal("accept failed")
	}
	go tk.run()
	return tk
}

func (tk *talk) run() {
	var st talkStats
	buf := make([]byte, 8)
	last := time.Now()
	for i := 0; ; i++ {
		select {
		case <-tk.stopc:
			tk.done <- st
			return
		default:
		}
		msg := fmt.Sprintf("%08d", i%100000000)
		tk.conn.SetDeadline(time.Now().Add(time.Second))
		_, err := io.WriteString(tk.conn, msg)
		if err == nil {
			_, err = io.ReadFull(tk.conn, buf)
		}
		if err != nil || string(buf) != msg {
			st.errs++
			continue
		}
		st.rounds++
		if gap := time.Since(last); gap > st.maxGap {
			st.maxGap = gap
		}
		last = time.Now()
		time.Sleep(time.Millisecond)
	}
}

func (tk *talk) stop() talkStats {
	close(tk.stopc)
	st := <-tk.done
	tk.conn.Close()
	tk.srv.Close()
	tk.ln.Close()
	return st
}
