package firewall_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/fakeipt"
)

// mapSysctl is an in-memory firewall.Sysctl.
type mapSysctl map[string]string

func (m mapSysctl) Get(k string) (string, error) { return m[k], nil }
func (m mapSysctl) Set(k, v string) error        { m[k] = v; return nil }

// chainsOf lists a fake table's chains (built-in and ours).
func chainsOf(t *testing.T, f *fakeipt.Fake, fam firewall.Family, table string) (builtin, user []string) {
	t.Helper()
	out, err := f.List(fam, table)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		fs := strings.Fields(line)
		if len(fs) >= 2 && fs[0] == "-P" {
			builtin = append(builtin, fs[1])
		}
		if len(fs) >= 2 && fs[0] == "-N" {
			user = append(user, fs[1])
		}
	}
	return builtin, user
}

// wipe empties the fake's tables as the named tool would: "iptables -F"
// flushes every chain of filter and nat; "nft flush ruleset" drops every
// table (chains, policies, the port maps); "firewalld" flushes and
// deletes every chain of every table of both families.
func wipe(t *testing.T, f *fakes, how string) {
	t.Helper()
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		tables := []string{firewall.TableFilter, firewall.TableNAT}
		if how != "iptables -F" {
			tables = append(tables, firewall.TableMangle, firewall.TableRaw)
		}
		for _, table := range tables {
			builtin, user := chainsOf(t, f.Fake, fam, table)
			var b strings.Builder
			fmt.Fprintf(&b, "*%s\n", table)
			for _, c := range append(builtin, user...) {
				fmt.Fprintf(&b, "-F %s\n", c)
			}
			if how != "iptables -F" {
				for _, c := range builtin {
					fmt.Fprintf(&b, "-P %s ACCEPT\n", c)
				}
			}
			b.WriteString("COMMIT\n")
			if err := f.Restore(fam, b.String()); err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			if how == "iptables -F" {
				continue
			}
			// A chain can go once no committed rule jumps to it.
			b.Reset()
			fmt.Fprintf(&b, "*%s\n", table)
			for _, c := range user {
				fmt.Fprintf(&b, "-X %s\n", c)
			}
			b.WriteString("COMMIT\n")
			if err := f.Restore(fam, b.String()); err != nil {
				t.Fatalf("%s: %v", how, err)
			}
		}
		if how == "nft flush ruleset" {
			if err := f.maps.Remove(fam); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// withoutUserChain drops DOCKER-USER's own lines from a dump: what is in
// there is the user's, and a repair leaves it as the wipe did.
func withoutUserChain(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "-A DOCKER-USER ") {
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

var rigNets = []firewall.NetworkConfig{
	{ID: "n1", Bridge: "br-n1", Subnet: cidr("172.18.0.1/16"), SubnetV6: cidr("fd00:1::1/64"), ICC: true, Masquerade: true, Hairpin: true},
	{ID: "n2", Bridge: "br-n2", Subnet: cidr("172.19.0.1/16"), SubnetV6: cidr("fd00:2::1/64"), Masquerade: true, Hairpin: true},
}

const userRule = "-s 198.51.100.0/24 -j DROP"

// repairRig is a firewall with two networks (ICC on and off, both
// families), published ports, the FORWARD policy set to DROP, and a
// rule of the user's in DOCKER-USER.
func repairRig(t *testing.T) (*firewall.Firewall, *fakes) {
	t.Helper()
	fw, fake := newFW(t, true)
	sys := mapSysctl{"net/ipv4/ip_forward": "0", "net/ipv6/conf/default/forwarding": "0", "net/ipv6/conf/all/forwarding": "0"}
	if _, err := firewall.EnableIPForwarding(sys, fw, true); err != nil {
		t.Fatal(err)
	}
	for _, n := range rigNets {
		if err := fw.SetupNetwork(n); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.SetPortForwards("ep1", rigNets[0].Bridge, portCases); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []firewall.Family{firewall.IPv4} {
		if err := fake.Restore(fam, "*filter\n-I DOCKER-USER 1 "+userRule+"\nCOMMIT\n"); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}
	return fw, fake
}

// Rules flushed three ways come back exactly as they were (same chains,
// same order, same policy, same port map elements), DOCKER-USER is made
// again only where it was deleted, and the user's rule is never re-added;
// a second Repair finds nothing and writes nothing.
func TestRepairAfterWipe(t *testing.T) {
	for _, how := range []string{"iptables -F", "nft flush ruleset", "firewalld"} {
		t.Run(strings.ReplaceAll(how, " ", "_"), func(t *testing.T) {
			fw, fake := repairRig(t)
			want := withoutUserChain(dump(t, fake, firewall.IPv4, firewall.IPv6))
			wipe(t, fake, how)
			if fw.Check() == nil {
				t.Fatal("Check found nothing missing after the wipe")
			}
			rep, err := fw.Repair()
			if err != nil {
				t.Fatal(err)
			}
			if rep.Empty() || len(rep.Rules) == 0 {
				t.Fatalf("repair report %+v, want rules", rep)
			}
			if (len(rep.Elems) > 0) != (how == "nft flush ruleset") {
				t.Errorf("repaired elements %v after %s", rep.Elems, how)
			}
			if got := withoutUserChain(dump(t, fake, firewall.IPv4, firewall.IPv6)); got != want {
				t.Errorf("after repair:\n%s\nwant:\n%s", got, want)
			}
			if err := fw.Check(); err != nil {
				t.Errorf("Check after repair: %v", err)
			}
			out, _ := fake.ListChain(firewall.IPv4, firewall.TableFilter, firewall.ChainUser)
			if strings.Contains(out, userRule) {
				t.Errorf("the user's rule was re-added:\n%s", out)
			}
			hasReturn := strings.Contains(out, "-A DOCKER-USER -m comment --comment cnm-global -j RETURN")
			if hasReturn != (how != "iptables -F") {
				t.Errorf("DOCKER-USER after %s and repair (RETURN only for a chain made again):\n%s", how, out)
			}
			if len(rep.Policies) != map[bool]int{true: 0, false: 2}[how == "iptables -F"] {
				t.Errorf("policies repaired: %v", rep.Policies)
			}
			r, u := fake.Restores(), fake.maps.Updates()
			if rep, err := fw.Repair(); err != nil || !rep.Empty() {
				t.Errorf("second repair: %+v, %v", rep, err)
			}
			if fake.Restores() != r || fake.maps.Updates() != u {
				t.Errorf("a repair with nothing missing wrote %d scripts, %d map updates", fake.Restores()-r, fake.maps.Updates()-u)
			}
		})
	}
}

// A repair only adds: rules that are there are not rewritten, the user's
// DOCKER-USER rule keeps its place, and a lost rule goes back after our
// jumps even when another tool put a rule on top of FORWARD meanwhile.
func TestRepairAddsOnlyWhatIsMissing(t *testing.T) {
	fw, fake := repairRig(t)
	fwd, _ := fake.ListChain(firewall.IPv4, firewall.TableFilter, "FORWARD")
	var victim string
	for _, l := range strings.Split(fwd, "\n") {
		if strings.Contains(l, "cnm-net-n1") && strings.Contains(l, "! -o") {
			victim = strings.TrimPrefix(l, "-A FORWARD ")
		}
	}
	if victim == "" {
		t.Fatalf("no network rule in FORWARD:\n%s", fwd)
	}
	foreign := "-s 203.0.113.0/24 -j ACCEPT"
	if err := fake.Restore(firewall.IPv4, "*filter\n-D FORWARD "+victim+"\n-I FORWARD 1 "+foreign+"\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	rep, err := fw.Repair()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rules) != 1 || rep.Rules[0].Spec != victim || len(rep.Chains)+len(rep.Elems)+len(rep.Policies) != 0 {
		t.Fatalf("repairs %+v, want just %q", rep, victim)
	}
	got, _ := fake.ListChain(firewall.IPv4, firewall.TableFilter, "FORWARD")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	head := []string{"-P FORWARD DROP", "-A FORWARD " + foreign,
		"-A FORWARD -m comment --comment cnm-global -j DOCKER-USER",
		"-A FORWARD -m comment --comment cnm-global -j DOCKER-ISOLATION-STAGE-1"}
	if len(lines) < len(head)+1 || strings.Join(lines[:len(head)], "\n") != strings.Join(head, "\n") {
		t.Fatalf("FORWARD after repair:\n%s", got)
	}
	// The repaired rule goes back among its network's rules, where it was.
	want := strings.Replace(fwd, "-P FORWARD DROP\n", "-P FORWARD DROP\n-A FORWARD "+foreign+"\n", 1)
	if got != want {
		t.Errorf("FORWARD after repair:\n%s\nwant:\n%s", got, want)
	}
	user, _ := fake.ListChain(firewall.IPv4, firewall.TableFilter, firewall.ChainUser)
	if !strings.HasPrefix(user, "-N DOCKER-USER\n-A DOCKER-USER "+userRule+"\n") || strings.Count(user, "-A ") != 2 {
		t.Errorf("DOCKER-USER after repair:\n%s", user)
	}
	// A policy the user changed while our rules stayed is the user's.
	if err := fake.Restore(firewall.IPv4, "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if rep, err := fw.Repair(); err != nil || !rep.Empty() {
		t.Errorf("repair after a policy change: %+v, %v", rep, err)
	}
}

// Port map elements: one deleted behind our back comes back; elements a
// previous process left and this one never claimed are not put back, and
// drop out of the record (Check stays clean).
func TestRepairElements(t *testing.T) {
	fw, fake := repairRig(t)
	es, _ := fake.maps.List(firewall.IPv4)
	if err := fake.maps.Delete(es[0]); err != nil {
		t.Fatal(err)
	}
	rep, err := fw.Repair()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Elems) != 1 || rep.Elems[0] != es[0] || len(rep.Rules) != 0 {
		t.Fatalf("repairs %+v, want element %v", rep, es[0])
	}
	if err := fw.Check(); err != nil {
		t.Fatal(err)
	}

	// A restart: a new Firewall adopts everything, claims only network n1.
	fw2 := firewall.New(fake.Fake, fake.maps, true)
	if err := fw2.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw2.SetupNetwork(rigNets[0]); err != nil {
		t.Fatal(err)
	}
	wipe(t, fake, "nft flush ruleset")
	rep, err = fw2.Repair()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Elems) != 0 {
		t.Errorf("repaired unclaimed elements %v", rep.Elems)
	}
	for _, r := range rep.Rules {
		if strings.Contains(r.Spec, "cnm-net-n2") || strings.Contains(r.Spec, "cnm-ep-") {
			t.Errorf("repaired an unclaimed rule %v", r)
		}
	}
	if err := fw2.Check(); err != nil {
		t.Errorf("Check after repair: %v", err)
	}
	if owners := fw2.Owners(); len(owners) != 2 {
		t.Errorf("owners after repair %v, want the global chains and n1", owners)
	}
}

// A repair whose script fails (the other tool deleted a chain while we
// wrote to it) keeps the record of what is to be put back: the next
// Repair puts it back.
func TestRepairFailureKeepsRecord(t *testing.T) {
	fw, fake := repairRig(t)
	want := withoutUserChain(dump(t, fake, firewall.IPv4, firewall.IPv6))
	wipe(t, fake, "firewalld")
	fake.FailLine(func(fam firewall.Family, line string) error {
		if strings.Contains(line, "cnm-net-") {
			return fmt.Errorf("injected: chain vanished")
		}
		return nil
	})
	if _, err := fw.Repair(); err == nil {
		t.Fatal("repair with failing scripts succeeded")
	}
	fake.FailLine(nil)
	rep, err := fw.Repair()
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rules) == 0 {
		t.Fatal("second repair put nothing back")
	}
	if got := withoutUserChain(dump(t, fake, firewall.IPv4, firewall.IPv6)); got != want {
		t.Errorf("after the second repair:\n%s\nwant:\n%s", got, want)
	}
	if err := fw.Check(); err != nil {
		t.Error(err)
	}
}
