package firewall_test

import (
	"net"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/iptables"
	"github.com/opencnm/libnetwork/firewall/nftports"
	"github.com/opencnm/libnetwork/internal/testutil"
	"github.com/opencnm/libnetwork/types"
)

// The real runner, inside a throwaway namespace, produces exactly the
// listings the fake's golden files hold: the fake models the kernel.
func TestRealMatchesGolden(t *testing.T) {
	for _, tc := range networkCases {
		t.Run(tc.name, func(t *testing.T) {
			host := testutil.NewHostNS(t)
			run := iptables.New(host.NS)
			maps := newRealMaps(t, host)
			fw := firewall.New(run, maps, true)
			if err := fw.Setup(); err != nil {
				t.Fatal(err)
			}
			empty := realDump(t, run, maps, firewall.IPv4, firewall.IPv6)
			if err := fw.SetupNetwork(tc.cfg); err != nil {
				t.Fatal(err)
			}
			if err := fw.SetupNetwork(tc.cfg); err != nil {
				t.Fatal(err)
			}
			golden(t, "network-"+tc.name, realDump(t, run, maps, firewall.IPv4, firewall.IPv6))
			if err := fw.Check(); err != nil {
				t.Fatal(err)
			}
			if err := fw.TeardownNetwork(tc.cfg.ID); err != nil {
				t.Fatal(err)
			}
			if got := realDump(t, run, maps, firewall.IPv4, firewall.IPv6); got != empty {
				t.Errorf("teardown left:\n%s", got)
			}
		})
	}
}

// DOCKER-USER with a user's rule survives setup, stays first in FORWARD
// (even when a restart finds FORWARD reordered), and survives Teardown.
func TestRealDockerUserFirst(t *testing.T) {
	host := testutil.NewHostNS(t)
	run := iptables.New(host.NS)
	user := "-s 203.0.113.0/24 -j DROP"
	if err := run.Restore(firewall.IPv4, "*filter\n-N DOCKER-USER\n-A DOCKER-USER "+user+"\n-A FORWARD -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	maps := newRealMaps(t, host)
	fw := firewall.New(run, maps, false)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw.SetupNetwork(networkCases[0].cfg); err != nil {
		t.Fatal(err)
	}
	// Someone inserts a rule on top of FORWARD; a restart puts ours back first.
	if err := run.Restore(firewall.IPv4, "*filter\n-I FORWARD 1 -i lo -j ACCEPT\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	fw2 := firewall.New(run, maps, false)
	if err := fw2.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw2.SetupNetwork(networkCases[0].cfg); err != nil {
		t.Fatal(err)
	}
	if err := fw2.Check(); err != nil {
		t.Fatal(err)
	}
	out, err := run.List(firewall.IPv4, firewall.TableFilter)
	if err != nil {
		t.Fatal(err)
	}
	var fwd []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "-A FORWARD ") {
			fwd = append(fwd, l)
		}
	}
	if len(fwd) < 3 || !strings.HasSuffix(fwd[0], "-j DOCKER-USER") || !strings.HasSuffix(fwd[1], "-j DOCKER-ISOLATION-STAGE-1") {
		t.Fatalf("FORWARD does not start with our jumps:\n%s", out)
	}
	if strings.Count(out, "-j DOCKER-USER") != 1 || strings.Count(out, "-j DOCKER-ISOLATION-STAGE-1") != 1 {
		t.Errorf("duplicate jumps:\n%s", out)
	}
	if !strings.Contains(out, "-A DOCKER-USER "+user+"\n") || strings.Contains(out, "-A DOCKER-USER -m comment") {
		t.Errorf("DOCKER-USER changed:\n%s", out)
	}
	if err := fw2.Teardown(); err != nil {
		t.Fatal(err)
	}
	out, _ = run.List(firewall.IPv4, firewall.TableFilter)
	want := "-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n-N DOCKER-USER\n" +
		"-A FORWARD -m comment --comment cnm-global -j DOCKER-USER\n-A FORWARD -i lo -j ACCEPT\n-A FORWARD -j ACCEPT\n-A DOCKER-USER " + user + "\n"
	if out != want {
		t.Errorf("after teardown:\n%s\nwant:\n%s", out, want)
	}
}

func TestRealIPForwarding(t *testing.T) {
	host := testutil.NewHostNS(t)
	run := iptables.New(host.NS)
	fw := firewall.New(run, newRealMaps(t, host), true)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	sys := firewall.NSSysctl{NS: host.NS}
	// A new namespace copies IPv4's forwarding from the machine's: start
	// from a host that did not forward, whatever the machine does.
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		if err := sys.Set(k, "0"); err != nil {
			t.Fatal(err)
		}
	}
	flipped, err := firewall.EnableIPForwarding(sys, fw, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(flipped) != 2 {
		t.Errorf("flipped %v, want both families in a namespace that did not forward", flipped)
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		out, _ := run.List(fam, firewall.TableFilter)
		if !strings.Contains(out, "-P FORWARD DROP\n") {
			t.Errorf("%s FORWARD policy not DROP:\n%s", fam, out)
		}
	}
	if v, _ := sys.Get("net/ipv4/ip_forward"); v != "1" {
		t.Errorf("ip_forward = %q", v)
	}
	// Already forwarding (e.g. a router): the policy is left alone.
	if err := run.Restore(firewall.IPv4, "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if flipped, err := firewall.EnableIPForwarding(sys, fw, true); err != nil || len(flipped) != 0 {
		t.Fatalf("second call flipped %v, %v", flipped, err)
	}
	if out, _ := run.List(firewall.IPv4, firewall.TableFilter); !strings.Contains(out, "-P FORWARD ACCEPT\n") {
		t.Errorf("policy changed on a forwarding host:\n%s", out)
	}
	if err := firewall.SetRouteLocalnet(sys, "lo"); err != nil {
		t.Fatal(err)
	}
}

// A rule deleted behind our back: the failing teardown script is recovered
// by reading the chains it touched (go-iptables, one chain per exec) and
// retrying without the gone rule. A port map element deleted behind our
// back is noticed by Check, and unpublishing it still succeeds (the
// kernel refuses to delete a missing element, failing the transaction:
// the maps are read and the rest retried).
func TestRealRecoversFromExternalDelete(t *testing.T) {
	host := testutil.NewHostNS(t)
	run := iptables.New(host.NS)
	maps := newRealMaps(t, host)
	fw := firewall.New(run, maps, false)
	if err := fw.Setup(); err != nil {
		t.Fatal(err)
	}
	empty := realDump(t, run, maps, firewall.IPv4)
	cfg := networkCases[0].cfg
	if err := fw.SetupNetwork(cfg); err != nil {
		t.Fatal(err)
	}
	fwd := []firewall.PortForward{{Proto: types.TCP, HostPort: 8080, ContainerIP: net.ParseIP("172.18.0.2"), ContainerPort: 80}}
	if err := fw.SetPortForwards("ep1", cfg.Bridge, fwd); err != nil {
		t.Fatal(err)
	}
	if err := run.Restore(firewall.IPv4, "*nat\n-D POSTROUTING -s 172.18.0.0/16 ! -o br-n1 -m comment --comment cnm-net-n1 -j MASQUERADE\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	es, err := maps.List(firewall.IPv4)
	if err != nil || len(es) != 1 {
		t.Fatalf("port maps: %v, %v", es, err)
	}
	if err := maps.Update(firewall.IPv4, nil, es); err != nil {
		t.Fatal(err)
	}
	if err := fw.Check(); err == nil || !strings.Contains(err.Error(), "port map element") || !strings.Contains(err.Error(), "MASQUERADE") {
		t.Fatalf("Check = %v, want the missing rule and element named", err)
	}
	if err := fw.RemovePortForwards("ep1"); err != nil {
		t.Fatal(err)
	}
	if err := fw.TeardownNetwork(cfg.ID); err != nil {
		t.Fatal(err)
	}
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
	if got := realDump(t, run, maps, firewall.IPv4); got != empty {
		t.Errorf("after teardown:\n%s", got)
	}
	if err := fw.Teardown(); err != nil {
		t.Fatal(err)
	}
	if _, err := maps.Ensure(firewall.IPv4); err != nil { // made afresh: Teardown removed it
		t.Fatal(err)
	}
}

func newRealMaps(t *testing.T, host *testutil.HostNS) *nftports.Maps {
	t.Helper()
	m := nftports.New(host.NS)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func realDump(t testing.TB, run firewall.Runner, maps firewall.PortMaps, fams ...firewall.Family) string {
	t.Helper()
	return dumpRules(t, run, fams...) + dumpMaps(t, maps, fams...)
}
