package sandboxdns

import (
	"net"
	"strconv"
	"testing"
	"time"
)

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// deadline bounds a read from a resolver that should answer at once; it
// is generous because the machine may be loaded.
func deadline() time.Time { return time.Now().Add(10 * time.Second) }

func setup(t *testing.T) (*DNS, Config) {
	t.Helper()
	cfg := rig(t)
	d := &DNS{}
	if err := d.Setup(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Remove)
	return d, cfg
}

func TestUpdateStartsResolverBehindRedirect(t *testing.T) {
	d, cfg := setup(t)
	ns := &fakeNS{}
	if err := d.Update(ns, Want{Run: true, Forward: true}); err != nil {
		t.Fatal(err)
	}
	if !running(d) || ns.setCount() != 1 {
		t.Fatalf("running %v, redirects set %d; want a resolver and one redirect", running(d), ns.setCount())
	}
	p := ns.redirect
	if p.UDP == 0 || p.TCP == 0 {
		t.Fatalf("redirect leads to %+v", p)
	}
	if !query(t, p.UDP) {
		t.Fatalf("nothing answers at 127.0.0.11:%d, where the redirect leads", p.UDP)
	}
	if got, _ := dialed.Load().(string); got != "192.0.2.53:53" {
		t.Fatalf("a name the sandbox does not know went to %q, want resolv.conf's server 192.0.2.53:53", got)
	}
	if !namesEmbedded(t, cfg) {
		t.Fatalf("resolv.conf does not name the embedded resolver:\n%s", readFile(t, resolvPath(cfg)))
	}
}

func TestStopKeepsRedirectAndRestartRebindsIt(t *testing.T) {
	d, cfg := setup(t)
	ns := &fakeNS{}
	if err := d.Update(ns, Want{Run: true}); err != nil {
		t.Fatal(err)
	}
	first := ns.redirect
	if err := d.Update(ns, Want{}); err != nil {
		t.Fatal(err)
	}
	if running(d) || ns.removes != 0 || ns.redirect != first {
		t.Fatalf("after stop: running %v, removes %d, redirect %+v (want stopped, redirect %+v kept)", running(d), ns.removes, ns.redirect, first)
	}
	if namesEmbedded(t, cfg) {
		t.Fatalf("resolv.conf names a stopped resolver:\n%s", readFile(t, resolvPath(cfg)))
	}
	if err := d.Update(ns, Want{Run: true}); err != nil {
		t.Fatal(err)
	}
	if ns.setCount() != 1 || !query(t, first.UDP) {
		t.Fatalf("restart set %d redirects (want the first kept) or serves elsewhere than %+v", ns.setCount(), first)
	}
}

func TestFailedRedirectLeavesNothing(t *testing.T) {
	d, cfg := setup(t)
	ns := &fakeNS{setErr: errFake}
	if err := d.Update(ns, Want{Run: true}); err == nil {
		t.Fatal("Update succeeded with a failing redirect")
	}
	if running(d) || d.ports != (Ports{}) || namesEmbedded(t, cfg) {
		t.Fatalf("after a failed start: running %v, ports %+v, resolv.conf embedded %v", running(d), d.ports, namesEmbedded(t, cfg))
	}
	ns.setErr = nil
	if err := d.Update(ns, Want{Run: true}); err != nil || !running(d) {
		t.Fatalf("retry: %v, running %v", err, running(d))
	}
}

func TestPreparedSocketsAreUsedOrDropped(t *testing.T) {
	d, _ := setup(t)
	ns := &fakeNS{}
	d.Prepare(ns)
	d.Prepare(ns) // one preparation at a time
	if err := d.Update(ns, Want{Run: true}); err != nil {
		t.Fatal(err)
	}
	d.DropPrepared()
	if ns.setCount() != 1 || !query(t, ns.redirect.UDP) {
		t.Fatalf("prepared start set %d redirects, or does not serve at %+v", ns.setCount(), ns.redirect)
	}

	d2, _ := setup(t)
	ns2 := &fakeNS{}
	d2.Prepare(ns2)
	d2.DropPrepared()
	p := ns2.redirect
	// The dropped sockets are closed: their ports can be bound again.
	rs, err := bind(ns2, p)
	if err != nil {
		t.Fatalf("ports %+v of a dropped preparation still bound: %v", p, err)
	}
	rs.close()
	if running(d2) {
		t.Fatal("a dropped preparation started a resolver")
	}
}

func TestRepairPutsBackDamagedRedirect(t *testing.T) {
	d, _ := setup(t)
	ns := &fakeNS{}
	if ok, err := d.Repair(ns); ok || err != nil {
		t.Fatalf("repair with no redirect known: %v, %v", ok, err)
	}
	if err := d.Update(ns, Want{Run: true}); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Repair(ns); ok || err != nil {
		t.Fatalf("repair of a whole redirect: %v, %v", ok, err)
	}
	want := ns.redirect
	ns.damaged = true
	if ok, err := d.Repair(ns); !ok || err != nil {
		t.Fatalf("repair of a damaged redirect: %v, %v", ok, err)
	}
	if ns.redirect != want || ns.damaged {
		t.Fatalf("repaired redirect leads to %+v (damaged %v), want %+v", ns.redirect, ns.damaged, want)
	}
}

func TestAdoptedRedirectIsBoundAgain(t *testing.T) {
	d, _ := setup(t)
	// A previous run's redirect, to ports now free.
	free, err := bind(&fakeNS{}, Ports{})
	if err != nil {
		t.Fatal(err)
	}
	p := Ports{UDP: uint16(free.udp.LocalAddr().(*net.UDPAddr).Port), TCP: uint16(free.tcp.Addr().(*net.TCPAddr).Port)}
	free.close()
	ns := &fakeNS{redirect: p}
	if err := d.AdoptRedirect(ns); err != nil {
		t.Fatal(err)
	}
	if err := d.Update(ns, Want{Run: true}); err != nil {
		t.Fatal(err)
	}
	if ns.setCount() != 0 || !query(t, p.UDP) {
		t.Fatalf("adopted redirect to %+v replaced (%d sets) or not served", p, ns.setCount())
	}
}

func TestDetachForgetsPortsUntilReattached(t *testing.T) {
	d, _ := setup(t)
	old := &fakeNS{}
	if err := d.Update(old, Want{Run: true}); err != nil {
		t.Fatal(err)
	}
	first := old.redirect
	reattach := d.Detach()
	if running(d) || old.removes != 0 {
		t.Fatalf("detach: running %v, removed %d redirects from the old namespace", running(d), old.removes)
	}
	moved := &fakeNS{}
	if err := d.Update(moved, Want{Run: true}); err != nil {
		t.Fatal(err)
	}
	if moved.setCount() != 1 {
		t.Fatalf("new namespace got %d redirects, want its own", moved.setCount())
	}
	d.Stop(moved, true)
	if moved.removes != 1 {
		t.Fatalf("Stop with removal took out %d redirects", moved.removes)
	}
	reattach()
	if err := d.Update(old, Want{Run: true}); err != nil {
		t.Fatal(err)
	}
	if old.setCount() != 1 || !query(t, first.UDP) {
		t.Fatalf("moving back replaced the old redirect (%d sets) or does not serve at %+v", old.setCount(), first)
	}
}
