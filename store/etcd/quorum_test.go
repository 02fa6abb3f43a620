package etcd_test

import (
	"context"
	"testing"
	"time"

	"github.com/opencnm/libnetwork/globalstore"
	"github.com/opencnm/libnetwork/internal/etcdproc"
	"github.com/opencnm/libnetwork/types"
)

// A 3-member cluster keeps serving with one member dead; with two dead a
// claim fails in bounded time as NoService and applies nothing; once a
// quorum is back the same claim, retried by its owner, succeeds, and what
// was written with one member down is still there.
func TestQuorum(t *testing.T) {
	t.Parallel()
	ms := etcdproc.StartClusterT(t, 3)
	kv, err := globalstore.Open("etcd", globalstore.Config{Endpoints: etcdproc.Endpoints(ms), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	const timeout = 3 * time.Second
	st := globalstore.New(kv, globalstore.Options{Timeout: timeout})
	ctx := context.Background()
	// eventually retries a claim its owner may safely repeat, while the
	// client fails over; only NoService may come before success.
	eventually := func(c globalstore.Claim) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			err := st.Claim(ctx, "n1", globalstore.NoLease, c)
			if err == nil {
				return
			}
			if !types.IsNoService(err) || time.Now().After(deadline) {
				t.Fatalf("claim %s: %v", c, err)
			}
		}
	}
	eventually(globalstore.VNI(1))
	ms[0].Kill()
	eventually(globalstore.VNI(2))
	ms[1].Kill()
	start := time.Now()
	err = st.Claim(ctx, "n1", globalstore.NoLease, globalstore.VNI(3))
	took := time.Since(start)
	if !types.IsNoService(err) {
		t.Fatalf("claim without a quorum: want NoService, got %v", err)
	}
	if took > timeout+5*time.Second {
		t.Fatalf("claim without a quorum took %v, the timeout is %v", took, timeout)
	}
	t.Logf("without a quorum the claim failed after %v: %v", took.Round(time.Millisecond), err)
	if err := ms[1].Start(); err != nil {
		t.Fatal(err)
	}
	eventually(globalstore.VNI(3))
	for _, v := range []uint32{1, 2, 3} {
		if h, err := st.Holder(ctx, globalstore.VNI(v)); err != nil || h != "n1" {
			t.Fatalf("VNI %d held by %q (%v), want n1", v, h, err)
		}
	}
	if err := ms[0].Start(); err != nil {
		t.Fatal(err)
	}
	eventually(globalstore.VNI(4))
}
