package bridge

import (
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/nfwatch"
)

// Keeping the host firewall in force: another tool may remove our rules
// (`iptables -F`, `nft flush ruleset`, a firewall manager's reload), and
// isolation and published ports would be gone until the next change. The
// healer puts back what the record says (firewall.Repair) when an
// nftables event says another process removed something, and at a
// periodic check for what no event announces (iptables-legacy).
const (
	// healSettle is how long the healer waits after an event for the
	// rest of its burst (a reload is many transactions), so one repair
	// follows it.
	healSettle = 20 * time.Millisecond
	// healEvery is the periodic check while events see every change of
	// our rules (iptables-nft): a safety net only, so it is rare.
	healEvery = 5 * time.Second
	// healFallbackEvery is the periodic check where events cannot see our
	// iptables rules (iptables-legacy, or no event socket): the only way
	// a removal is noticed, often enough that rules are back within the
	// 1 s CONTRACT.md promises (a period plus one check of ~20 ms, with
	// room for a loaded machine). A check lists every table (8 execs):
	// about 45 ms of CPU per second idle at this rate, measured by
	// BenchmarkFirewallHealLegacy, against ~4 ms/s at healEvery.
	healFallbackEvery = 500 * time.Millisecond
	// healRetry is the first wait before retrying a failed repair (the
	// other tool may still be at work); it doubles up to healEvery.
	healRetry = 100 * time.Millisecond
)

// Repair triggers, as logged.
const (
	TriggerEvent    = "event"    // an nftables event announced a foreign removal
	TriggerPeriodic = "periodic" // the periodic check
	TriggerFallback = "fallback" // the frequent check where events cannot see our rules
	TriggerDemand   = "demand"   // RepairFirewall
	TriggerRetry    = "retry"    // again after a failed repair
)

// healer runs repairs of one Firewall in the background until close.
type healer struct {
	fw     *firewall.Firewall
	watch  *nfwatch.Watcher // nil: no events (periodic checks only)
	events <-chan struct{}  // watch's changes; nil without
	every  time.Duration
	tick   string // the trigger a periodic check is logged with
	log    *slog.Logger

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// healPeriod returns the period of checks and their trigger: set (a
// test's knob) or, when 0, healEvery while events see every change of our
// rules and healFallbackEvery where they cannot.
func healPeriod(set time.Duration, events, legacy bool) (time.Duration, string) {
	trigger := TriggerPeriodic
	if !events || legacy {
		trigger = TriggerFallback
	}
	switch {
	case set > 0:
		return set, trigger
	case trigger == TriggerFallback:
		return healFallbackEvery, trigger
	}
	return healEvery, trigger
}

func newHealer(fw *firewall.Firewall, watch *nfwatch.Watcher, every time.Duration, tick string, log *slog.Logger) *healer {
	h := &healer{fw: fw, watch: watch, every: every, tick: tick, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if watch != nil {
		h.events = watch.C()
	}
	go h.loop()
	return h
}

func (h *healer) loop() {
	defer close(h.done)
	tick := time.NewTicker(h.every)
	defer tick.Stop()
	events := h.events
	var retry <-chan time.Time // armed after a failed repair
	backoff := healRetry
	run := func(trigger string) {
		if _, err := h.repair(trigger); err != nil {
			retry = time.After(backoff)
			backoff = min(2*backoff, h.every)
			return
		}
		retry, backoff = nil, healRetry
	}
	for {
		select {
		case <-h.stop:
			return
		case <-events:
			settle := time.NewTimer(healSettle)
			select {
			case <-h.stop:
				settle.Stop()
				return
			case <-settle.C:
			}
			select { // events of the burst so far: covered by this repair
			case <-events:
			default:
			}
			run(TriggerEvent)
		case <-retry:
			run(TriggerRetry)
		case <-tick.C:
			run(h.tick)
		}
	}
}

// repair runs one Repair and logs what it did or why it failed.
func (h *healer) repair(trigger string) (firewall.Repairs, error) {
	start := time.Now()
	rep, err := h.fw.Repair()
	h.log.Debug("firewall checked", "trigger", trigger, "repaired", rep.Count(), "took", time.Since(start))
	if err != nil {
		h.log.Warn("firewall repair failed", "trigger", trigger, "repaired", rep.Count(), "err", err)
	}
	if !rep.Empty() {
		h.log.Info("firewall repaired", "trigger", trigger,
			"chains", len(rep.Chains), "rules", len(rep.Rules), "policies", len(rep.Policies),
			"port_elements", len(rep.Elems), "owners", repairOwners(rep), "took", time.Since(start))
	}
	return rep, err
}

// repairOwners names the owners (cnm-net-ID, cnm-ep-ID, cnm-global) whose
// rules or elements a repair put back, sorted.
func repairOwners(rep firewall.Repairs) []string {
	seen := map[string]bool{}
	for _, r := range rep.Rules {
		f := strings.Fields(r.Spec)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "--comment" {
				seen[f[i+1]] = true
			}
		}
	}
	for _, e := range rep.Elems {
		seen[e.Owner] = true
	}
	out := make([]string, 0, len(seen))
	for o := range seen {
		out = append(out, o)
	}
	sort.Strings(out)
	return out
}

// close stops the loop (a repair under way finishes first) and the watch.
func (h *healer) close() {
	h.stopOnce.Do(func() {
		close(h.stop)
		<-h.done
		if h.watch != nil {
			_ = h.watch.Close()
		}
	})
}

// RepairFirewall checks the host firewall against what the driver
// installed and puts back what is missing (see firewall.Repair); it
// returns what it put back. Without iptables (EnableIPTables=false) there
// is nothing to check.
func (d *Driver) RepairFirewall() (firewall.Repairs, error) {
	hf, ok := d.fw.(*hostFirewall)
	if !ok || hf.heal == nil {
		return firewall.Repairs{}, nil
	}
	return hf.heal.repair(TriggerDemand)
}
