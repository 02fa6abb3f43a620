package libnetwork

import (
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/opencnm/libnetwork/driverapi"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/sandboxdns"
	"github.com/opencnm/libnetwork/types"
)

// Keeping the rules in force. The host namespace's firewall belongs to the
// bridge driver, which repairs it on its own (within a second of an
// nftables event saying another process removed something, and at a
// periodic check; see drivers/bridge/heal.go). The sandboxes' DNS
// redirects live in namespaces nobody watches: the controller checks them
// periodically (dnsCheckEvery) and on demand.

// dnsCheckEvery is how often the sandboxes' DNS redirects are checked:
// one netlink listing per sandbox with a redirect.
const dnsCheckEvery = 5 * time.Second

// Repairs is what RepairFirewall put back.
type Repairs struct {
	// Firewall: the host namespace's chains, rules, policies and port
	// map elements.
	Firewall firewall.Repairs
	// DNSRedirects: IDs of the sandboxes whose embedded DNS redirect was
	// put back, sorted.
	DNSRedirects []string
}

// Empty reports whether nothing was repaired.
func (r Repairs) Empty() bool { return r.Firewall.Empty() && len(r.DNSRedirects) == 0 }

// RepairFirewall checks, now, that the rules the controller installed are
// in the kernel and puts back what another tool removed: the host
// firewall's chains and rules, published ports' map elements, and every
// sandbox's embedded DNS redirect. It only adds what is missing (rules
// that are there are never rewritten) and never touches what the user
// owns (DOCKER-USER's rules). It returns what it put back; an error says
// what could not be checked or repaired, the rest still is.
//
// The controller does this on its own too (see docs/design.md, "Rules stay
// in force"); this is for callers that know they just ran a tool that
// flushes rules, and for health checks.
func (c *Controller) RepairFirewall() (_ Repairs, err error) {
	defer classify(&err)
	c.mu.Lock()
	stopped := c.stopped
	c.mu.Unlock()
	if stopped {
		return Repairs{}, types.ForbiddenErrorf("repairing firewall: the controller is stopped")
	}
	var rep Repairs
	var errs []error
	for _, r := range c.drv.firewallRepairers() {
		fr, err := r.RepairFirewall()
		rep.Firewall.Add(fr)
		errs = append(errs, err)
	}
	rep.DNSRedirects, err = c.repairDNSRedirects("demand")
	errs = append(errs, err)
	return rep, errors.Join(errs...)
}

// firewallRepairers returns the registered drivers that keep rules.
func (r *registry) firewallRepairers() []driverapi.FirewallRepairer {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.drivers))
	for name := range r.drivers {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []driverapi.FirewallRepairer
	for _, name := range names {
		if fr, ok := r.drivers[name].Driver.(driverapi.FirewallRepairer); ok {
			out = append(out, fr)
		}
	}
	return out
}

// repairDNSRedirects puts back the DNS redirect of every sandbox whose
// namespace should hold one and does not (intact), and logs what it did.
func (c *Controller) repairDNSRedirects(trigger string) ([]string, error) {
	var fixed []string
	var errs []error
	for _, sb := range c.Sandboxes() {
		ok, err := repairDNSRedirect(sb)
		if err != nil {
			c.cfg.Logger.Warn("dns redirect repair failed", "trigger", trigger, "sandbox", sb.id, "err", err)
			errs = append(errs, err)
		}
		if ok {
			c.cfg.Logger.Info("dns redirect repaired", "trigger", trigger, "sandbox", sb.id)
			fixed = append(fixed, sb.id)
		}
	}
	return fixed, errors.Join(errs...)
}

// repairDNSRedirect has sb's DNS repair its namespace's redirect. A
// sandbox busy with a join, leave or delete is skipped: that operation
// owns the redirect, and the next check comes soon.
func repairDNSRedirect(sb *Sandbox) (repaired bool, err error) {
	if !sb.opMu.TryLock() {
		return false, nil
	}
	defer sb.opMu.Unlock()
	c := sb.ctrl
	c.mu.Lock()
	s, deleting := sb.osSbox, sb.deleting
	c.mu.Unlock()
	if deleting {
		return false, nil
	}
	return sb.dns.Repair(sandboxdns.OS(s))
}

// repairLoop checks the sandboxes' DNS redirects every interval until
// stop is closed.
type repairLoop struct {
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

func (c *Controller) startRepairLoop(every time.Duration) *repairLoop {
	l := &repairLoop{stop: make(chan struct{}), done: make(chan struct{})}
	ticks, _ := c.cfg.DriverCfg[knobs.Controller][knobs.DNSCheckTicks].(<-chan time.Time)
	go func() {
		defer close(l.done)
		if ticks == nil {
			t := time.NewTicker(every)
			defer t.Stop()
			ticks = t.C
		}
		for {
			select {
			case <-l.stop:
				return
			case <-ticks:
				_, _ = c.repairDNSRedirects("periodic") // logged there
			}
		}
	}()
	return l
}

// close stops the loop and waits for a check under way.
func (l *repairLoop) close() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		close(l.stop)
		<-l.done
	})
}
