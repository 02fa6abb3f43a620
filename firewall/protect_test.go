package firewall_test

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/types"
)

// fakeSysctl is an in-memory /proc/sys: a key not in the map does not
// exist (as the bridge-nf-call keys before br_netfilter is loaded).
type fakeSysctl map[string]string

func (f fakeSysctl) Get(key string) (string, error) {
	v, ok := f[key]
	if !ok {
		return "", types.InternalErrorf("reading sysctl %s: %w", key, fs.ErrNotExist)
	}
	return v, nil
}

func (f fakeSysctl) Set(key, value string) error {
	if _, ok := f[key]; !ok {
		return types.InternalErrorf("writing sysctl %s: %w", key, fs.ErrNotExist)
	}
	f[key] = value
	return nil
}

const (
	nfCall4 = "net/bridge/bridge-nf-call-iptables"
	nfCall6 = "net/bridge/bridge-nf-call-ip6tables"
)

// Where br_netfilter's keys are absent, the module is loaded; where it
// cannot be, the call fails (NotImplemented): an ICC-off network must not
// be made with a DROP that bridged frames never meet.
func TestRequireBridgeNetfilter(t *testing.T) {
	t.Run("absent, load fails", func(t *testing.T) {
		sys := fakeSysctl{}
		var loaded []string
		err := firewall.RequireBridgeNetfilter(sys, func(name string) error {
			loaded = append(loaded, name)
			return fmt.Errorf("modprobe: not found")
		}, true)
		if !types.IsNotImplemented(err) || !strings.Contains(err.Error(), "br_netfilter") {
			t.Fatalf("got %v, want NotImplemented naming br_netfilter", err)
		}
		if len(loaded) != 1 || loaded[0] != firewall.BridgeNetfilterModule {
			t.Errorf("loaded %v, want [%s]", loaded, firewall.BridgeNetfilterModule)
		}
	})
	t.Run("absent, load succeeds but no keys", func(t *testing.T) {
		if err := firewall.RequireBridgeNetfilter(fakeSysctl{}, func(string) error { return nil }, false); !types.IsNotImplemented(err) {
			t.Fatalf("got %v, want NotImplemented", err)
		}
	})
	t.Run("absent, loaded", func(t *testing.T) {
		sys := fakeSysctl{}
		load := func(string) error { sys[nfCall4], sys[nfCall6] = "0", "0"; return nil }
		if err := firewall.RequireBridgeNetfilter(sys, load, true); err != nil {
			t.Fatal(err)
		}
		if sys[nfCall4] != "1" || sys[nfCall6] != "1" {
			t.Errorf("keys after: %v", sys)
		}
	})
	t.Run("present", func(t *testing.T) {
		sys := fakeSysctl{nfCall4: "0", nfCall6: "0"}
		load := func(string) error { t.Error("module loaded although its keys exist"); return nil }
		if err := firewall.RequireBridgeNetfilter(sys, load, false); err != nil {
			t.Fatal(err)
		}
		if sys[nfCall4] != "1" || sys[nfCall6] != "0" {
			t.Errorf("keys after (IPv4 only): %v", sys)
		}
	})
	// The best-effort variant still ignores absent keys (callers that do
	// not depend on it).
	if err := firewall.EnableBridgeNetfilter(fakeSysctl{}, true); err != nil {
		t.Errorf("EnableBridgeNetfilter without keys: %v", err)
	}
}

// The loopback guard is a global rule: in place after Setup in both
// families, checked by Check, and gone after Teardown (the built-in chain
// it lives in stays).
func TestLoopbackGuardLifecycle(t *testing.T) {
	fw, fake := newFW(t, true)
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		out, err := fake.List(fam, firewall.TableMangle)
		if err != nil {
			t.Fatal(err)
		}
		lo := map[firewall.Family]string{firewall.IPv4: "127.0.0.0/8", firewall.IPv6: "::1/128"}[fam]
		for _, want := range []string{
			"-A PREROUTING -d " + lo + " ! -i lo -m conntrack ! --ctstate DNAT -m comment --comment cnm-global -j DROP",
			"-A PREROUTING -s " + lo + " ! -i lo -m comment --comment cnm-global -j DROP",
		} {
			if !strings.Contains(out, want+"\n") {
				t.Errorf("%s mangle lacks %q:\n%s", fam, want, out)
			}
		}
	}
	if err := fake.Restore(firewall.IPv4, "*mangle\n-D PREROUTING -s 127.0.0.0/8 ! -i lo -m comment --comment cnm-global -j DROP\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Check(); err == nil || !strings.Contains(err.Error(), "127.0.0.0/8") {
		t.Errorf("Check with the guard removed: %v", err)
	}
	// A restart's Setup puts it back.
	fw2 := firewall.New(fake.Fake, fake.maps, true)
	if err := fw2.Setup(); err != nil {
		t.Fatal(err)
	}
	if err := fw2.Check(); err != nil {
		t.Fatal(err)
	}
	if err := fw2.Teardown(); err != nil {
		t.Fatal(err)
	}
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		for _, table := range firewall.Tables() {
			out, err := fake.List(fam, table)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "cnm-global") && !strings.Contains(line, firewall.ChainUser) {
					t.Errorf("Teardown left %s %s %s", fam, table, line)
				}
			}
		}
	}
}

// The raw table's rules are checked, recovered and pruned like the
// others': Check names one removed behind our back, and a teardown whose
// script meets it gone recovers.
func TestDirectAccessRulesInRecord(t *testing.T) {
	fw, fake := newFW(t, true)
	cfg := networkCases[0].cfg
	if err := fw.SetupNetwork(cfg); err != nil {
		t.Fatal(err)
	}
	raw := "-d 172.18.0.0/16 ! -i br-n1 -m addrtype ! --dst-type LOCAL -m comment --comment cnm-net-n1 -j DROP"
	if err := fake.Restore(firewall.IPv4, "*raw\n-D PREROUTING "+raw+"\nCOMMIT\n"); err != nil {
		t.Fatal(err)
	}
	if err := fw.Check(); err == nil || !strings.Contains(err.Error(), "ipv4 raw rule -A PREROUTING "+raw+" missing") {
		t.Fatalf("Check with the raw drop removed: %v", err)
	}
	if err := fw.TeardownNetwork(cfg.ID); err != nil {
		t.Fatalf("teardown with the raw drop already gone: %v", err)
	}
	if out, _ := fake.List(firewall.IPv4, firewall.TableRaw); strings.Contains(out, "cnm-net-n1") {
		t.Errorf("teardown left:\n%s", out)
	}
}
