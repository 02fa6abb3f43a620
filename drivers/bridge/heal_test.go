package bridge

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/fakeipt"
	"github.com/opencnm/libnetwork/firewall/fakenft"
)

// chanHandler hands every record to a channel, attrs flattened.
type chanHandler struct{ ch chan map[string]any }

func (h chanHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h chanHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	select {
	case h.ch <- m:
	default:
	}
	return nil
}
func (h chanHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h chanHandler) WithGroup(string) slog.Handler      { return h }

func waitRecord(t *testing.T, ch chan map[string]any, msg string) map[string]any {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-ch:
			if m["msg"] == msg {
				return m
			}
		case <-deadline:
			t.Fatalf("no %q record within 5 s", msg)
		}
	}
}

// fakeHealRig is a Firewall over fakes with one network, and a healer
// without events (as with iptables-legacy) checking every 20 ms.
func fakeHealRig(t *testing.T) (*firewall.Firewall, *fakeipt.Fake, chan map[string]any, *healer) {
	t.Helper()
	ipt, maps := fakeipt.New(), fakenft.New()
	fw := firewall.New(ipt, maps, false)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw.SetupNetwork(firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: mustCIDR(t, "10.9.0.0/24"), Masquerade: true}); err != nil {
		t.Fatal(err)
	}
	ch := make(chan map[string]any, 256)
	h := newHealer(fw, nil, 20*time.Millisecond, TriggerFallback, slog.New(chanHandler{ch}))
	t.Cleanup(h.close)
	return fw, ipt, ch, h
}

// Without events the periodic check repairs, and logs it.
func TestHealerPeriodicRepairs(t *testing.T) {
	fw, ipt, ch, _ := fakeHealRig(t)
	if err := ipt.Restore(firewall.IPv4, "*filter\n-F FORWARD\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	m := waitRecord(t, ch, "firewall repaired")
	if n, _ := m["rules"].(int64); m["trigger"] != TriggerFallback || n == 0 {
		t.Errorf("repair record %v", m)
	}
	if owners := m["owners"].([]string); strings.Join(owners, ",") != "cnm-global,cnm-net-n1" {
		t.Errorf("owners %v", owners)
	}
	if err := fw.Check(); err != nil {
		t.Error(err)
	}
}

// The period of checks: rare while events see our rules, within the 1 s
// promise where they cannot (iptables-legacy, no event socket); a test's
// knob sets the period but not what the checks are logged as.
func TestHealPeriod(t *testing.T) {
	for _, c := range []struct {
		set            time.Duration
		events, legacy bool
		every          time.Duration
		trigger        string
	}{
		{0, true, false, healEvery, TriggerPeriodic},
		{0, true, true, healFallbackEvery, TriggerFallback},
		{0, false, false, healFallbackEvery, TriggerFallback},
		{0, false, true, healFallbackEvery, TriggerFallback},
		{time.Hour, true, false, time.Hour, TriggerPeriodic},
		{time.Hour, true, true, time.Hour, TriggerFallback},
	} {
		every, trigger := healPeriod(c.set, c.events, c.legacy)
		if every != c.every || trigger != c.trigger {
			t.Errorf("healPeriod(%v, events %v, legacy %v) = %v, %q; want %v, %q", c.set, c.events, c.legacy, every, trigger, c.every, c.trigger)
		}
	}
	if healFallbackEvery > 750*time.Millisecond {
		t.Errorf("fallback period %v leaves no room in the 1 s promise", healFallbackEvery)
	}
}

// A failed repair is logged and retried soon, before the next period.
func TestHealerRetriesFailedRepair(t *testing.T) {
	ipt, maps := fakeipt.New(), fakenft.New()
	fw := firewall.New(ipt, maps, false)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	ch := make(chan map[string]any, 256)
	events := make(chan struct{}, 1)
	h := &healer{fw: fw, every: time.Hour, log: slog.New(chanHandler{ch}), stop: make(chan struct{}), done: make(chan struct{})}
	h.events = events
	go h.loop()
	defer h.close()
	if err := ipt.Restore(firewall.IPv4, "*filter\n-F FORWARD\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	ipt.FailLine(func(firewall.Family, string) error { return errors.New("injected") })
	events <- struct{}{}
	if m := waitRecord(t, ch, "firewall repair failed"); m["trigger"] != TriggerEvent {
		t.Errorf("failure record %v", m)
	}
	ipt.FailLine(nil)
	if m := waitRecord(t, ch, "firewall repaired"); m["trigger"] != TriggerRetry {
		t.Errorf("repair record %v", m)
	}
}
