package bridgeflow

import (
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/records"
	"github.com/opencnm/libnetwork/internal/testrig"
	"github.com/opencnm/libnetwork/store"
	"github.com/opencnm/libnetwork/types"
)

// A bridge name or a network ID with "+" would be an iptables interface
// wildcard: next to an ICC-off network, a network on bridge "br-+" got
// an ICC ACCEPT matching every br-* bridge ahead of the ICC-off DROP, and
// one on "+" accepted every forwarded packet. Such a create is
// BadRequest, leaves nothing (no bridge, no rule, the pool free again),
// and the ICC-off network stays closed while its egress keeps working.
func TestWildcardNamesOpenNoIsolation(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	testrig.Serve(t, r.Out.NS, "tcp", net.JoinHostPort(testrig.UplinkOutside, "7000"), "out")
	outside := net.JoinHostPort(testrig.UplinkOutside, "7000")

	noicc := r.BridgeNet(t, "noicc", "10.61.0.0/24",
		libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.EnableICC: "false"}))
	a1 := r.MustRun(t, noicc, "a1", nil)
	a2 := r.MustRun(t, noicc, "a2", nil)
	testrig.Serve(t, a1.NS, "tcp", ":80", "a1")
	a1Addr := net.JoinHostPort(a1.IP, "80")
	testrig.MustNotFetch(t, a2.NS, "tcp", a1Addr)
	testrig.MustFetch(t, a2.NS, "tcp", outside, "out")

	ipamOpt := libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.62.0.0/24"}}, nil, nil)
	for _, tc := range []struct {
		name, id, bridgeName string
	}{
		{name: "bridge br-+", bridgeName: "br-+"},
		{name: "bridge +", bridgeName: "+"},
		{name: "id +", id: "+"}, // its bridge would be br-+
		{name: "bridge br%d", bridgeName: "br%d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var opts []libnetwork.NetworkOption
			opts = append(opts, ipamOpt)
			if tc.bridgeName != "" {
				opts = append(opts, libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.BridgeName: tc.bridgeName}))
			}
			n, err := r.Ctrl.NewNetwork("bridge", "wild", tc.id, opts...)
			if err == nil {
				defer n.Delete()
				b1 := r.MustRun(t, n, "b1", nil)
				defer b1.Stop(t)
				if got, ferr := testrig.Fetch(a2.NS, "tcp", a1Addr); ferr == nil {
					t.Errorf("with the network up, a2 reaches a1 (%q) across ICC off", got)
				}
				if _, ferr := testrig.Fetch(a2.NS, "tcp", outside); ferr != nil {
					t.Errorf("with the network up, a2 lost its egress: %v", ferr)
				}
				t.Fatalf("NewNetwork(id %q, bridge %q) succeeded, want BadRequest", tc.id, tc.bridgeName)
			}
			if !types.IsBadRequest(err) {
				t.Fatalf("NewNetwork(id %q, bridge %q): want BadRequest, got %v", tc.id, tc.bridgeName, err)
			}
			for _, name := range testrig.LinkNames(t, r.Host.Netlink) {
				if strings.ContainsAny(name, "+%") {
					t.Errorf("link %q left behind", name)
				}
			}
			if hits := testrig.RulesNaming(t, r.Host.NS, "+", "%"); len(hits) > 0 {
				t.Errorf("rules left behind:\n%s", strings.Join(hits, "\n"))
			}
			testrig.MustNotFetch(t, a2.NS, "tcp", a1Addr)
			testrig.MustFetch(t, a2.NS, "tcp", outside, "out")
		})
	}
	// Nothing was claimed: the pool and the name are free.
	n := r.BridgeNet(t, "wild", "10.62.0.0/24")
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	a1.Stop(t)
	a2.Stop(t)
}

// Hostile bridge names, container interface prefixes and trusted host
// interfaces are BadRequest naming the option, over the real bridge
// driver, before anything is made: no link, no rule, no network, and the
// pool is free afterwards.
func TestBridgeHostileNames(t *testing.T) {
	t.Parallel()
	c, host := testrig.NewPrivController(t)
	pool := libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.91.0.0/24"}}, nil, nil)
	linksBefore := testrig.LinkNames(t, host.Netlink)
	rulesBefore := testrig.RulesNaming(t, host.NS, "-A ")
	type opt struct{ key, val string }
	var cases []opt
	for _, v := range []string{"br-+", "+", "br%d", "%", "a\x00b", `br"x`, "br'x", `br\x`, "br#x", "br x", "br\tx",
		"br\nx", "br\x7f", "br\xff", "br/x", "..", ".", "-br", "br!x", "br:x", "brücke", "abcdefghijklmnop", ""} {
		if v != "" { // an empty bridge name means "derive it"
			cases = append(cases, opt{bridge.BridgeName, v})
		}
		cases = append(cases, opt{"com.docker.network.container_iface_prefix", v + "+"})
	}
	cases = append(cases, opt{"com.docker.network.container_iface_prefix", "abcdefghijklm"})
	// Trusted interfaces are matches of rules: the same allowlist.
	for _, v := range []string{"-j", "--goto", "-", "..x", ".x", "eth+", "!eth0", "eth0:-j"} {
		cases = append(cases, opt{bridge.TrustedHostInterfaces, v})
	}
	for _, o := range cases {
		_, err := c.NewNetwork("bridge", "hostile", "", pool, libnetwork.NetworkOptionDriverOpts(map[string]string{o.key: o.val}))
		if !types.IsBadRequest(err) || !strings.Contains(err.Error(), o.key) {
			t.Errorf("%s=%q: want BadRequest naming the option, got %v", o.key, o.val, err)
		}
	}
	if got := testrig.LinkNames(t, host.Netlink); strings.Join(got, ",") != strings.Join(linksBefore, ",") {
		t.Errorf("links %v, want %v", got, linksBefore)
	}
	if got := testrig.RulesNaming(t, host.NS, "-A "); len(got) != len(rulesBefore) {
		t.Errorf("rules changed:\n%s", strings.Join(got, "\n"))
	}
	if n := len(c.Networks()); n != 0 {
		t.Fatalf("%d networks after hostile creates", n)
	}
	n, err := c.NewNetwork("bridge", "hostile", "", pool)
	if err != nil {
		t.Fatalf("the name or the pool is still taken: %v", err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
}

// A network an older version created with an ID that is no longer valid
// ("a+b", its bridge's alias opencnm:net:a+b, its rules cnm-net-a_b) is
// not restored: the restore error says why (BadRequest), and what it left
// in the kernel is collected (bridge and rules gone), so its wildcard can
// not outlive the upgrade.
func TestRestartDropsNetworkWithInvalidID(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	c := r.Start()
	const validID, oldID = "aXb", "a+b"
	if _, err := c.NewNetwork("bridge", "old", validID,
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.93.0.0/24"}}, nil, nil),
		libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.BridgeName: "cnmold0"})); err != nil {
		t.Fatal(err)
	}
	tag, oldTag := firewall.NetworkOwner(validID), "cnm-net-a_b"
	if len(testrig.RulesNaming(t, r.Host.NS, "--comment "+tag+" ")) == 0 {
		t.Fatal("the network has no rules")
	}
	dataDir := r.Last.Config().DataDir
	r.Last.Stop()
	r.Last = nil
	// Make the state what the older version left for "a+b".
	st, err := store.OpenBolt(filepath.Join(dataDir, libnetwork.StoreFile), 0)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.Get(records.KindNetwork, validID)
	if err != nil {
		t.Fatal(err)
	}
	var rec records.Network
	if err := records.Decode(records.KindNetwork, validID, raw, &rec); err != nil {
		t.Fatal(err)
	}
	rec.ID = oldID
	b, err := records.Encode(records.KindNetwork, oldID, rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(store.Op{Kind: records.KindNetwork, ID: validID}, store.Op{Kind: records.KindNetwork, ID: oldID, Value: b}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	br, err := r.Host.Netlink.LinkByName("cnmold0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Host.Netlink.LinkSetAlias(br, "opencnm:net:"+oldID); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []string{"iptables", "ip6tables"} {
		testrig.InNS(t, r.Host.NS, "sh", "-c", fam+"-save | sed 's/--comment "+tag+" /--comment "+oldTag+" /' | "+fam+"-restore")
	}

	c = r.Start()
	if err := c.RestoreError(); !types.IsBadRequest(err) || !strings.Contains(err.Error(), "invalid network id") {
		t.Fatalf("restore error: want BadRequest naming the network id, got %v", err)
	}
	if _, err := c.NetworkByName("old"); err == nil {
		t.Fatal("the network with the invalid id was restored")
	}
	if _, err := r.Host.Netlink.LinkByName("cnmold0"); err == nil {
		t.Error("its bridge is left")
	}
	if left := testrig.RulesNaming(t, r.Host.NS, "--comment "+oldTag+" ", "--comment "+tag+" "); len(left) > 0 {
		t.Errorf("its rules are left:\n%s", strings.Join(left, "\n"))
	}
}
