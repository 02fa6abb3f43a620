package crash

import (
	"fmt"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/config"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// Each test sets up by hand the state a SIGKILL at one point of an
// operation leaves (points TestCrashRecovery can reach only by chance),
// then restarts.

// A Leave killed after it took the interface out of the sandbox (renamed
// gone<n>, its host veth retired) but before its record was written: the
// next start finishes the leave and keeps the live sandbox, registered
// with its namespace intact: one interface's half-done leave never costs
// the sandbox.
func TestCrashDuringLeaveKeepsSandbox(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmlv0", "10.92.0.0/24")
	testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("other"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	ep := testrig.Joined(t, n, sb, "e")
	r.Last.Stop()
	// What the Leave had done: eth0 detached inside, host end retired.
	_, h := testrig.SandboxNS(t, sb)
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
	for _, v := range testrig.HostLinkByAlias(t, r.Host.Netlink, "opencnm:ep:"+ep.ID()) {
		// Leave retires the host end by its group alone (it stays up).
		if err := r.Host.Netlink.LinkSetGroup(v, bridge.ReapGroup); err != nil {
			t.Fatal(err)
		}
	}
	r.Last = nil

	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	rsb, err := c.SandboxByID(sb.ID())
	if err != nil {
		t.Fatalf("live sandbox dropped: %v", err)
	}
	n2 := testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net"))
	rep := testrig.Must[*libnetwork.Endpoint](t)(n2.EndpointByName("e"))
	if rep.Info().Sandbox() != nil {
		t.Fatal("endpoint still joined after its leave was finished")
	}
	if got := testrig.LinkNames(t, h); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after restart: %v, want lo only", got)
	}
	testrig.HostLinksSettle(t, r.Host, "lo", "cnmlv0")
	// The sandbox is usable: another endpoint joins and gets eth0.
	rother := testrig.Must[*libnetwork.Endpoint](t)(n2.EndpointByName("other"))
	if err := rother.Join(rsb); err != nil {
		t.Fatalf("joining the kept sandbox: %v", err)
	}
	if got := testrig.AddrsOf(t, h, "eth0"); len(got) != 1 || got[0] != rother.Info().Iface().Address().String() {
		t.Fatalf("eth0 addresses %v", got)
	}
}

// A veth retired by a Leave still carries its endpoint's tag until the
// reaper deletes it; if the endpoint joined again and the process was
// killed before the reaper ran, two veths carry the tag. The restart must
// take the live one back and delete the retired one.
func TestRestartSkipsRetiredVeth(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmrv0", "10.93.0.0/24")
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	ep := testrig.Joined(t, n, sb, "e")
	live := testrig.HostLinkByAlias(t, r.Host.Netlink, "opencnm:ep:"+ep.ID())
	if len(live) != 1 {
		t.Fatalf("tagged veths: %d", len(live))
	}
	r.Last.Stop()
	r.Last = nil
	// The retired one: created first in the listing order does not matter,
	// the group tells them apart.
	old := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethold", Group: bridge.ReapGroup}, PeerName: "vetholdp"}
	if err := r.Host.Netlink.LinkAdd(old); err != nil {
		t.Fatal(err)
	}
	if err := r.Host.Netlink.LinkSetAlias(old, "opencnm:ep:"+ep.ID()); err != nil {
		t.Fatal(err)
	}

	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got := testrig.HostLinkByAlias(t, r.Host.Netlink, "opencnm:ep:"+ep.ID())
	if len(got) != 1 || got[0].Attrs().Index != live[0].Attrs().Index {
		t.Fatalf("after restart the tagged veths are %v, want only the live %s", got, live[0].Attrs().Name)
	}
	// The driver holds the live veth: Leave retires it, nothing is left.
	rsb := testrig.Must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID()))
	rep := testrig.Must[*libnetwork.Endpoint](t)(testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net")).EndpointByName("e"))
	if err := rep.Leave(rsb); err != nil {
		t.Fatal(err)
	}
	testrig.HostLinksSettle(t, r.Host, "lo", "cnmrv0")
}

// A Join killed after the driver made the veth (in the worst case before
// it tagged the host end) but before the join was confirmed: the kept
// sandbox loses the half-made interface, found by the endpoint's MAC, and
// its untagged host end goes with it.
func TestCrashDuringJoinCleansKeptSandbox(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmhj0", "10.94.0.0/24")
	ep := testrig.Must[*libnetwork.Endpoint](t)(n.CreateEndpoint("e"))
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	mac := ep.Info().Iface().MacAddress()
	r.Last.Stop()
	testrig.EditRecord(t, r, records.KindEndpoint, ep.ID(), func(e *records.Endpoint) {
		e.State, e.SandboxID = records.Joining, sb.ID()
	})
	ns, h := testrig.SandboxNS(t, sb)
	half := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethhalf"}, PeerName: "eth0",
		PeerHardwareAddr: mac, PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := r.Host.Netlink.LinkAdd(half); err != nil {
		t.Fatal(err)
	}
	r.Last = nil

	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := testrig.LinkNames(t, h); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after restart: %v, want lo only", got)
	}
	testrig.HostLinksSettle(t, r.Host, "lo", "cnmhj0")
	rep := testrig.Must[*libnetwork.Endpoint](t)(testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net")).EndpointByName("e"))
	if rep.Info().Sandbox() != nil {
		t.Fatal("half-joined endpoint came back joined")
	}
	if err := rep.Join(testrig.Must[*libnetwork.Sandbox](t)(c.SandboxByID(sb.ID()))); err != nil {
		t.Fatalf("joining again: %v", err)
	}
	// The confirmed state survives another restart cleanly.
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("second restore: %v", err)
	}
}

// NewNetwork killed between creating the bridge and tagging it: the
// rolled-back network's bridge carries no tag, but its name derives from
// the network's own ID, so the driver recognises and deletes it. A bridge
// of the same shape for another ID is left alone.
func TestCrashDuringNetworkCreateUntaggedBridge(t *testing.T) {
	r := testrig.NewRestartable(t)
	r.Start()
	r.Last.Stop()
	id := strings.Repeat("ab", 32)
	testrig.EditRecord(t, r, records.KindNetwork, id, func(n *records.Network) {
		n.ID, n.Name, n.Type, n.State = id, "half", "bridge", records.Creating
	})
	for _, name := range []string{"br-" + id[:12], "br-0123456789ab"} {
		if err := r.Host.Netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	r.Last = nil
	c := r.Start()
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if _, err := c.NetworkByName("half"); err == nil {
		t.Fatal("unfinished network came back")
	}
	testrig.HostLinksSettle(t, r.Host, "lo", "br-0123456789ab")
	if err := r.Host.Netlink.LinkDel(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br-0123456789ab"}}); err != nil {
		t.Fatal(err)
	}
}

// A Leave killed just after it set the interface down (address still on):
// the interface is taken as leaving, and removed with its veth.
func TestCrashDuringLeaveInterfaceDown(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	n := testrig.BridgeNet(t, c, "net", "cnmld0", "10.95.0.0/24")
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	testrig.Joined(t, n, sb, "e")
	r.Last.Stop()
	_, h := testrig.SandboxNS(t, sb)
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetDown(eth0); err != nil {
		t.Fatal(err)
	}
	r.Last = nil
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if _, err := c.SandboxByID(sb.ID()); err != nil {
		t.Fatalf("live sandbox dropped: %v", err)
	}
	rep := testrig.Must[*libnetwork.Endpoint](t)(testrig.Must[*libnetwork.Network](t)(c.NetworkByName("net")).EndpointByName("e"))
	if rep.Info().Sandbox() != nil {
		t.Fatal("endpoint with a downed interface still joined")
	}
	if got := testrig.LinkNames(t, h); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after restart: %v, want lo only", got)
	}
	testrig.HostLinksSettle(t, r.Host, "lo", "cnmld0")
}

// A Join on a network kept in memory only (no record, so no intent) killed
// before the driver tagged its veth: the kept sandbox's namespace is the
// library's own, so an interface no restored join accounts for is removed,
// its untagged host end with it.
func TestCrashDuringMemoryJoinCleansKeptSandbox(t *testing.T) {
	r := testrig.NewRestartable(t)
	c := r.Start()
	testrig.BridgeNet(t, c, "net", "cnmmj0", "10.96.0.0/24")
	sb := testrig.Must[*libnetwork.Sandbox](t)(c.NewSandbox("c"))
	r.Last.Stop()
	_, h := testrig.SandboxNS(t, sb)
	ns, _ := testrig.SandboxNS(t, sb)
	half := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "vethmem"}, PeerName: "eth1", PeerNamespace: netlink.NsFd(ns.Fd())}
	if err := r.Host.Netlink.LinkAdd(half); err != nil {
		t.Fatal(err)
	}
	r.Last = nil
	c = r.Start(config.OptionActiveSandboxes(map[string]any{sb.ID(): []libnetwork.SandboxOption{}}))
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got := testrig.LinkNames(t, h); strings.Join(got, ",") != "lo" {
		t.Fatalf("sandbox links after restart: %v, want lo only", got)
	}
	testrig.HostLinksSettle(t, r.Host, "lo", "cnmmj0")
}
