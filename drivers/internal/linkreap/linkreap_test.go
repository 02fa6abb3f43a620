package linkreap

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// A burst of retirements outlasting MaxAge: links queued while a group
// delete runs start a new batch, so the next delete waits for its own lull
// or age instead of following the running one at once (which would keep
// the rtnl lock taken nearly all the time and stall every link change
// behind it). Load only delays the reaper, so the bound checked here
// cannot flake.
func TestBatchAgeStartsAfterRunningDelete(t *testing.T) {
	var mu sync.Mutex
	var starts []time.Time
	first := make(chan struct{})
	r := New(func() error {
		mu.Lock()
		starts = append(starts, time.Now())
		n := len(starts)
		mu.Unlock()
		if n == 1 {
			<-first
		}
		return nil
	}, nil)
	defer r.Close()

	r.Queue(1)
	// Keep queueing (no lull) until the first delete has started, then
	// past MaxAge of the very first link.
	deadline := time.Now().Add(MaxAge + 100*time.Millisecond)
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
			r.Queue(1)
		}
	}
	// Queued while the first delete runs: the next batch.
	firstPending := time.Now()
	ticket := r.Queue(1)
	last := time.Now()
	close(first)
	flushed := make(chan struct{})
	go func() {
		// Flush deletes at once; wait for the loop without it instead.
		for r.ReapedUpTo() < ticket {
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
	earliest := last.Add(Lull)
	if byAge := firstPending.Add(MaxAge); byAge.Before(earliest) {
		earliest = byAge
	}
	if starts[1].Before(earliest) {
		t.Errorf("second group delete %v after the batch's last queueing, want no earlier than its lull (%v)",
			starts[1].Sub(last), Lull)
	}
}

// A failed delete is reported to failed with the number of links it was
// to delete and by Flush; tickets advance anyway, and the next successful
// delete clears the error.
func TestFailureReported(t *testing.T) {
	type failure struct {
		links uint64
		err   error
	}
	fails := make(chan failure, 4)
	errHeld := errors.New("held")
	var mu sync.Mutex
	fail := true
	r := New(func() error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errHeld
		}
		return nil
	}, func(links uint64, err error) { fails <- failure{links, err} })
	defer r.Close()

	ticket := r.Queue(2)
	if ticket != 2 {
		t.Fatalf("ticket of two links queued first = %d, want 2", ticket)
	}
	if err := r.Flush(); !errors.Is(err, errHeld) {
		t.Fatalf("Flush after a failed delete: %v, want %v", err, errHeld)
	}
	if f := <-fails; f.links != 2 || !errors.Is(f.err, errHeld) {
		t.Errorf("failed told %+v, want 2 links and %v", f, errHeld)
	}
	if r.ReapedUpTo() != ticket || r.Pending() {
		t.Errorf("after the failed delete: reaped up to %d, pending %v; want %d, false", r.ReapedUpTo(), r.Pending(), ticket)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	r.Queue(1)
	if err := r.Flush(); err != nil {
		t.Fatalf("Flush after a successful delete: %v", err)
	}
}

// Urgent reports a caller waiting in Flush (the delete need not wait
// for a lull then) and a closed reaper.
func TestUrgent(t *testing.T) {
	gate := make(chan struct{})
	r := New(func() error { <-gate; return nil }, nil)
	if r.Urgent() {
		t.Fatal("a reaper nobody waits for is urgent")
	}
	r.Queue(1)
	flushed := make(chan error, 1)
	go func() { flushed <- r.Flush() }()
	deadline := time.Now().Add(10 * time.Second)
	for !r.Urgent() {
		if time.Now().After(deadline) {
			t.Fatal("not urgent while a Flush waits")
		}
		time.Sleep(time.Millisecond)
	}
	close(gate)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if r.Urgent() {
		t.Error("urgent after the Flush returned")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if !r.Urgent() {
		t.Error("a closed reaper is not urgent")
	}
}

// Close deletes what is queued, reports a failure of that delete, and
// does not retry it; Flush after Close returns at once; closing twice is
// harmless.
func TestCloseDeletesQueued(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	r := New(func() error {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return nil
	}, nil)
	r.Queue(3)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if r.Pending() {
		t.Error("links pending after Close")
	}
	if calls < 1 {
		t.Errorf("Close with links queued made %d deletes, want at least 1", calls)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	errHeld := errors.New("held")
	fails := 0
	f := New(func() error {
		mu.Lock()
		defer mu.Unlock()
		fails++
		return errHeld
	}, nil)
	f.Queue(1)
	if err := f.Close(); !errors.Is(err, errHeld) {
		t.Fatalf("Close over a failing delete: %v, want %v", err, errHeld)
	}
	mu.Lock()
	n := fails
	mu.Unlock()
	if n != 1 {
		t.Errorf("a failing delete ran %d times at Close, want once (no retry)", n)
	}
	f.Queue(1)
	if err := f.Flush(); !errors.Is(err, errHeld) {
		t.Errorf("Flush after Close: %v, want the last failure", err)
	}
}
