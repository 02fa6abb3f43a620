package macvlan

import (
	"errors"
	"sync"
	"testing"
)

// flush waits for every link retired before it; holds tracks MACs until
// their link is dealt with; close deletes what is left.
func TestReaper(t *testing.T) {
	var mu sync.Mutex
	var deleted []string
	release := make(chan struct{})
	r := newReaper(func(l retiredLink) error {
		<-release
		mu.Lock()
		defer mu.Unlock()
		deleted = append(deleted, l.eid)
		if l.eid == "bad" {
			return errors.New("boom")
		}
		return nil
	})
	r.retire(retiredLink{eid: "a", mac: "m1"})
	r.retire(retiredLink{eid: "bad", mac: "m2"})
	if !r.holds("m1") || !r.holds("m2") || r.holds("m3") {
		t.Fatal("holds does not track retired MACs")
	}
	close(release)
	if err := r.flush(); err == nil {
		t.Fatal("flush did not report the failed deletion")
	}
	mu.Lock()
	if len(deleted) != 2 {
		t.Fatalf("deleted %v after flush", deleted)
	}
	mu.Unlock()
	if r.holds("m1") || r.holds("m2") {
		t.Fatal("holds after the links were dealt with")
	}
	r.retire(retiredLink{eid: "c", mac: "m1"})
	r.close()
	mu.Lock()
	defer mu.Unlock()
	if len(deleted) != 3 || deleted[2] != "c" {
		t.Fatalf("close left links: %v", deleted)
	}
}
