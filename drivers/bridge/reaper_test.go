package bridge

import (
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// A burst of leaves outlasting reapMaxAge: links retired while a group
// delete runs start a new batch, so the next delete waits for its own lull
// or age instead of following the running one at once (which would keep
// the rtnl lock taken nearly all the time and stall every Leave behind it).
// Load only delays the reaper, so the bound checked here cannot flake.
func TestReaperBatchAgeStartsAfterRunningDelete(t *testing.T) {
	var mu sync.Mutex
	var starts []time.Time
	first := make(chan struct{})
	r := &reaper{log: slog.New(slog.NewTextHandler(io.Discard, nil)), done: make(chan struct{})}
	r.del = func() error {
		mu.Lock()
		starts = append(starts, time.Now())
		n := len(starts)
		mu.Unlock()
		if n == 1 {
			<-first
		}
		return nil
	}
	r.start()
	defer r.close()

	r.queue()
	// Keep retiring (no lull) until the first delete has started, then
	// past reapMaxAge of the very first link.
	deadline := time.Now().Add(reapMaxAge + 100*time.Millisecond)
	for {
		mu.Lock()
		started := len(starts) > 0
		mu.Unlock()
		if started && time.Now().After(deadline) {
			break
		}
		if !started && time.Now().After(deadline.Add(10*time.Second)) {
			t.Fatal("the reaper never deleted the first batch")
		}
		time.Sleep(5 * time.Millisecond)
		if !started {
			r.queue()
		}
	}
	// Retired while the first delete runs: the next batch.
	firstPending := time.Now()
	ticket := r.queue()
	last := time.Now()
	close(first)
	flushed := make(chan struct{})
	go func() {
		// flush deletes at once; wait for the loop without it instead.
		for r.reapedUpTo() < ticket {
			time.Sleep(5 * time.Millisecond)
		}
		close(flushed)
	}()
	select {
	case <-flushed:
	case <-time.After(30 * time.Second):
		t.Fatal("the second batch was never deleted")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(starts) < 2 {
		t.Fatalf("%d group deletes, want 2", len(starts))
	}
	earliest := last.Add(reapLull)
	if byAge := firstPending.Add(reapMaxAge); byAge.Before(earliest) {
		earliest = byAge
	}
	if starts[1].Before(earliest) {
		t.Errorf("second group delete %v after the batch's last retirement, want no earlier than its lull (%v)",
			starts[1].Sub(last), reapLull)
	}
}
