package globalstore_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/globalstore/memstore"
)

// flakyKeepAlive fails the first fail renewals as a store that answers
// too late does, and counts every renewal.
type flakyKeepAlive struct {
	globalstore.KV
	fail  int32
	calls atomic.Int32
}

var errLate = errors.New("keepalive: deadline exceeded")

func (f *flakyKeepAlive) KeepAliveOnce(ctx context.Context, id globalstore.LeaseID) error {
	if f.calls.Add(1) <= f.fail {
		return errLate
	}
	return f.KV.KeepAliveOnce(ctx, id)
}

// Three renewals in a row fail; at the regular TTL/3 the fourth would come
// a TTL and more after the last success and find the lease expired. The
// session retries failed renewals sooner, so the lease holds.
func TestSessionRetriesFailedRenewalSooner(t *testing.T) {
	srv := memstore.New()
	defer srv.Stop()
	kv := &flakyKeepAlive{KV: srv.Client(), fail: 3}
	st := globalstore.New(kv, globalstore.Options{Timeout: 5 * time.Second})
	const ttl = 5 * time.Second
	ss, err := st.OpenSession(context.Background(), globalstore.Host{ID: "h1"}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close(context.Background())
	opened := ss.Renewed()
	// Regular renewals at TTL/3 put the first success ~6.7 s after the
	// open, past the 5 s lease; retries at TTL/10 put it at ~3.2 s. The
	// bound below only has to tell the two apart.
	deadline := time.Now().Add(ttl + 3*time.Second)
	for !ss.Renewed().After(opened) {
		select {
		case <-ss.Lost():
			t.Fatalf("lease lost after %d renewals: failed renewals were not retried within the TTL", kv.calls.Load())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no renewal succeeded within %v (%d tried)", ttl+3*time.Second, kv.calls.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := ss.Renewed().Sub(opened); got >= ttl {
		t.Fatalf("first successful renewal %v after the open, not within the %v lease", got, ttl)
	}
	select {
	case <-ss.Lost():
		t.Fatal("lease lost although a renewal succeeded")
	default:
	}
	if n := kv.calls.Load(); n < 4 {
		t.Fatalf("%d renewals, want the 3 failed ones and a success", n)
	}
}
