package firewall_test

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/fakeipt"
	"github.com/opencnm/libnetwork/firewall/fakenft"
	"github.com/opencnm/libnetwork/types"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// fakes is one fake namespace: iptables and the port maps' table.
type fakes struct {
	*fakeipt.Fake
	maps *fakenft.Fake
}

func newFakes() *fakes { return &fakes{Fake: fakeipt.New(), maps: fakenft.New()} }

// dump renders every table of the families like `iptables -t T -S`, under a
// header per family and table, then the port maps: the text golden files
// hold.
func dump(t testing.TB, f *fakes, fams ...firewall.Family) string {
	return dumpRules(t, f.Fake, fams...) + dumpMaps(t, f.maps, fams...)
}

// dumpMaps renders the port maps' elements under a header per family.
func dumpMaps(t testing.TB, m firewall.PortMaps, fams ...firewall.Family) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range fams {
		es, err := m.List(fam)
		if err != nil {
			t.Fatalf("listing %s port maps: %v", fam, err)
		}
		fmt.Fprintf(&b, "# %s port maps\n", fam)
		for _, e := range es {
			b.WriteString(e.String() + "\n")
		}
	}
	return b.String()
}

func dumpRules(t testing.TB, r firewall.Runner, fams ...firewall.Family) string {
	t.Helper()
	var b strings.Builder
	for _, fam := range fams {
		for _, table := range firewall.Tables() {
			out, err := r.List(fam, table)
			if err != nil {
				t.Fatalf("listing %s %s: %v", fam, table, err)
			}
			fmt.Fprintf(&b, "# %s %s\n%s", fam, table, out)
		}
	}
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from golden file %s:\n--- got\n%s--- want\n%s", name, path, got, want)
	}
}

func cidr(s string) *net.IPNet {
	n, err := types.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func newFW(t *testing.T, ipv6 bool) (*firewall.Firewall, *fakes) {
	t.Helper()
	fake := newFakes()
	fw := firewall.New(fake.Fake, fake.maps, ipv6)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	return fw, fake
}

func TestSetupGolden(t *testing.T) {
	fw, fake := newFW(t, true)
	golden(t, "setup", dump(t, fake, firewall.IPv4, firewall.IPv6))
	n := fake.Restores()
	if n != 2 {
		t.Errorf("setup took %d restores, want one per family", n)
	}
	before := dump(t, fake, firewall.IPv4, firewall.IPv6)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	if fake.Restores() != n {
		t.Errorf("second Setup ran %d restores, want none", fake.Restores()-n)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != before {
		t.Errorf("second Setup changed the rules:\n%s", got)
	}
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
}

var networkCases = []struct {
	name string
	cfg  firewall.NetworkConfig
}{
	{"icc-on", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), ICC: true, Masquerade: true, Hairpin: true}},
	{"icc-off", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), ICC: false, Masquerade: true, Hairpin: true}},
	{"internal", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), ICC: true, Internal: true, Masquerade: true, Hairpin: true}},
	{"snat", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), ICC: true, Masquerade: true, Hairpin: true, HostIP: net.ParseIP("192.0.2.7")}},
	{"no-masquerade", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), ICC: true}},
	{"ipv6", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), SubnetV6: cidr("fd00:1::1/64"), ICC: true, Masquerade: true, Hairpin: true}},
	{"ipv6-only", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", SubnetV6: cidr("fd00:1::1/64"), ICC: true, Masquerade: true, Hairpin: true}},
	// Direct access: an unprotected family has no drop but an accept.
	// (Trusted interfaces add no rule of the network's: each published
	// port is theirs, trusted_test.go.)
	{"v6-unprotected", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), SubnetV6: cidr("fd00:1::1/64"), ICC: true, Masquerade: true, Hairpin: true,
		GatewayModeIPv4: firewall.GatewayNAT, GatewayModeIPv6: firewall.GatewayNATUnprotected}},
	// Routed IPv4: no masquerade, hairpin or DNAT rules there, no raw
	// drop; ICMP accepted before the filter drop. IPv6 stays nat.
	{"v4-routed", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), SubnetV6: cidr("fd00:1::1/64"), ICC: true, Masquerade: true, Hairpin: true,
		GatewayModeIPv4: firewall.GatewayRouted}},
	{"v6-routed", firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), SubnetV6: cidr("fd00:1::1/64"), ICC: true, Masquerade: true, Hairpin: true,
		GatewayModeIPv6: firewall.GatewayRouted}},
}

func TestNetworkGolden(t *testing.T) {
	for _, tc := range networkCases {
		t.Run(tc.name, func(t *testing.T) {
			fw, fake := newFW(t, true)
			empty := dump(t, fake, firewall.IPv4, firewall.IPv6)
			n := fake.Restores()
			if err := fw.SetupNetwork(tc.cfg); err != nil {
				t.Fatal(err)
			}
			fams := 0
			if tc.cfg.Subnet != nil {
				fams++
			}
			if tc.cfg.SubnetV6 != nil {
				fams++
			}
			if got := fake.Restores() - n; got != fams {
				t.Errorf("SetupNetwork ran %d restores, want %d", got, fams)
			}
			got := dump(t, fake, firewall.IPv4, firewall.IPv6)
			golden(t, "network-"+tc.name, got)
			if err := fw.Check(); err != nil {
				t.Fatal(err)
			}

			// Setting up again (a restart replay) adds nothing.
			n = fake.Restores()
			if err := fw.SetupNetwork(tc.cfg); err != nil {
				t.Fatal(err)
			}
			if fake.Restores() != n || dump(t, fake, firewall.IPv4, firewall.IPv6) != got {
				t.Error("second SetupNetwork changed something")
			}

			if err := fw.TeardownNetwork(tc.cfg.ID); err != nil {
				t.Fatal(err)
			}
			if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != empty {
				t.Errorf("teardown left rules:\n%s", got)
			}
			if err := fw.TeardownNetwork(tc.cfg.ID); err != nil {
				t.Errorf("second teardown: %v", err)
			}
		})
	}
}

// An IPv6-only network (no IPv4 subnet) needs a firewall with IPv6, and
// a network needs at least one subnet.
func TestNetworkIPv6OnlyRefusals(t *testing.T) {
	fw, _ := newFW(t, false)
	if err := fw.SetupNetwork(firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", SubnetV6: cidr("fd00:1::1/64")}); !types.IsBadRequest(err) {
		t.Fatalf("IPv6-only network without IPv6 firewall: want BadRequest, got %v", err)
	}
	if err := fw.SetupNetwork(firewall.NetworkConfig{ID: "n1", Bridge: "br-n1"}); !types.IsBadRequest(err) {
		t.Fatalf("no subnet: want BadRequest, got %v", err)
	}
}

func TestTwoNetworksAndICCSwitch(t *testing.T) {
	fw, fake := newFW(t, false)
	a := firewall.NetworkConfig{ID: "a", Bridge: "br-a", Subnet: cidr("172.18.0.0/16"), ICC: true, Masquerade: true, Hairpin: true}
	b := firewall.NetworkConfig{ID: "b", Bridge: "br-b", Subnet: cidr("172.19.0.0/16"), ICC: true, Masquerade: true, Hairpin: true}
	for _, c := range []firewall.NetworkConfig{a, b} {
		if err := fw.SetupNetwork(c); err != nil {
			t.Fatal(err)
		}
	}
	b.ICC = false // changed config: ACCEPT replaced by DROP, rest untouched
	if err := fw.SetupNetwork(b); err != nil {
		t.Fatal(err)
	}
	golden(t, "two-networks", dump(t, fake, firewall.IPv4))
}

// A FORWARD chain and DOCKER-USER chain the user filled before we start
// keep their rules; ours go in front, and teardown leaves exactly theirs.
func TestPreexistingRulesKept(t *testing.T) {
	fake := newFakes()
	pre := "*filter\n-N DOCKER-USER\n-A DOCKER-USER -s 203.0.113.0/24 -j DROP\n-A FORWARD -j DROP\n-A FORWARD -j DOCKER-USER\nCOMMIT\n" +
		"*nat\n-A POSTROUTING -o eth9 -j MASQUERADE\nCOMMIT\n"
	if err := fake.Restore(firewall.IPv4, pre); err != nil {
		t.Fatal(err)
	}
	before := dump(t, fake, firewall.IPv4)
	fw := firewall.New(fake.Fake, fake.maps, false)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	cfg := firewall.NetworkConfig{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.0/16"), ICC: true, Masquerade: true, Hairpin: true}
	if err := fw.SetupNetwork(cfg); err != nil {
		t.Fatal(err)
	}
	golden(t, "preexisting", dump(t, fake, firewall.IPv4))
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
	if err := fw.TeardownNetwork(cfg.ID); err != nil {
		t.Fatal(err)
	}
	if err := fw.Teardown(); err != nil {
		t.Fatal(err)
	}
	// Teardown keeps DOCKER-USER and its jump (now on top, with our comment).
	want := strings.Replace(before, "-A FORWARD -j DROP\n-A FORWARD -j DOCKER-USER\n",
		"-A FORWARD -m comment --comment cnm-global -j DOCKER-USER\n-A FORWARD -j DROP\n-A FORWARD -j DOCKER-USER\n", 1)
	if got := dump(t, fake, firewall.IPv4); got != want {
		t.Errorf("after teardown:\n%s\nwant:\n%s", got, want)
	}
}

// A new Firewall over rules a previous process left adopts them: setting
// the same networks up adds nothing, and PruneUnclaimed drops the rest.
func TestRestartAdoptsAndPrunes(t *testing.T) {
	fw1, fake := newFW(t, true)
	empty := dump(t, fake, firewall.IPv4, firewall.IPv6)
	live := networkCases[5].cfg
	dead := firewall.NetworkConfig{ID: "dead", Bridge: "br-dead", Subnet: cidr("172.30.0.0/16"), ICC: true, Masquerade: true, Hairpin: true}
	fwd := []firewall.PortForward{{Proto: types.TCP, HostPort: 8080, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 80}}
	for _, c := range []firewall.NetworkConfig{live, dead} {
		if err := fw1.SetupNetwork(c); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw1.SetPortForwards("ep1", live.Bridge, fwd); err != nil {
		t.Fatal(err)
	}
	if err := fw1.SetPortForwards("ep-dead", dead.Bridge, []firewall.PortForward{{Proto: types.UDP, HostPort: 53, ContainerIP: net.ParseIP("172.30.0.2"), ContainerPort: 53}}); err != nil {
		t.Fatal(err)
	}
	full := dump(t, fake, firewall.IPv4, firewall.IPv6)

	fw2 := firewall.New(fake.Fake, fake.maps, true)
	n, u := fake.Restores(), fake.maps.Updates()
	if err := fw2.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw2.SetupNetwork(live); err != nil {
		t.Fatal(err)
	}
	if err := fw2.SetPortForwards("ep1", live.Bridge, fwd); err != nil {
		t.Fatal(err)
	}
	if fake.Restores() != n || fake.maps.Updates() != u || dump(t, fake, firewall.IPv4, firewall.IPv6) != full {
		t.Fatal("replaying setup after a restart changed rules")
	}
	owners := fw2.Owners()
	if owners[firewall.NetworkOwner("dead")] || !owners[firewall.NetworkOwner(live.ID)] {
		t.Fatalf("owners after replay: %v", owners)
	}
	if err := fw2.PruneUnclaimed(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(dump(t, fake, firewall.IPv4, firewall.IPv6), "dead") {
		t.Fatal("prune left rules of the dead network or endpoint")
	}
	if err := fw2.RemovePortForwards("ep1"); err != nil {
		t.Fatal(err)
	}
	if err := fw2.TeardownNetwork(live.ID); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4, firewall.IPv6); got != empty {
		t.Errorf("after removing networks and ports:\n%s", got)
	}
	if err := fw2.Teardown(); err != nil {
		t.Fatal(err)
	}
	if got := fake.maps.Dump(firewall.IPv4, firewall.IPv6); got != "" { // no table left
		t.Errorf("Teardown left the port maps:\n%s", got)
	}
}

// A rule removed behind our back does not make teardown fail: the failing
// script is recovered by looking at the kernel and retrying.
func TestTeardownAfterExternalDelete(t *testing.T) {
	fw, fake := newFW(t, false)
	empty := dump(t, fake, firewall.IPv4)
	cfg := networkCases[0].cfg
	if err := fw.SetupNetwork(cfg); err != nil {
		t.Fatal(err)
	}
	if err := fake.Restore(firewall.IPv4, "*nat\n-D POSTROUTING -s 172.18.0.0/16 ! -o br-n1 -m comment --comment cnm-net-n1 -j MASQUERADE\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Check(); err == nil {
		t.Error("Check did not notice the missing rule")
	}
	if err := fw.TeardownNetwork(cfg.ID); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, fake, firewall.IPv4); got != empty {
		t.Errorf("after teardown:\n%s", got)
	}
}

// A failing first setup leaves nothing behind, even when the kernel
// applied the nat table before the filter table failed.
func TestSetupNetworkFailureRollsBack(t *testing.T) {
	fw, fake := newFW(t, false)
	empty := dump(t, fake, firewall.IPv4)
	// Every filter insert fails, as with a broken kernel module; the nat
	// table, earlier in the script, is committed before that.
	boom := errors.New("injected")
	calls := 0
	fake.FailLine(func(fam firewall.Family, line string) error {
		if strings.HasPrefix(line, "-I FORWARD") {
			calls++
			return boom
		}
		return nil
	})
	err := fw.SetupNetwork(networkCases[0].cfg)
	if !errors.Is(err, boom) || !types.IsInternal(err) {
		t.Fatalf("SetupNetwork error = %v, want the injected error classed Internal", err)
	}
	if calls != 2 {
		t.Errorf("failing script tried %d times, want 2 (one retry)", calls)
	}
	fake.FailLine(nil)
	if got := dump(t, fake, firewall.IPv4); got != empty {
		t.Errorf("failed setup left:\n%s", got)
	}
	if len(fw.Owners()) != 1 {
		t.Errorf("record still has owners %v", fw.Owners())
	}
}

func TestBadNetworkConfig(t *testing.T) {
	fw, _ := newFW(t, false)
	for _, c := range []firewall.NetworkConfig{
		{Bridge: "br0", Subnet: cidr("10.0.0.0/24")},
		{ID: "x", Bridge: "", Subnet: cidr("10.0.0.0/24")},
		{ID: "x", Bridge: "bad name", Subnet: cidr("10.0.0.0/24")},
		{ID: "x", Bridge: "br0"},
		{ID: "x", Bridge: "br0", Subnet: cidr("fd00::/64")},
		{ID: "x", Bridge: "br0", Subnet: cidr("10.0.0.0/24"), GatewayModeIPv4: firewall.GatewayRouted, Internal: true},
		{ID: "x", Bridge: "br0", Subnet: cidr("10.0.0.0/24"), GatewayModeIPv6: "bogus"},
		{ID: "x", Bridge: "br0", Subnet: cidr("10.0.0.0/24"), GatewayModeIPv4: firewall.GatewayIsolated}, // not internal
	} {
		if err := fw.SetupNetwork(c); !types.IsBadRequest(err) {
			t.Errorf("SetupNetwork(%+v) = %v, want BadRequest", c, err)
		}
	}
}
