package iptables_test

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/opencnm/libnetwork/firewall"
	"github.com/opencnm/libnetwork/firewall/iptables"
	"github.com/opencnm/libnetwork/internal/testutil"
)

// Every path runs inside the runner's namespace: what a restore writes
// there, List and ListChain (go-iptables) read back, and the namespace of
// the test itself is not touched.
func TestExecInNamespace(t *testing.T) {
	host := testutil.NewHostNS(t)
	other := iptables.New(testutil.NewNamedNS(t, "other").NS)
	for _, run := range []*iptables.Exec{iptables.New(host.NS), iptables.NewWarm(host.NS)} {
		defer run.Close()
		for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
			script := "*nat\n-N CNM-TEST\n-A CNM-TEST -p tcp -m tcp --dport 8080 -m comment --comment cnm-ep-x -j RETURN\nCOMMIT\n"
			if err := run.Restore(fam, script); err != nil {
				t.Fatalf("%s restore: %v", fam, err)
			}
			want := "-N CNM-TEST\n-A CNM-TEST -p tcp -m tcp --dport 8080 -m comment --comment cnm-ep-x -j RETURN\n"
			got, err := run.ListChain(fam, firewall.TableNAT, "CNM-TEST")
			if err != nil || got != want {
				t.Errorf("%s ListChain = %q, %v; want %q", fam, got, err, want)
			}
			// Another namespace does not see it: the runner works in its own.
			if got, err := other.ListChain(fam, firewall.TableNAT, "CNM-TEST"); err != nil || got != "" {
				t.Errorf("%s: another namespace sees %q, %v", fam, got, err)
			}
			if got, err := run.ListChain(fam, firewall.TableFilter, "FORWARD"); err != nil || got != "-P FORWARD ACCEPT\n" {
				t.Errorf("%s ListChain of a built-in chain = %q, %v", fam, got, err)
			}
			if got, err := run.ListChain(fam, firewall.TableNAT, "NO-SUCH-CHAIN"); err != nil || got != "" {
				t.Errorf("%s ListChain of a missing chain = %q, %v; want \"\", nil", fam, got, err)
			}
			table, err := run.List(fam, firewall.TableNAT)
			if err != nil || !strings.Contains(table, want) {
				t.Errorf("%s List = %q, %v; want it to contain %q", fam, table, err, want)
			}
			// A failing line fails the call and applies nothing of its table.
			if err := run.Restore(fam, "*nat\n-A CNM-TEST -j RETURN\n-D CNM-TEST -j ACCEPT\nCOMMIT\n"); err == nil {
				t.Errorf("%s restore of a bad script succeeded", fam)
			}
			if got, _ := run.ListChain(fam, firewall.TableNAT, "CNM-TEST"); got != want {
				t.Errorf("%s failed restore changed the chain: %q", fam, got)
			}
			if err := run.Restore(fam, "*nat\n-F CNM-TEST\n-X CNM-TEST\nCOMMIT\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// One runner is used from many goroutines (the bridge driver's operations
// run concurrently); its go-iptables objects are made once.
func TestExecConcurrentFirstUse(t *testing.T) {
	host := testutil.NewHostNS(t)
	run := iptables.New(host.NS)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := run.ListChain(firewall.IPv4, firewall.TableFilter, "FORWARD"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// iptables-nft says "incompatible" both for a missing chain and for one
// holding a rule it cannot read; only the first is an empty chain.
func TestListChainIncompatibleIsNotMissing(t *testing.T) {
	host := testutil.NewHostNS(t)
	run := iptables.New(host.NS)
	for _, fam := range []firewall.Family{firewall.IPv4, firewall.IPv6} {
		if err := run.Restore(fam, "*nat\n-N CNM-NFT\nCOMMIT\n"); err != nil {
			t.Fatal(err)
		}
		nftFam := map[firewall.Family]string{firewall.IPv4: "ip", firewall.IPv6: "ip6"}[fam]
		if err := host.Do(func() error {
			out, err := exec.Command("nft", "add", "rule", nftFam, "nat", "CNM-NFT", "numgen", "random", "mod", "2", "0", "return").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%w: %s", err, out)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		got, err := run.ListChain(fam, firewall.TableNAT, "CNM-NFT")
		if err == nil || !strings.Contains(err.Error(), "cannot read") {
			t.Errorf("%s ListChain of a chain with an nft-native rule = %q, %v; want an error", fam, got, err)
		}
		if got, err := run.ListChain(fam, firewall.TableNAT, "NO-SUCH-CHAIN"); err != nil || got != "" {
			t.Errorf("%s ListChain of a missing chain = %q, %v; want \"\", nil", fam, got, err)
		}
		if err := run.Restore(fam, "*nat\n-F CNM-NFT\n-X CNM-NFT\nCOMMIT\n"); err != nil {
			t.Fatal(err)
		}
	}
}
