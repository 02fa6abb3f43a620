package libnetwork_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/store"
	"github.com/vishvananda/netlink"
)

// Regression tests for what TestCrashRecovery found: each sets up by hand
// the state a SIGKILL at one point of an operation leaves, then restarts.

// editRecord rewrites one stored record (the controller is stopped): the
// record of kind and id as edit leaves it, given the stored one (or a zero
// one if there is none).
func editRecord[R any](t *testing.T, r *restartable, kind, id string, edit func(rec *R)) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(r.last.Config().DataDir, libnetwork.StoreFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var rec R
	if raw, err := st.Get(kind, id); err == nil {
		if err := records.Decode(kind, id, raw, &rec); err != nil {
			t.Fatal(err)
		}
	}
	edit(&rec)
	b, err := records.Encode(kind, id, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(store.Op{Kind: kind, ID: id, Value: b}); err != nil {
		t.Fatal(err)
	}
}

func hostLinkByAlias(t *testing.T, h *netlink.Handle, alias string) []netlink.Link {
	t.Helper()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var out []netlink.Link
	for _, l := range links {
		if l.Attrs().Alias == alias {
			out = append(out, l)
		}
	}
	return out
}

// A Leave killed after it took the interface out of the sandbox (renamed
// gone<n>, its host veth retired) but before its record was written: the
// next start finishes the leave and keeps the live sandbox. It used to
// drop the whole sandbox, and keep it registered with its namespace gone.
func TestCrashDuringLeaveKeepsSandbox(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	n := bridgeNet(t, c, "net", "cnmlv0", "10.92.0.0/24")
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	must[*libnetwork.Endpoint](t)(n.CreateEndpoint("other"))
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	r.last.Stop()
	// What the Leave had done: eth0 detached inside, host end retired.
	_, h := sandboxNS(t, sb)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(eth0); err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetName(eth0, fmt.Sprintf("gone%d", eth0.Attrs().Index)); err != nil {
		t.Fatal(err)
	}
	for _, v := range hostLinkByAlias(t, r.host.Netlink, "opencnm:ep:"+ep.ID()) {
		// Leave retires the host end by its group alone (it stays up).
		if err := r.host.Netlink.LinkSetGroup(v, bridge.ReapGroup); err != nil {
			t.Fatal(err)
		}
	}
	r.last = nil

	c = r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rsb, err := c.SandboxByID(sb.ID())
	if err != nil {
		t.Fatalf("live sandbox dropped: %v", err)
	}
	n2 := must[*libnetwork.Network](t)(c.NetworkByName("net"))
	rep := must[*libnetwork.Endpoint](t)(n2.EndpointByName("e"))
	if rep.Info().Sandbox() != nil {
		t.Fatal("endpoint still joined after its leave was finished")
	}
	if got := linkNames(t, h); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after restart: %v, want lo only", got)
	}
	hostLinksSettle(t, r.host, "lo", "cnmlv0")
	// The sandbox is usable: another endpoint joins and gets eth0.
	rother := must[*libnetwork.Endpoint](t)(n2.EndpointByName("other"))
	if err := rother.Join(rsb); err != nil {
		t.Fatalf("joining the kept sandbox: %v", err)
	}
	if got := addrsOf(t, h, "eth0"); len(got) != 1 || got[0] != rother.Info().Iface().Address().String() {
		t.Fatalf("eth0 addresses %v", got)
	}
}

// A veth retired by a Leave still carries its endpoint's tag until the
// reaper deletes it; if the endpoint joined again and the process was
// killed before the reaper ran, two veths carry the tag. The restart must
// take the live one back and delete the retired one.
func TestRestartSkipsRetiredVeth(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	n := bridgeNet(t, c, "net", "cnmrv0", "10.93.0.0/24")
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	live := hostLinkByAlias(t, r.host.Netlink, "opencnm:ep:"+ep.ID())
	if len(live) != 1 {
		t.Fatalf("tagged veths: %d", len(live))
	}
	r.last.Stop()
	r.last = nil
	// The retired one: created first in the listing order does not matter,
	// the group tells them apart.
	old := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethold", Group: bridge.ReapGroup}, PeerName: "vetholdp"}
	if err := r.host.Netlink.LinkAdd(old); err != nil {
		t.Fatal(err)
	}
	if err := r.host.Netlink.LinkSetAlias(old, "opencnm:ep:"+ep.ID()); err != nil {
		t.Fatal(err)
	}

	c = r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got := hostLinkByAlias(t, r.host.Netlink, "opencnm:ep:"+ep.ID())
	if len(got) != 1 || got[0].Attrs().Index != live[0].Attrs().Index {
		t.Fatalf("after restart the tagged veths are %v, want only the live %s", got, live[0].Attrs().Name)
	}
	// The driver holds the live veth: Leave retires it, nothing is left.
	rsb := must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID()))
	rep := must[*libnetwork.Endpoint](t)(must[*libnetwork.Network](t)(c.NetworkByName("net")).EndpointByName("e"))
	if err := rep.Leave(rsb); err != nil {
		t.Fatal(err)
	}
	hostLinksSettle(t, r.host, "lo", "cnmrv0")
}

// A Join killed after the driver made the veth (in the worst case before
// it tagged the host end) but before the join was confirmed: the kept
// sandbox loses the half-made interface, found by the endpoint's MAC, and
// its untagged host end goes with it.
func TestCrashDuringJoinCleansKeptSandbox(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	n := bridgeNet(t, c, "net", "cnmhj0", "10.94.0.0/24")
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	mac := ep.Info().Iface().MacAddress()
	r.last.Stop()
	editRecord(t, r, records.KindEndpoint, ep.ID(), func(e *records.Endpoint) {
		e.State, e.SandboxID = records.Joining, sb.ID()
	})
	ns, h := sandboxNS(t, sb)
	half := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethhalf"}, PeerName: "eth0",
		PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := r.host.Netlink.LinkAdd(half); err != nil {
		t.Fatal(err)
	}
	r.last = nil

	c = r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := linkNames(t, h); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after restart: %v, want lo only", got)
	}
	hostLinksSettle(t, r.host, "lo", "cnmhj0")
	rep := must[*libnetwork.Endpoint](t)(must[*libnetwork.Network](t)(c.NetworkByName("net")).EndpointByName("e"))
	if rep.Info().Sandbox() != nil {
		t.Fatal("half-joined endpoint came back joined")
	}
	if err := rep.Join(must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID()))); err != nil {
		t.Fatalf("joining again: %v", err)
	}
	// The confirmed state survives another restart cleanly.
	c = r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("second restore: %v", err)
	}
}

// NewNetwork killed between creating the bridge and tagging it: the
// rolled-back network's bridge carries no tag, but its name derives from
// the network's own ID, so the driver recognises and deletes it. A bridge
// of the same shape for another ID is left alone.
func TestCrashDuringNetworkCreateUntaggedBridge(t *testing.T) {
	r := newRestartable(t)
	r.start()
	r.last.Stop()
	id := strings.Repeat("ab", 32)
	editRecord(t, r, records.KindNetwork, id, func(n *records.Network) {
		n.ID, n.Name, n.Type, n.State = id, "half", "bridge", records.Creating
	})
	for _, name := range []string{"br-" + id[:12], "br-0123456789ab"} {
		if err := r.host.Netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	r.last = nil
	c := r.start()
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if _, err := c.NetworkByName("half"); err == nil {
		t.Fatal("unfinished network came back")
	}
	hostLinksSettle(t, r.host, "lo", "br-0123456789ab")
	if err := r.host.Netlink.LinkDel(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-0123456789ab"}}); err != nil {
		t.Fatal(err)
	}
}

// A Leave killed just after it set the interface down (address still on):
// the interface is taken as leaving, and removed with its veth.
func TestCrashDuringLeaveInterfaceDown(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	n := bridgeNet(t, c, "net", "cnmld0", "10.95.0.0/24")
	ep := must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	if err := ep.Join(sb); err != nil {
		t.Fatal(err)
	}
	r.last.Stop()
	_, h := sandboxNS(t, sb)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(eth0); err != nil {
		t.Fatal(err)
	}
	r.last = nil
	c = r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if _, err := c.SandboxByID(sb.ID()); err != nil {
		t.Fatalf("live sandbox dropped: %v", err)
	}
	rep := must[*libnetwork.Endpoint](t)(must[*libnetwork.Network](t)(c.NetworkByName("net")).EndpointByName("e"))
	if rep.Info().Sandbox() != nil {
		t.Fatal("endpoint with a downed interface still joined")
	}
	if got := linkNames(t, h); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after restart: %v, want lo only", got)
	}
	hostLinksSettle(t, r.host, "lo", "cnmld0")
}

// A Join on a network kept in memory only (no record, so no intent) killed
// before the driver tagged its veth: the kept sandbox's namespace is the
// library's own, so an interface no restored join accounts for is removed,
// its untagged host end with it.
func TestCrashDuringMemoryJoinCleansKeptSandbox(t *testing.T) {
	r := newRestartable(t)
	c := r.start()
	bridgeNet(t, c, "net", "cnmmj0", "10.96.0.0/24")
	sb := must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	r.last.Stop()
	_, h := sandboxNS(t, sb)
	ns, _ := sandboxNS(t, sb)
	half := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethmem"}, PeerName: "eth1", PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := r.host.Netlink.LinkAdd(half); err != nil {
		t.Fatal(err)
	}
	r.last = nil
	c = r.start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := linkNames(t, h); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after restart: %v, want lo only", got)
	}
	hostLinksSettle(t, r.host, "lo", "cnmmj0")
}
