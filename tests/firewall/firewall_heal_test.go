package firewall

import (
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/dnsnat"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/types"
)

// healRig is a controller in a throwaway host namespace with a
// dual-stack ICC-off network of two containers (a1 serving on port 80,
// also published on host port 8080 in both families) and the user's own
// rule in DOCKER-USER.
type healRig struct {
	*testrig.PortRig
	log    *testrig.RecordingHandler
	a1, a2 *testrig.Container
	netID  string
}

const healUserRule = "-s 198.51.100.0/24 -j DROP"

func newHealRig(t *testing.T) *healRig {
	t.Helper()
	// No periodic check within the test: a repair can only be the
	// events' doing.
	return newHealRigOf(t, map[string]any{knobs.BridgeRepairEvery: time.Hour}, "iptables")
}

// newHealRigOf is newHealRig with the bridge driver's configuration
// drv, the user's rule added with iptables (the binary).
func newHealRigOf(t *testing.T, drv map[string]any, iptables string) *healRig {
	t.Helper()
	rec := testrig.NewRecorder()
	r := testrig.NewPortRig(t, config.OptionLogger(slog.New(rec)), config.OptionDriverConfig("bridge", drv))
	testrig.WithUplink6(t, r)
	n := testrig.DualStackNet(t, r.Ctrl, "heal", "", "10.60.0.0/24", "fd60::/64",
		libnetwork.NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.enable_icc": "false"}))
	a1 := r.MustRun(t, n, "a1", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping([]types.PortBinding{testrig.TCP(80, 8080)})})
	a2 := r.MustRun(t, n, "a2", nil)
	testrig.Serve(t, a1.NS, "tcp", ":80", "a1") // [::]: both families
	testrig.InNS(t, r.Host.NS, iptables, "-I", "DOCKER-USER", "1", "-s", "198.51.100.0/24", "-j", "DROP")
	h := &healRig{PortRig: r, log: rec, a1: a1, a2: a2, netID: n.ID()}
	h.traffic(t, "before any flush")
	return h
}

// traffic checks what the firewall is for: the published port answers
// from outside in both families, and ICC off keeps a2 from reaching a1
// directly in either. IPv6 is retried a while: its first packets may wait
// on neighbour discovery.
func (h *healRig) traffic(t *testing.T, when string) {
	t.Helper()
	if got, err := testrig.FetchWithin(h.Out.NS, "tcp", net.JoinHostPort(testrig.UplinkHost, "8080"), 3*time.Second); err != nil || !strings.HasPrefix(got, "a1") {
		t.Fatalf("%s: published port from outside: %q, %v", when, got, err)
	}
	testrig.FetchSoon(t, h.Out.NS, "tcp", net.JoinHostPort(testrig.UplinkHost6, "8080"), "a1")
	if got, err := testrig.Fetch(h.a2.NS, "tcp", net.JoinHostPort(h.a1.IP, "80")); err == nil {
		t.Fatalf("%s: ICC off, yet a2 reached a1: %q\n%s", when, got, testrig.InNS(t, h.Host.NS, "nft", "list", "ruleset"))
	}
	if got, err := testrig.Fetch(h.a2.NS, "tcp", net.JoinHostPort(testrig.IP6Of(t, h.a1), "80")); err == nil {
		t.Fatalf("%s: ICC off, yet a2 reached a1 over IPv6: %q\n%s", when, got, testrig.InNS(t, h.Host.NS, "nft", "list", "ruleset"))
	}
}

// state is every table of both families (iptables-save and
// ip6tables-save, counters and DOCKER-USER's rules left out: the chain is
// the user's and a repair leaves it as it finds it) and the published
// ports' nftables map elements.
func (h *healRig) state(t *testing.T) string {
	t.Helper()
	elems := testrig.PortElems(t, h.Host.NS)
	slices.Sort(elems)
	return withoutUserRules(stripCounters(testrig.InNS(t, h.Host.NS, "iptables-save"))) +
		withoutUserRules(stripCounters(testrig.InNS(t, h.Host.NS, "ip6tables-save"))) +
		"port map elements:\n" + strings.Join(elems, "\n")
}

func (h *healRig) userChain(t *testing.T) string {
	t.Helper()
	return testrig.InNS(t, h.Host.NS, "iptables", "-S", "DOCKER-USER")
}

// wipes are the ways another tool takes our rules away.
var wipes = []struct {
	name string
	cmds [][]string
	// userChainAfter is DOCKER-USER as the repair leaves it: an existing
	// chain is the user's and stays as flushed; a deleted one is made
	// again with its RETURN, as Setup makes a missing one.
	userChainAfter string
}{
	{"iptables-F", [][]string{{"iptables", "-F"}, {"iptables", "-t", "nat", "-F"}},
		"-N DOCKER-USER\n"},
	{"nft-flush-ruleset", [][]string{{"nft", "flush", "ruleset"}},
		"-N DOCKER-USER\n-A DOCKER-USER -m comment --comment cnm-global -j RETURN\n"},
	{"firewalld-reload", [][]string{{"sh", "-c", firewalldReload}},
		"-N DOCKER-USER\n-A DOCKER-USER -m comment --comment cnm-global -j RETURN\n"},
	// Table by table, command by command: repairs run while the wipe
	// goes on (a chain deletion may then fail, busy again), and the end
	// must still be whole. What DOCKER-USER ends as depends on the race.
	{"table-by-table", tableByTable(), ""},
}

func tableByTable() [][]string {
	var cmds [][]string
	for _, bin := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"raw", "mangle", "nat", "filter"} {
			cmds = append(cmds, []string{"sh", "-c", bin + " -t " + table + " -F; " + bin + " -t " + table + " -X 2>/dev/null; true"})
		}
	}
	return cmds
}

// firewalldReload is a firewall manager's full reload: one restore per
// family (without --noflush) of every table with nothing in it but
// ACCEPT policies, which flushes every chain and deletes every user chain.
const firewalldReload = `for bin in iptables-restore ip6tables-restore; do $bin <<EOF
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
*mangle
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
EOF
done`

// Rules flushed four ways come back on their own, announced by an
// nftables event (the periodic check is seconds away): every table of
// both families (raw and mangle too) and the published ports' map
// elements are as before, and traffic works again in both families: the
// published port answers, ICC-off isolation holds. The user's DOCKER-USER
// rule is never re-added. The repair is logged as a structured record.
func TestFirewallHealsAfterFlush(t *testing.T) {
	t.Parallel()
	for _, w := range wipes {
		t.Run(w.name, func(t *testing.T) {
			t.Parallel()
			h := newHealRig(t)
			before := h.state(t)
			if !strings.Contains(before, "*raw\n") || !strings.Contains(before, "cnm-") {
				t.Fatalf("nothing of ours to compare:\n%s", before)
			}
			h.log.Drain()
			since := h.log.Count()
			for _, cmd := range w.cmds {
				testrig.InNS(t, h.Host.NS, cmd[0], cmd[1:]...)
			}
			rec := h.log.WaitFor(t, "firewall repaired")
			if n, _ := rec.Attrs["rules"].(int64); n == 0 {
				t.Errorf("repair record counts no rules: %v", rec.Attrs)
			}
			owners, _ := rec.Attrs["owners"].([]string)
			if !slices.Contains(owners, firewall.NetworkOwner(h.netID)) {
				t.Errorf("repair record owners %v lack the network's %s", owners, firewall.NetworkOwner(h.netID))
			}
			// The rest of a multi-command wipe may need one more repair.
			testrig.Eventually(t, "the firewall to be whole again", func() bool {
				rep, err := h.Ctrl.RepairFirewall()
				return err == nil && rep.Empty()
			})
			if after := h.state(t); after != before {
				t.Errorf("after %s and repair:\n%s\nwant:\n%s", w.name, after, before)
			}
			h.traffic(t, "after "+w.name+" and repair")
			// Every repair that put something back in the background was
			// an event's (the periodic check is an hour away); the
			// RepairFirewall calls above only confirm.
			for _, r := range h.log.Since(since) {
				if r.Msg == "firewall repaired" && r.Attrs["trigger"] != "event" && r.Attrs["trigger"] != "demand" {
					t.Errorf("repair triggered by %v", r.Attrs["trigger"])
				}
			}
			if tr := rec.Attrs["trigger"]; tr != "event" {
				t.Errorf("first repair triggered by %v, want an nftables event", tr)
			}
			if got := h.userChain(t); w.userChainAfter != "" && got != w.userChainAfter {
				t.Errorf("DOCKER-USER after %s and repair:\n%s\nwant:\n%s", w.name, got, w.userChainAfter)
			}
			if got := h.userChain(t); strings.Contains(got, healUserRule) {
				t.Errorf("the user's rule was put back by the repair:\n%s", got)
			}
		})
	}
}

// A repair adds only what is missing: one rule deleted by hand comes back
// (on demand here, reported by RepairFirewall), nothing else is rewritten,
// and DOCKER-USER with the user's rule stays exactly as it was.
func TestFirewallRepairOnDemand(t *testing.T) {
	t.Parallel()
	h := newHealRig(t)
	user := h.userChain(t)
	if !strings.Contains(user, healUserRule) {
		t.Fatalf("DOCKER-USER lacks the user's rule:\n%s", user)
	}
	before := testrig.InNS(t, h.Host.NS, "iptables-save")
	var victim string
	for _, l := range strings.Split(testrig.InNS(t, h.Host.NS, "iptables", "-S", "FORWARD"), "\n") {
		if strings.Contains(l, "-j DROP") && strings.Contains(l, firewall.NetworkOwner(h.netID)) {
			victim = strings.TrimPrefix(l, "-A FORWARD ")
		}
	}
	if victim == "" {
		t.Fatal("no ICC DROP rule in FORWARD")
	}
	// Deleting a rule is an nftables event too: the background repair may
	// win the race with RepairFirewall, so the report is checked on the
	// one that did it.
	h.log.Drain()
	testrig.InNS(t, h.Host.NS, "sh", "-c", "iptables -D FORWARD "+victim)
	rep, err := h.Ctrl.RepairFirewall()
	if err != nil {
		t.Fatal(err)
	}
	if rep.Firewall.Empty() {
		rec := h.log.WaitFor(t, "firewall repaired")
		if n, _ := rec.Attrs["rules"].(int64); n != 1 {
			t.Errorf("background repair record: %v", rec.Attrs)
		}
	} else if len(rep.Firewall.Rules) != 1 || rep.Firewall.Rules[0].Spec != victim || rep.Firewall.Count() != 1 {
		t.Errorf("RepairFirewall = %+v, want just %q", rep.Firewall, victim)
	}
	if after := testrig.InNS(t, h.Host.NS, "iptables-save"); stripCounters(after) != stripCounters(before) {
		t.Errorf("rules after repair:\n%s\nwant:\n%s", after, before)
	}
	if got := h.userChain(t); got != user {
		t.Errorf("DOCKER-USER after repair:\n%s\nwant:\n%s", got, user)
	}
	h.traffic(t, "after repair")
	if rep, err := h.Ctrl.RepairFirewall(); err != nil || !rep.Empty() {
		t.Errorf("second RepairFirewall = %+v, %v; want nothing", rep, err)
	}
}

// stripCounters drops iptables-save's comment lines and chain counters,
// which change with traffic.
func stripCounters(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, ":") {
			if i := strings.LastIndexByte(l, ' '); i > 0 {
				l = l[:i]
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// A sandbox's DNS redirect removed by hand comes back on demand
// (RepairFirewall reports the sandbox) and by the periodic check, and
// names resolve again.
func TestDNSRedirectRepaired(t *testing.T) {
	t.Parallel()
	rec := testrig.NewRecorder()
	// No periodic check until the test asks for one: it would race with
	// the checks that the redirect is gone, and with RepairFirewall.
	ticks := make(chan time.Time)
	c, _ := testrig.NewPrivController(t, config.OptionLogger(slog.New(rec)), testrig.DNSCheckTicks(ticks))
	n := testrig.BridgeNet(t, c, "dnsheal", "cnmdnsh0", "10.61.0.0/24")
	sbA := testrig.KernelSandbox(t, c, "c-a")
	sbB := testrig.KernelSandbox(t, c, "c-b")
	testrig.Joined(t, n, sbA, "a")
	b := testrig.Joined(t, n, sbB, "b")
	nsA, _ := testrig.SandboxNS(t, sbA)
	testrig.Expect(t, nsA, "udp", "b", dns.TypeA, testrig.EpIP(b))

	removeRedirect := func() {
		t.Helper()
		testrig.InNS(t, nsA, "nft", "delete", "table", "ip", dnsnat.Table)
		if _, err := testrig.Query(nsA, "udp", "b", dns.TypeA); err == nil {
			t.Fatal("names still resolve without the redirect")
		}
	}
	removeRedirect()
	rep, err := c.RepairFirewall()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.DNSRedirects, []string{sbA.ID()}) {
		t.Fatalf("repaired DNS redirects %v, want [%s]", rep.DNSRedirects, sbA.ID())
	}
	testrig.Expect(t, nsA, "udp", "b", dns.TypeA, testrig.EpIP(b))
	testrig.Expect(t, nsA, "tcp", "b", dns.TypeA, testrig.EpIP(b))

	removeRedirect()
	rec.Drain()
	ticks <- time.Now()
	r := rec.WaitFor(t, "dns redirect repaired")
	if r.Attrs["trigger"] != "periodic" || r.Attrs["sandbox"] != sbA.ID() {
		t.Errorf("dns repair record %v", r.Attrs)
	}
	testrig.Expect(t, nsA, "udp", "b", dns.TypeA, testrig.EpIP(b))
	if rep, err := c.RepairFirewall(); err != nil || !rep.Empty() {
		t.Errorf("RepairFirewall with nothing missing = %+v, %v", rep, err)
	}
}

// The watcher and the periodic loops end with the controller.
func TestRepairGoroutinesStopWithController(t *testing.T) {
	h := newHealRig(t)
	if !repairGoroutines() {
		t.Fatal("no repair goroutine runs (the test would prove nothing)")
	}
	testrig.Teardown(t, h.Ctrl)
	h.Ctrl.Stop()
	testrig.Eventually(t, "the repair goroutines to end", func() bool { return !repairGoroutines() })
}

// repairGoroutines reports whether a goroutine of the watcher, the
// healer or the DNS check loop is alive in this process.
func repairGoroutines() bool {
	buf := make([]byte, 1<<22)
	stacks := string(buf[:runtime.Stack(buf, true)])
	for _, fn := range []string{"nfwatch.(*Watcher).loop", "bridge.(*healer).loop", "(*Controller).startRepairLoop"} {
		if strings.Contains(stacks, fn) {
			return true
		}
	}
	return false
}

// The controller's own work (networks, containers, published ports up and
// down: iptables-restore runs and map transactions that delete things)
// wakes no check: only a foreign removal does. A foreign marker removal
// before and after the churn each make one event-triggered check.
func TestOwnChurnTriggersNoCheck(t *testing.T) {
	t.Parallel()
	h := newHealRig(t)
	marker := func() {
		t.Helper()
		h.log.Drain()
		testrig.InNS(t, h.Host.NS, "sh", "-c", "nft add table ip marker && nft delete table ip marker")
		for {
			r := h.log.WaitFor(t, "firewall checked")
			if r.Attrs["trigger"] == "event" {
				return
			}
		}
	}
	marker()
	since := h.log.Count()
	for i := 0; i < 3; i++ {
		n := h.BridgeNet(t, "churn", "10.62.0.0/24")
		c := h.MustRun(t, n, "churn", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping([]types.PortBinding{testrig.TCP(81, 8181)})})
		c.Stop(t)
		if err := n.Delete(); err != nil { // waits for the port releases
			t.Fatal(err)
		}
	}
	// Not a deadline: a check wrongly woken by the last of our own
	// transactions gets the time to run apart from the marker's.
	time.Sleep(100 * time.Millisecond)
	marker()
	var checks []map[string]any
	for _, r := range h.log.Since(since) {
		if r.Msg == "firewall checked" && r.Attrs["trigger"] == "event" {
			checks = append(checks, r.Attrs)
		}
	}
	if len(checks) != 1 {
		t.Errorf("event-triggered checks during our own churn and one marker: %d, want 1: %v", len(checks), checks)
	}
}
