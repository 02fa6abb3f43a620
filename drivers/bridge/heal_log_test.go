package bridge

import (
	"log/slog"
	"os/exec"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork/internal/knobs"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/netlabel"
)

// Without nftables events (the subscription fails) the driver says so
// once, with the error and the period, checks at the fallback rate, and a
// flush of its rules is put back by the fallback check.
func TestNoEventsLoggedAndFallback(t *testing.T) {
	ch := make(chan map[string]any, 256)
	d, host := newTestDriver(t, map[string]any{netlabel.Logger: slog.New(chanHandler{ch}), knobs.BridgeNoEvents: true})
	m := waitRecord(t, ch, "nftables events unavailable: firewall repairs wait for the periodic check")
	if m["every"] != healFallbackEvery || m["err"] == nil {
		t.Errorf("record %v, want every=%v and the error", m, healFallbackEvery)
	}
	hf := d.fw.(*hostFirewall)
	if hf.heal.every != healFallbackEvery || hf.heal.tick != TriggerFallback || hf.heal.watch != nil {
		t.Fatalf("healer every %v trigger %q watch %v; want the fallback", hf.heal.every, hf.heal.tick, hf.heal.watch)
	}
	if err := host.Do(exec.Command("iptables", "-F").Run); err != nil {
		t.Fatal(err)
	}
	if r := waitRecord(t, ch, "firewall repaired"); r["trigger"] != TriggerFallback {
		t.Errorf("repair record %v, want the fallback's", r)
	}
}

// A group delete the kernel refuses (lo cannot be deleted, and the kernel
// checks every member before deleting any) is logged with the number of
// veths and the error, and reported by flush.
func TestReaperFailureLogged(t *testing.T) {
	host := testutil.NewHostNS(t)
	ch := make(chan map[string]any, 16)
	r, err := newReaper(host.NS, slog.New(chanHandler{ch}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	lo, err := host.Netlink.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	a := netlink.NewLinkAttrs()
	a.Name = "reapfail0"
	if err := host.Netlink.LinkAdd(&netlink.Veth{LinkAttrs: a, PeerName: "reapfail1"}); err != nil {
		t.Fatal(err)
	}
	v, err := host.Netlink.LinkByName("reapfail0")
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []int{lo.Attrs().Index, v.Attrs().Index} {
		if _, err := r.retire(idx); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.flush(); err == nil {
		t.Fatal("flush after a refused group delete reported no error")
	}
	m := waitRecord(t, ch, "deleting retired veths failed")
	if m["veths"] != uint64(2) || m["err"] == nil {
		t.Errorf("record %v, want veths=2 and the error", m)
	}
	if _, err := host.Netlink.LinkByName("reapfail0"); err != nil {
		t.Errorf("the veth went although the delete failed: %v", err)
	}
}
