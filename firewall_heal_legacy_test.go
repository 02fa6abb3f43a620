package libnetwork_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/types"
)

// withoutUserRules drops the rules in DOCKER-USER from an iptables-save
// listing: the chain is the user's, and a repair leaves it as it finds it.
func withoutUserRules(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "-A DOCKER-USER ") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// With iptables-legacy no nftables event reports a flush of our rules:
// the frequent fallback check finds it and puts everything back, well
// within the 5 s period a check has where events work, and traffic works
// again. The rules are in the legacy tables, none in iptables-nft's.
func TestFirewallHealsLegacy(t *testing.T) {
	rec := newRecorder()
	r := newPortRig(t, config.OptionLogger(slog.New(rec)),
		config.OptionDriverConfig("bridge", map[string]any{knobs.BridgeIPTablesLegacy: true}))
	n := r.bridgeNet(t, "heal", "10.60.0.0/24",
		libnetwork.NetworkOptionDriverOpts(map[string]string{"com.docker.network.bridge.enable_icc": "false"}))
	a1 := r.mustRun(t, n, "a1", []libnetwork.EndpointOption{libnetwork.CreateOptionPortMapping([]types.PortBinding{tcp(80, 8080)})})
	a2 := r.mustRun(t, n, "a2", nil)
	serve(t, a1.ns, "tcp", ":80", "a1")
	h := &healRig{portRig: r, log: rec, a1: a1, a2: a2, netID: n.ID()}
	h.traffic(t, "before the flush")

	save := func() string {
		t.Helper()
		return stripCounters(inNS(t, r.host.NS, "iptables-legacy-save")) + stripCounters(inNS(t, r.host.NS, "ip6tables-legacy-save"))
	}
	before := save()
	if !strings.Contains(before, "cnm-global") {
		t.Fatalf("no rule of ours in the legacy tables:\n%s", before)
	}
	if nftRules := inNS(t, r.host.NS, "iptables-nft-save"); strings.Contains(nftRules, "cnm-") {
		t.Fatalf("rules of ours in iptables-nft's tables with legacy binaries chosen:\n%s", nftRules)
	}

	rec.drain()
	start := time.Now()
	inNS(t, r.host.NS, "sh", "-c", "iptables-legacy -F && iptables-legacy -t nat -F")
	got := rec.waitFor(t, "firewall repaired")
	took := time.Since(start)
	if got.Attrs["trigger"] != "fallback" {
		t.Errorf("repair triggered by %v, want the fallback check", got.Attrs["trigger"])
	}
	// Generous for a loaded machine; the point is the fallback's period
	// (500 ms), far below the 5 s a check has where events work.
	if took > 4*time.Second {
		t.Errorf("rules back after %v", took)
	}
	t.Logf("rules back %v after the flush", took)
	eventually(t, "the firewall to be whole again", func() bool {
		rep, err := h.c.RepairFirewall()
		return err == nil && rep.Empty()
	})
	// DOCKER-USER is the user's: flushed, it stays flushed.
	if after := save(); withoutUserRules(after) != withoutUserRules(before) {
		t.Errorf("legacy rules after repair:\n%s\nwant (DOCKER-USER's rules aside):\n%s", after, before)
	}
	if got := inNS(t, r.host.NS, "iptables-legacy", "-S", "DOCKER-USER"); got != "-N DOCKER-USER\n" {
		t.Errorf("DOCKER-USER after the flush and repair:\n%s", got)
	}
	h.traffic(t, "after iptables-legacy -F and repair")
}
