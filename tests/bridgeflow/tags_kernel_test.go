package bridgeflow

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork"
	"github.com/opencnm/libnetwork/drivers/bridge"
	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/internal/testrig"
)

// Network IDs that differ only in characters a lossy owner tag would
// flatten ("a.b" and "a_b" both were cnm-net-a_b) keep rules of their
// own: creating or deleting one never touches another's rules, and every
// network keeps its egress and its isolation.
func TestNearCollidingIDsKeepTheirRules(t *testing.T) {
	t.Parallel()
	r := testrig.NewPortRig(t)
	testrig.Serve(t, r.Out.NS, "tcp", net.JoinHostPort(testrig.UplinkOutside, "7000"), "out")
	outside := net.JoinHostPort(testrig.UplinkOutside, "7000")
	ids := []string{"a.b", "a_b", "a_2eb", "a-b", "A.b"}
	var nets []*libnetwork.Network
	var ctrs []*testrig.Container
	for i, id := range ids {
		n, err := r.Ctrl.NewNetwork("bridge", "net"+id, id,
			libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: fmt.Sprintf("10.%d.0.0/24", 70+i)}}, nil, nil),
			libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.BridgeName: fmt.Sprintf("cnmid%d", i)}))
		if err != nil {
			t.Fatalf("NewNetwork(id %q): %v", id, err)
		}
		nets = append(nets, n)
		c := r.MustRun(t, n, fmt.Sprintf("c%d", i), nil)
		testrig.Serve(t, c.NS, "tcp", ":80", c.Endpoint.Name())
		ctrs = append(ctrs, c)
	}
	check := func(live []int) {
		t.Helper()
		var want int
		for k, i := range live {
			got := len(testrig.RulesNaming(t, r.Host.NS, "--comment "+firewall.NetworkOwner(ids[i])+" "))
			if k == 0 {
				want = got
			}
			if got == 0 || got != want {
				t.Errorf("network %q has %d rules, network %q %d", ids[i], got, ids[live[0]], want)
			}
			testrig.MustFetch(t, ctrs[i].NS, "tcp", outside, "out")
			// Each network is isolated from the next (in a ring): every
			// network's isolation rules are exercised, in both directions.
			j := live[(k+1)%len(live)]
			testrig.MustNotFetch(t, ctrs[i].NS, "tcp", net.JoinHostPort(ctrs[j].IP, "80"))
		}
	}
	check([]int{0, 1, 2, 3, 4})
	// Deleting one takes only its own rules.
	ctrs[1].Stop(t)
	if err := nets[1].Delete(); err != nil {
		t.Fatal(err)
	}
	check([]int{0, 2, 3, 4})
	for _, i := range []int{0, 2, 3, 4} {
		ctrs[i].Stop(t)
		if err := nets[i].Delete(); err != nil {
			t.Fatal(err)
		}
	}
	if left := testrig.RulesNaming(t, r.Host.NS, "cnm-net-"); len(left) > 0 {
		t.Fatalf("rules left:\n%s", strings.Join(left, "\n"))
	}
}

// After an upgrade, rules an older version tagged lossily (network "a_b"
// was cnm-net-a_b; so was "a.b") are garbage: the restored network is set
// up under its injective tag and the old-tagged copies are pruned, so
// nothing of the old tag is left and the network has each rule once.
func TestRestartRetagsRulesOfAnOlderVersion(t *testing.T) {
	t.Parallel()
	r := testrig.NewRestartable(t)
	c := r.Start()
	const id = "a_b"
	n, err := c.NewNetwork("bridge", "ab", id,
		libnetwork.NetworkOptionIpam("default", "", []*libnetwork.IpamConf{{PreferredPool: "10.92.0.0/24"}}, nil, nil),
		libnetwork.NetworkOptionDriverOpts(map[string]string{bridge.BridgeName: "cnmup0"}))
	if err != nil {
		t.Fatal(err)
	}
	tag, oldTag := firewall.NetworkOwner(id), "cnm-net-a_b"
	if tag == oldTag {
		t.Fatalf("tag of %q is still %q", id, oldTag)
	}
	want := testrig.RulesNaming(t, r.Host.NS, "--comment "+tag+" ")
	if len(want) == 0 {
		t.Fatal("the network has no rules")
	}
	r.Last.Stop()
	r.Last = nil
	// What the older version left: the same rules under its tag.
	for _, fam := range []string{"iptables", "ip6tables"} {
		testrig.InNS(t, r.Host.NS, "sh", "-c", fam+"-save | sed 's/--comment "+tag+" /--comment "+oldTag+" /' | "+fam+"-restore")
	}
	if got := testrig.RulesNaming(t, r.Host.NS, "--comment "+tag+" "); len(got) != 0 {
		t.Fatalf("rewriting the comments left %d rules of the new tag", len(got))
	}
	c = r.Start()
	if err := c.RestoreError(); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if old := testrig.RulesNaming(t, r.Host.NS, "--comment "+oldTag+" "); len(old) > 0 {
		t.Errorf("rules of the old tag left:\n%s", strings.Join(old, "\n"))
	}
	if got := testrig.RulesNaming(t, r.Host.NS, "--comment "+tag+" "); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules after the upgrade:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	n, err = c.NetworkByID(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
}
