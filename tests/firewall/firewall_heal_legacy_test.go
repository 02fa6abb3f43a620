package firewall

import (
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testrig"
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
// again in both families. The rules are in the legacy tables, none in
// iptables-nft's.
func TestFirewallHealsLegacy(t *testing.T) {
	t.Parallel()
	h := newHealRigOf(t, map[string]any{knobs.BridgeIPTablesLegacy: true}, "iptables-legacy")
	r, rec := h.PortRig, h.log
	save := func() string {
		t.Helper()
		return withoutUserRules(stripCounters(testrig.InNS(t, r.Host.NS, "iptables-legacy-save"))) +
			withoutUserRules(stripCounters(testrig.InNS(t, r.Host.NS, "ip6tables-legacy-save")))
	}
	before := save()
	if !strings.Contains(before, "cnm-global") || !strings.Contains(before, "fd60::/64") {
		t.Fatalf("no rule of ours in the legacy tables:\n%s", before)
	}
	if nftRules := testrig.InNS(t, r.Host.NS, "iptables-nft-save"); strings.Contains(nftRules, "cnm-") {
		t.Fatalf("rules of ours in iptables-nft's tables with legacy binaries chosen:\n%s", nftRules)
	}

	rec.Drain()
	start := time.Now()
	testrig.InNS(t, r.Host.NS, "sh", "-c", "iptables-legacy -F && iptables-legacy -t nat -F && ip6tables-legacy -F && ip6tables-legacy -t mangle -F")
	got := rec.WaitFor(t, "firewall repaired")
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
	testrig.Eventually(t, "the firewall to be whole again", func() bool {
		rep, err := h.Ctrl.RepairFirewall()
		return err == nil && rep.Empty()
	})
	// DOCKER-USER is the user's: flushed, it stays flushed.
	if after := save(); after != before {
		t.Errorf("legacy rules after repair:\n%s\nwant (DOCKER-USER's rules aside):\n%s", after, before)
	}
	if got := testrig.InNS(t, r.Host.NS, "iptables-legacy", "-S", "DOCKER-USER"); got != "-N DOCKER-USER\n" {
		t.Errorf("DOCKER-USER after the flush and repair:\n%s", got)
	}
	h.traffic(t, "after iptables-legacy -F and repair")
}
