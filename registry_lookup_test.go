package libnetwork

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// Concurrent first users of a name share one discovery; its result is
// kept, a failed discovery is not, and another name is not held up.
func TestRegistryLookupSharesDiscovery(t *testing.T) {
	r := &registry{}
	entries := map[string]*int{}
	var calls atomic.Int32
	release := make(chan struct{})
	discover := func(name string) (*int, error) {
		calls.Add(1)
		<-release
		v := len(name)
		return &v, nil
	}
	var wg sync.WaitGroup
	got := make([]*int, 8)
	for i := range got {
		wg.Go(func() {
			e, err := lookup(r, "driver", entries, "slow", discover)
			if err != nil {
				t.Error(err)
			}
			got[i] = e
		})
	}
	// Another name does not wait for "slow"'s discovery.
	other, err := lookup(r, "driver", entries, "x", func(string) (*int, error) { v := 1; return &v, nil })
	if err != nil || *other != 1 {
		t.Fatalf("lookup of another name during a discovery: %v, %v", other, err)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d discoveries for one name, want 1", n)
	}
	for _, e := range got {
		if e != got[0] || *e != len("slow") {
			t.Fatalf("concurrent users got different entries: %v", got)
		}
	}

	boom := errors.New("no plugin")
	if _, err := lookup(r, "ipam", entries, "gone", func(string) (*int, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("failed discovery: got %v", err)
	}
	if _, kept := entries["gone"]; kept {
		t.Fatal("a failed discovery left an entry")
	}
	if len(r.discovering) != 0 {
		t.Fatalf("name locks left after every lookup ended: %v", r.discovering)
	}
}
