package faults_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencnm/libnetwork"
)

// A dead host's addresses are claimable elsewhere at once after
// EvictHost, long before its lease would run out, and the other hosts
// stop forwarding to it.
func TestEvictHostFreesAtOnce(t *testing.T) {
	l := newLab(t, 3)
	overlay(t, l.host(1), "ov", "10.79.0.0/24")
	run(t, l.host(1), "ov", "a")
	dead := run(t, l.host(3), "ov", "c")
	nw1 := netOn(t, l.host(1), "ov")
	eventually(t, 5*time.Second, "host-1 forwarding to host-3", func() error {
		for _, vx := range l.host(1).VXLANs(t) {
			if vx.HasIP(dead.ip.String()) {
				return nil
			}
		}
		return fmt.Errorf("no neighbour entry for %s", dead.ip)
	})
	// A daemon's exit without a word to the store: the lease stays. It
	// starts again at the end for the teardown to reach what it made (its
	// overlay data plane's namespace). Its container did not survive: the
	// restart drops its sandbox, and the data plane no join took back goes.
	l.host(3).Stop()
	t.Cleanup(func() {
		l.host(3).Start()
		l.dropGlobal(t)
	})
	if _, err := nw1.CreateEndpoint("early", libnetwork.CreateOptionIpam(dead.ip.AsSlice(), nil, nil, nil)); err == nil {
		t.Fatalf("host-1 claimed %s while host-3's lease is live", dead.ip)
	}
	began := time.Now()
	if err := l.host(1).Controller().EvictHost("host-3"); err != nil {
		t.Fatalf("EvictHost: %v", err)
	}
	ep, err := nw1.CreateEndpoint("late", libnetwork.CreateOptionIpam(dead.ip.AsSlice(), nil, nil, nil))
	if err != nil {
		t.Fatalf("host-1 claiming %s right after evicting host-3: %v", dead.ip, err)
	}
	claimed := time.Since(began)
	if claimed > faultTTL {
		t.Errorf("evict to claim took %v, not less than the lease TTL %v", claimed, faultTTL)
	}
	t.Logf("EvictHost to host-3's address claimed on host-1: %v (lease TTL %v)", claimed, faultTTL)
	_ = ep
	took := eventually(t, 5*time.Second, "host-2 forgetting host-3", func() error {
		for _, e := range netOn(t, l.host(2), "ov").ClusterEndpoints() {
			if e.Host == "host-3" {
				return fmt.Errorf("cluster endpoint %s of host-3 still listed", e.Name)
			}
		}
		for _, vx := range l.host(1).VXLANs(t) {
			for _, f := range vx.FDB {
				if strings.HasSuffix(f, " dst "+l.host(3).Addr.String()) {
					return fmt.Errorf("host-1: FDB entry %q to the evicted host", f)
				}
			}
		}
		return nil
	})
	t.Logf("then the other hosts' views and FDB without host-3 in %v", took)
}
